"""Regularized VAEs, with or without a decoupled prior (Bhalodia, Lee & Elhabian 2020, Sec. 4.3).

beta-VAE-H (Higgins et al. 2017), beta-VAE-B (Burgess et al. 2018), beta-TCVAE (Chen et al. 2018), FactorVAE
(Kim & Mnih 2018) and InfoVAE-MMD (Zhao et al. 2019). They regularize the *representation space* z and
ask the model's prior for log p(z), its samples and its KL, so each is written once and is a "dp" model
exactly when the model's prior is decoupled. They are joint objectives (one loss for encoder, decoder and
prior); FactorVAE's discriminator is an auxiliary network the trainer steps after every iteration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from ..elbo import batch_mean, gaussian_log_prob, reconstruction_error, reparameterize
from ..models.base import IntroVAEModel, seeded
from ..models.mlp import Discriminator
from .base import Auxiliary, HParams, Noise, Objective, StepOutput, register_objective

__all__ = ["log_q_pairs", "tc_decomposition", "mmd_imq", "capacity", "permute_dims", "RegularizedVAE",
           "BetaVAEH", "BetaVAEB", "BetaTCVAE", "FactorVAE", "InfoVAE"]


def log_q_pairs(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log q(z_i | x_j) per dimension for all pairs, shape (B, B, L) (i: sample, j: posterior)."""
    zi, mj, lj = z.unsqueeze(-2), mu.unsqueeze(-3), logvar.unsqueeze(-3)
    return -0.5 * ((zi - mj).pow(2) / lj.exp() + lj + math.log(2 * math.pi))


def tc_decomposition(z: Tensor, mu: Tensor, logvar: Tensor, log_prior: Tensor, dataset_size: int) -> dict[str, Tensor]:
    """beta-TCVAE's three terms with the minibatch-weighted sampling (MWS) estimator.

    With ``M`` = batch size and ``N`` = dataset size::

        log q(z_i)     ~ logsumexp_j log q(z_i|x_j)   - log(N M)
        log q(z_i,l)   ~ logsumexp_j log q(z_i,l|x_j) - log(N M)
        MI     = E[log q(z|x) - log q(z)]
        TC     = E[log q(z) - sum_l log q(z_l)]
        dimKL  = E[sum_l log q(z_l) - log p(z)]

    MI + TC + dimKL = E[log q(z|x) - log p(z)], the one-sample KL, whatever the estimator of q(z).
    Returns per-sample tensors.
    """
    m = z.shape[-2]
    pairs = log_q_pairs(z, mu, logvar)  # (B, B, L)
    log_norm = math.log(dataset_size * m)
    log_qz = torch.logsumexp(pairs.sum(-1), dim=-1) - log_norm
    log_qz_prod = (torch.logsumexp(pairs, dim=-2) - log_norm).sum(-1)
    log_qzx = gaussian_log_prob(z, mu, logvar)
    return {"mi": log_qzx - log_qz, "tc": log_qz - log_qz_prod, "dimkl": log_qz_prod - log_prior}


def mmd_imq(a: Tensor, b: Tensor, scale: float = 1.0) -> Tensor:
    """Unbiased MMD^2 between samples ``a`` and ``b`` (B, L) with the inverse multiquadric kernel
    ``k(x, y) = C / (C + |x - y|^2)``, ``C = 2 L scale`` (as in InfoVAE / WAE)."""
    n, dim = a.shape[-2], a.shape[-1]
    c = 2.0 * dim * scale

    def k(x: Tensor, y: Tensor) -> Tensor:
        return c / (c + (x.unsqueeze(-2) - y.unsqueeze(-3)).pow(2).sum(-1))

    off = 1.0 - torch.eye(n, dtype=a.dtype, device=a.device)
    kaa = (k(a, a) * off).sum((-2, -1)) / (n * (n - 1))
    kbb = (k(b, b) * off).sum((-2, -1)) / (n * (n - 1))
    kab = k(a, b).mean((-2, -1))
    return kaa + kbb - 2 * kab


def capacity(i: int, c_max: float, c_iters: int) -> float:
    """beta-VAE-B's capacity ``C = min(C_max, C_max i / C_iters)`` (linear annealing from 0)."""
    return float(c_max) if c_iters <= 0 else float(min(c_max, c_max * i / c_iters))


