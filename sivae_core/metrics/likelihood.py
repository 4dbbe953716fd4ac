"""Likelihood scores of a trained VAE: the ELBO and the importance-weighted estimate of log p(x)
(Daniel & Tamar 2021, Sec. 6.5: ``log p(x) ~= log 1/M sum_i p(x|z_i) p(z_i) / q(z_i|x)``, ``z_i ~ q(z|x)``, M = 5),
and, for a two-dimensional latent space, log p(x) itself by quadrature: the yardstick both bounds are measured by.

**The decoder's likelihood.** The models are trained with the per-sample *sum* of squared errors
``L_r = ||x - D(z)||^2`` (times ``beta_rec``). That is ``-log p(x|z)`` up to a constant for a Gaussian
decoder ``N(D(z), sigma^2 I)`` with ``sigma^2 = 1 / (2 beta_rec)`` (:func:`sivae_core.elbo.decoder_logvar`);
with ``beta_rec = 1``, ``sigma^2 = 1/2``, the default ``decoder_logvar = log(1/2)`` here. The prior terms
are the model's prior's (``model.prior``: N(0, I), or a decoupled prior). The constant
``-D/2 log(2 pi sigma^2)`` is included, so the numbers are log-densities in nats (of data in [0, 1]);
for AUROC only the ordering matters.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..elbo import decoder_logvar as decoder_logvar_of
from ..elbo import gaussian_log_prob, reparameterize
from ..models.base import IntroVAEModel

__all__ = ["log_px_given_z", "elbo_parts", "elbo_score", "iw_log_likelihood", "grid_log_likelihood"]

#: The decoder log-variance of ``beta_rec = 1``.
LOG_HALF = decoder_logvar_of(1.0)


def log_px_given_z(x: Tensor, x_mean: Tensor, decoder_logvar: float = LOG_HALF) -> Tensor:
    """``log N(x; D(z), exp(decoder_logvar) I)`` per sample, summed over all pixels."""
    diff = (x - x_mean).flatten(1)
    return gaussian_log_prob(diff, torch.zeros_like(diff), torch.full_like(diff, decoder_logvar))


@torch.no_grad()
def elbo_parts(model: IntroVAEModel, x: Tensor, generator: torch.Generator | None = None,
               decoder_logvar: float = LOG_HALF, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """The ELBO's two terms per sample, ``(log p(x|z) at one z ~ q(z|x), KL(q(z|x) || p(z)))``.

    Kept apart because they can disagree: a model can reconstruct an OOD image badly (low ``log p(x|z)``)
    while its encoder still maps it close to the prior (low KL), and then the KL *raises* the OOD score.
    """
    rec, kl = [], []
    for xb in x.split(batch_size):
        mu, logvar = model.encode(xb)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = reparameterize(mu, logvar, eps)
        rec.append(log_px_given_z(xb, model.decode(z).float(), decoder_logvar))
        kl.append(model.prior.kl(mu, logvar, z))
    return torch.cat(rec), torch.cat(kl)


@torch.no_grad()
def elbo_score(model: IntroVAEModel, x: Tensor, generator: torch.Generator | None = None,
               decoder_logvar: float = LOG_HALF, batch_size: int = 500) -> Tensor:
    """Per-sample ELBO ``E_q[log p(x|z)] - KL(q(z|x) || p(z))`` with one sample of z (Table 7's score)."""
    log_px_z, kl = elbo_parts(model, x, generator, decoder_logvar, batch_size)
    return log_px_z - kl


@torch.no_grad()
def iw_log_likelihood(model: IntroVAEModel, x: Tensor, n_samples: int = 5, generator: torch.Generator | None = None,
                      decoder_logvar: float = LOG_HALF, batch_size: int = 500) -> Tensor:
    """Importance-weighted estimate of ``log p(x)`` per sample with ``M = n_samples`` draws from q(z|x).

    A lower bound in expectation that tightens as M grows; exact for any M when q(z|x) is the true
    posterior (the test checks this on a linear Gaussian model). ``log p(z)`` is the model's prior's.
    """
    out = []
    for xb in x.split(batch_size):
        mu, logvar = model.encode(xb)
        logw = []
        for _ in range(n_samples):
            eps = torch.randn(mu.shape, generator=generator, device=mu.device)
            z = reparameterize(mu, logvar, eps)
            log_pz = model.prior.log_prob(z)
            log_qz = gaussian_log_prob(z, mu, logvar)
            logw.append(log_px_given_z(xb, model.decode(z).float(), decoder_logvar) + log_pz - log_qz)
        out.append(torch.logsumexp(torch.stack(logw), dim=0) - math.log(n_samples))
    return torch.cat(out)


@torch.no_grad()
def grid_log_likelihood(model: IntroVAEModel, x: Tensor, decoder_logvar: float = LOG_HALF, limit: float = 4.0,
                        points: int = 401, batch_size: int = 50) -> tuple[Tensor, Tensor]:
    """``log p(x) = log integral p(x|z) p(z) dz`` and ``KL(q(z|x) || p(z|x))`` per sample, by the rectangle rule on a
    ``points x points`` grid over ``[-limit, limit]^2`` (two-dimensional latents only).

    With two latent dimensions the integral that makes the ELBO necessary is a sum over a grid, so the bound can be
    checked against the quantity it bounds: ``log p(x) - ELBO(x)`` must equal the posterior KL, computed here
    independently as the KL between ``q(z|x)`` and the posterior ``p(x|z) p(z) / p(x)``, both as cell probabilities
    on the same grid. The grid must resolve the posteriors (a step well below the encoder's standard deviations)
    and cover the prior's mass (``limit = 4`` leaves about 1e-4 of N(0, I) outside); the decoder is evaluated once
    for all samples.
    """
    if model.z_dim != 2:
        raise ValueError(f"grid_log_likelihood integrates over a 2D latent space; this model has {model.z_dim} "
                         "latent dimensions (use iw_log_likelihood instead)")
    axis = torch.linspace(-limit, limit, points, dtype=x.dtype, device=x.device)
    z = torch.cartesian_prod(axis, axis)
    log_cell = 2 * math.log(2 * limit / (points - 1))
    mean = model.decode(z).to(x.dtype).flatten(1)
    log_pz = model.prior.log_prob(z)
    var = math.exp(decoder_logvar)
    const = -0.5 * mean.shape[1] * (decoder_logvar + math.log(2 * math.pi))
    log_px, kl = [], []
    for xb in x.split(batch_size):
        log_joint = const - 0.5 * torch.cdist(xb.flatten(1), mean).pow(2) / var + log_pz
        lp = torch.logsumexp(log_joint, dim=1) + log_cell
        mu, logvar = model.encode(xb)
        # both distributions as cell probabilities normalised on the grid: the KL between them is a finite sum
        log_q = torch.log_softmax(gaussian_log_prob(z[None], mu[:, None], logvar[:, None]), dim=1)
        log_post = torch.log_softmax(log_joint, dim=1)
        kl.append((log_q.exp() * (log_q - log_post)).sum(1))
        log_px.append(lp)
    return torch.cat(log_px), torch.cat(kl)
