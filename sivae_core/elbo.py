"""The pieces of the (beta-)ELBO, written once and used by every objective in the book.

Conventions (they matter for reproducing the papers' numbers):

* A tensor of samples has shape ``batch_shape + event_shape``. ``event_dims`` says how many trailing
  dimensions make up *one* sample (1 for 2D points and latent codes, 3 for C x H x W images).
  ``batch_shape`` is ``(B,)`` for one run and ``(R, B)`` for a vectorized ensemble of ``R`` runs.
* Per-sample quantities (reconstruction error, KL) are **sums** over the event dimensions, as in the
  authors' code: the "mse" of Soft-IntroVAE is the per-sample *sum* of squared errors.
* ``batch_mean`` averages over the batch axis only, so an ensemble gets one loss per run.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "reparameterize",
    "kl_to_standard_normal",
    "kl_diag_gaussians",
    "reconstruction_error",
    "beta_elbo_energy",
    "batch_mean",
    "sum_event",
    "gaussian_log_prob",
    "standard_normal_log_prob",
    "decoder_logvar",
]


def sum_event(t: Tensor, event_dims: int) -> Tensor:
    """Sum the trailing ``event_dims`` dimensions: one number per sample."""
    if event_dims == 0:
        return t
    return t.sum(dim=tuple(range(-event_dims, 0)))


def batch_mean(per_sample: Tensor) -> Tensor:
    """Average a per-sample quantity over the batch (last) axis, keeping any run axis in front."""
    return per_sample.mean(dim=-1)


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """z = mu + sigma * eps with sigma = exp(logvar / 2).

    The noise ``eps`` is passed in rather than drawn here, so that the trainer owns every random number
    (one generator per run). That is what makes a vectorized ensemble reproduce sequential runs and a
    resumed run reproduce an uninterrupted one.
    """
    return mu + eps * torch.exp(0.5 * logvar)


def kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) per sample, summed over the latent dimension.

    Closed form: 0.5 * sum( mu^2 + sigma^2 - log sigma^2 - 1 ).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=-1)


def kl_diag_gaussians(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL( N(mu_q, diag var_q) || N(mu_p, diag var_p) ) per sample, summed over the last dimension.

    Closed form: 0.5 * sum( log var_p - log var_q + (var_q + (mu_q - mu_p)^2) / var_p - 1 ).
    """
    var_ratio = (logvar_q - logvar_p).exp()
    mahalanobis = (mu_q - mu_p).pow(2) / logvar_p.exp()
    return 0.5 * (var_ratio + mahalanobis - (logvar_q - logvar_p) - 1.0).sum(dim=-1)


def reconstruction_error(x: Tensor, x_rec: Tensor, event_dims: int) -> Tensor:
    """Per-sample sum of squared errors, ``L_r`` in the paper (a Gaussian decoder up to constants).

    A shape mismatch is an error rather than a silent broadcast: broadcasting a (B, 1) target against a
    (B, D) reconstruction would train happily on the wrong loss.
    """
    if x.shape != x_rec.shape:
        raise ValueError(
            f"reconstruction_error: input shape {tuple(x.shape)} and reconstruction shape "
            f"{tuple(x_rec.shape)} differ; the decoder output must match the data shape."
        )
    return sum_event((x_rec - x).pow(2), event_dims)


def beta_elbo_energy(rec_err: Tensor, kl: Tensor, beta_rec: Tensor | float, beta_kl: Tensor | float) -> Tensor:
    """The negative beta-ELBO, ``beta_rec * L_r + beta_kl * KL`` (lower is better).

    Algorithm 2 of the paper writes ELBO(beta_rec, beta_kl, X, X_r, Z) = -(beta_rec L_rec + beta_kl KL);
    the objectives work with this positive "energy" and put the sign where the paper does.
    """
    return beta_rec * rec_err + beta_kl * kl


def gaussian_log_prob(x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(x; mu, diag exp(logvar)), summed over the last dimension."""
    return -0.5 * (((x - mu).pow(2) / logvar.exp()) + logvar + math.log(2 * math.pi)).sum(dim=-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I), summed over the last dimension."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=-1)


def decoder_logvar(beta_rec: float) -> float:
    """The log-variance of the Gaussian decoder that ``beta_rec * L_r`` is the negative log-likelihood of.

    ``beta_rec ||x - D(z)||^2 = -log N(x; D(z), sigma^2 I) + const`` exactly when ``sigma^2 = 1 / (2 beta_rec)``.
    Likelihood scores (the ELBO and importance-weighted bounds of the OOD and dpVAE chapters) must use the
    variance the model was trained with: another one reweights the ELBO's two terms, and any ranking with them.
    """
    return math.log(1.0 / (2.0 * beta_rec))
