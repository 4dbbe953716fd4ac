"""IntroVAE: the adversarial game with a hard margin that Soft-IntroVAE makes soft."""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor

from ..elbo import batch_mean, kl_to_standard_normal, reconstruction_error, reparameterize
from ..models.base import IntroVAEModel
from .base import HParams, Noise, Objective, StepOutput, decode_both, encode_both, register_objective

__all__ = ["IntroVAE"]


@register_objective
class IntroVAE(Objective):
    """IntroVAE (Huang et al. 2018) with the hard margin ``m``, in the expanded form of Daniel & Tamar (2021), Sec. 9.1.1.

    ``L_E = beta_rec L_r(x) + beta_kl KL(x) + beta_neg * 1/2 sum_{fake in {x_r, x_f}} [m - KL(E(fake))]^+``
    ``L_D = beta_rec L_r(x) + beta_neg * 1/2 sum_{fake in {x_r, x_f}} KL(E(fake))``

    As in IntroVAE, both reconstructions ``x_r = D(E(x))`` and prior samples ``x_f = D(z), z ~ p(z)``
    are fakes, and the hinge acts on the batch-mean KL. Once the encoder pushes the fakes' KL above
    ``m`` the hinge is flat and the encoder receives *no* adversarial gradient: the instability that
    Soft-IntroVAE removes. IntroVAE is defined with the standard normal prior; its KLs are the closed form.
    """

    name = "introvae"
    noise_draws = (2, 0)

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0, beta_neg: float = 1.0, m: float = 1.0):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, beta_neg=beta_neg, m=m)

    def encoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams) -> StepOutput:
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, noise.next())
        z_f = noise.next()
        x_r, x_f = decode_both(model, z, z_f)
        rec = batch_mean(reconstruction_error(x, x_r, model.event_dims))
        kl = batch_mean(kl_to_standard_normal(mu, logvar))
        # The fakes are inputs to the encoder here: detach so this loss never reaches the decoder.
        mu_r, logvar_r, mu_f, logvar_f = encode_both(model, x_r.detach(), x_f.detach())
        kl_r = batch_mean(kl_to_standard_normal(mu_r, logvar_r))
        kl_f = batch_mean(kl_to_standard_normal(mu_f, logvar_f))
        margin = 0.5 * (F.relu(hp["m"] - kl_r) + F.relu(hp["m"] - kl_f))
        loss = hp["beta_rec"] * rec + hp["beta_kl"] * kl + hp["beta_neg"] * margin
        terms = {"rec": rec, "kl": kl, "kl_fake_rec": kl_r, "kl_fake_sample": kl_f, "margin": margin}
        return StepOutput(loss, terms, carry={"z": z.detach(), "z_f": z_f})

    def decoder_loss(
        self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams, carry: Mapping[str, Tensor]
    ) -> StepOutput:
        x_r, x_f = decode_both(model, carry["z"], carry["z_f"])
        rec = batch_mean(reconstruction_error(x, x_r, model.event_dims))
        mu_r, logvar_r, mu_f, logvar_f = encode_both(model, x_r, x_f)
        kl_r = batch_mean(kl_to_standard_normal(mu_r, logvar_r))
        kl_f = batch_mean(kl_to_standard_normal(mu_f, logvar_f))
        loss = hp["beta_rec"] * rec + hp["beta_neg"] * 0.5 * (kl_r + kl_f)
        return StepOutput(loss, {"rec": rec, "kl_fake_rec": kl_r, "kl_fake_sample": kl_f})