def permute_dims(z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Shuffle each latent dimension independently across the batch: samples of prod_l q(z_l)."""
    b, dim = z.shape
    idx = torch.stack([torch.randperm(b, generator=generator, device=z.device) for _ in range(dim)], dim=1)
    return torch.gather(z, 0, idx)


class RegularizedVAE(Objective):
    """Base of the regularized VAEs: ``rec + penalty``, one joint loss.

    Hyperparameters always include ``beta_rec`` and ``beta_kl`` (so the trainer's VAE warm-up works).
    ``self.i`` counts steps for the schedules that need one (beta-VAE-B) and is saved with checkpoints.
    """

    joint = True
    noise_draws = (1, 0)
    recordable = False  # self.i below
    #: Mini-batches must be at least this large (the batch estimators need more than one sample).
    needs_batch = False

    def __init__(self, **hparams: float):
        super().__init__(**hparams)
        self.i = 0

    def state_dict(self) -> dict[str, Any]:
        return {"i": self.i}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.i = int(state["i"])

    def penalty(self, model: IntroVAEModel, mu: Tensor, logvar: Tensor, z: Tensor, noise: Noise,
                hp: HParams) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample (or batch, broadcastable) latent penalty and its named terms."""
        raise NotImplementedError

    def encoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams) -> StepOutput:
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, noise.next())
        rec = reconstruction_error(x, model.decode(z), model.event_dims)
        pen, terms = self.penalty(model, mu, logvar, z, noise, hp)
        loss = batch_mean(hp["beta_rec"] * rec + pen)
        self.i += 1
        return StepOutput(loss, {"rec": batch_mean(rec), **terms}, carry={"z": z.detach()})


@register_objective
class BetaVAEH(RegularizedVAE):
    """beta-VAE (Higgins et al.): ``rec + beta KL`` (beta = ``beta_kl``; beta = 1 is the plain VAE / dpVAE)."""

    name = "betavae_h"

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 4.0):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl)

    def penalty(self, model, mu, logvar, z, noise, hp):
        kl = model.prior.kl(mu, logvar, z)
        return hp["beta_kl"] * kl, {"kl": batch_mean(kl)}


@register_objective
class BetaVAEB(RegularizedVAE):
    """beta-VAE (Burgess et al.): ``rec + gamma |KL - C|`` with the capacity ``C`` annealed linearly from
    0 to ``c_max`` over ``c_iters`` steps. The KL is the *batch mean* inside the absolute value."""

    name = "betavae_b"

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0, gamma: float = 100.0, c_max: float = 5.0,
                 c_iters: int = 10_000):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, gamma=gamma, c_max=c_max)
        self.c_iters = int(c_iters)

    @classmethod
    def for_run(cls, iterations: int | None = None, dataset_size: int | None = None, **hparams: Any) -> Objective:
        """The capacity reaches ``c_max`` halfway through the run."""
        return cls(**hparams) if iterations is None else cls(**hparams, c_iters=iterations // 2)

    def penalty(self, model, mu, logvar, z, noise, hp):
        kl = model.prior.kl(mu, logvar, z)
        cap = capacity(self.i, float(self.hparams["c_max"]), self.c_iters)
        pen = hp["gamma"] * (batch_mean(kl) - cap).abs()
        return pen.unsqueeze(-1).expand_as(kl), {"kl": batch_mean(kl), "capacity": torch.full_like(pen, cap)}


@register_objective
class BetaTCVAE(RegularizedVAE):
    """beta-TCVAE (Chen et al.): ``rec + a MI + b TC + g dimKL`` (MWS estimator, :func:`tc_decomposition`).

    With a decoupled prior only ``dimKL`` sees p(z) (Bhalodia et al. 2020, Sec. 4.3), through the prior's log p(z).
    """

    name = "betatcvae"
    needs_batch = True

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0, alpha: float = 1.0, beta: float = 6.0,
                 gamma: float = 1.0, dataset_size: int = 60_000):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, alpha=alpha, beta=beta, gamma=gamma)
        self.dataset_size = int(dataset_size)

    @classmethod
    def for_run(cls, iterations: int | None = None, dataset_size: int | None = None, **hparams: Any) -> Objective:
        """The minibatch-weighted estimator needs the size of the data set."""
        return cls(**hparams) if dataset_size is None else cls(**hparams, dataset_size=dataset_size)

    def penalty(self, model, mu, logvar, z, noise, hp):
        t = tc_decomposition(z, mu, logvar, model.prior.log_prob(z), self.dataset_size)
        pen = hp["alpha"] * t["mi"] + hp["beta"] * t["tc"] + hp["gamma"] * t["dimkl"]
        return pen, {k: batch_mean(v) for k, v in t.items()}


