"""The beta-VAE (Higgins et al. 2017): the ELBO both introspective methods start from."""

from __future__ import annotations

from torch import Tensor

from ..elbo import batch_mean, beta_elbo_energy, reconstruction_error, reparameterize
from ..models.base import IntroVAEModel
from .base import HParams, Noise, Objective, StepOutput, register_objective

__all__ = ["VAE"]


@register_objective
class VAE(Objective):
    """Minimize ``beta_rec * L_r(x) + beta_kl * KL(q(z|x) || p(z))`` for both networks (and a learnable prior).

    The KL is the model's prior's (:mod:`sivae_core.priors`): closed form for N(0, I), the Monte Carlo
    estimate of Eq. 5 of the dpVAE paper for a decoupled prior. The trainer also uses this objective for the
    plain-VAE warm-up iterations of the 2D experiments.
    """

    name = "vae"
    joint = True
    noise_draws = (1, 0)

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl)

    def encoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams) -> StepOutput:
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, noise.next())
        rec = reconstruction_error(x, model.decode(z), model.event_dims)
        kl = model.prior.kl(mu, logvar, z)
        loss = batch_mean(beta_elbo_energy(rec, kl, hp["beta_rec"], hp["beta_kl"]))
        return StepOutput(loss, {"rec": batch_mean(rec), "kl": batch_mean(kl)})