@register_objective
class FactorVAE(RegularizedVAE):
    """FactorVAE (Kim & Mnih): ``rec + KL + gamma TC`` with ``TC ~ E_q(z)[logit D(z)]`` (density-ratio trick).

    The discriminator ``D`` is an auxiliary network (:meth:`auxiliary_modules`): the trainer builds it, gives
    it its own Adam (lr 1e-4, betas (0.5, 0.9), as Kim & Mnih) and trains it after every step with
    :meth:`discriminator_loss`: logistic loss for codes of the batch (label 1) against the same codes with
    every dimension permuted across the batch (label 0). In the VAE loss its parameters are frozen (detached).
    """

    name = "factorvae"
    needs_batch = True

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0, gamma: float = 10.0, disc_hidden: int = 256):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, gamma=gamma)
        self.disc_hidden = int(disc_hidden)
        self.discriminator: Discriminator | None = None

    def auxiliary_modules(self, model: IntroVAEModel, seed: int) -> dict[str, Auxiliary]:
        if self.discriminator is None:
            device = next(model.parameters()).device
            self.discriminator = seeded(lambda: Discriminator(model.z_dim, self.disc_hidden), seed).to(device)
        return {"discriminator": Auxiliary(self.discriminator, lr=1e-4, betas=(0.5, 0.9))}

    def _require_discriminator(self) -> Discriminator:
        if self.discriminator is None:
            raise RuntimeError("FactorVAE's discriminator does not exist yet: train FactorVAE with the Trainer, which "
                               "builds and trains it (auxiliary_modules); a random, untrained discriminator would "
                               "make the TC penalty meaningless")
        return self.discriminator

    def penalty(self, model, mu, logvar, z, noise, hp):
        disc = self._require_discriminator()
        params = {k: v.detach() for k, v in disc.named_parameters()}
        logits = functional_call(disc, params, (z,))
        kl = model.prior.kl(mu, logvar, z)
        tc = logits.mean(-1)
        return hp["beta_kl"] * kl + hp["gamma"] * tc, {"kl": batch_mean(kl), "tc": tc}

    def discriminator_loss(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Logistic loss: joint codes ``z`` (detached) are class 1, dimension-permuted codes class 0."""
        disc = self._require_discriminator()
        z = z.detach()
        zp = permute_dims(z, generator)
        lj, lp = disc(z), disc(zp)
        return 0.5 * (F.binary_cross_entropy_with_logits(lj, torch.ones_like(lj))
                      + F.binary_cross_entropy_with_logits(lp, torch.zeros_like(lp)))

    def auxiliary_loss(self, name: str, carry: Mapping[str, Tensor], generator: torch.Generator) -> Tensor:
        return self.discriminator_loss(carry["z"], generator)


@register_objective
class InfoVAE(RegularizedVAE):
    """InfoVAE-MMD (Zhao et al.): ``rec + (1 - a) KL + (a + lambda - 1) MMD(q(z), p(z))``.

    Prior samples for the MMD come from the model's prior (``g^-1(eps)`` with a decoupled prior, Bhalodia et
    al. 2020, Sec. 4.3), so the MMD also trains the flow. Defaults ``a = 0, lambda = 1000`` (the usual MMD-VAE
    choice, with the per-sample sum-of-squares reconstruction error).
    """

    name = "infovae"
    noise_draws = (2, 0)
    needs_batch = True

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0, alpha: float = 0.0, lam: float = 1000.0):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, alpha=alpha, lam=lam)

    def penalty(self, model, mu, logvar, z, noise, hp):
        kl = model.prior.kl(mu, logvar, z)
        zp = model.prior.rsample(noise.next())
        mmd = mmd_imq(z, zp)
        pen = (1 - hp["alpha"]) * hp["beta_kl"] * kl + (hp["alpha"] + hp["lam"] - 1) * mmd.unsqueeze(-1)
        return pen, {"kl": batch_mean(kl), "mmd": mmd}
