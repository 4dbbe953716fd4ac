"""Latent-space diagnostics of Bhalodia, Lee & Elhabian (2020, Sec. 4.1 and 5.1): pockets, leaks and how a
decoupled prior removes them. Every function asks the model's prior (``model.prior``), so it serves VAEs and dpVAEs alike.

* The **aggregate posterior** ``q(z) = 1/N sum_n q(z | x_n)`` is a mixture of the encoded training
  points' Gaussians (:func:`aggregate_log_prob`).
* **Low-posterior (LP) samples**: draw from the prior (``z = g^-1(z0)`` for a dpVAE), keep those with
  the *lowest* q(z): prior samples in latent *pockets*, decoded off the data manifold.
* **High-posterior (HP) samples**: draw from q(z), keep those with the *lowest* prior support
  (``N(g(z); 0, I)`` for a dpVAE): codes of real data the prior almost never generates, latent *leaks*.
* **Leakage score** (Eq. 6): ``LS(tau) = E_q(z)[S_tau(z)]`` with ``S_tau = log q(z) - log N(h(z); 0, I)``
  where ``log p(z) < tau`` and 0 elsewhere (``h`` = identity for a VAE, ``g`` for a dpVAE; ``p`` is the
  model's prior in z). The paper's notation leaves whether ``p(h(z))`` includes the Jacobian open; we
  follow Eq. 6 literally (no Jacobian) and state it.
* **sKL** = KL(p || q) + KL(q || p) in the representation space, by sampling.
* **Traversals**: a straight line in z0 mapped through g^-1 (a curve in z that avoids pockets).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..elbo import reparameterize, standard_normal_log_prob
from ..models.base import IntroVAEModel

__all__ = ["encode_all", "aggregate_log_prob", "sample_aggregate", "sample_prior", "low_posterior",
           "high_posterior", "leakage_score", "symmetric_kl", "traverse", "generation_log_prob"]


@torch.no_grad()
def encode_all(model: IntroVAEModel, x: Tensor, batch_size: int = 4096) -> tuple[Tensor, Tensor]:
    """Posterior parameters of every point of ``x`` (the components of q(z))."""
    mus, lvs = [], []
    for chunk in x.split(batch_size):
        mu, lv = model.encode(chunk)
        mus.append(mu)
        lvs.append(lv)
    return torch.cat(mus), torch.cat(lvs)


@torch.no_grad()
def aggregate_log_prob(z: Tensor, mu: Tensor, logvar: Tensor, chunk: int = 1024) -> Tensor:
    """log q(z) = logsumexp_n log N(z; mu_n, diag var_n) - log N for every row of ``z``.

    The squared Mahalanobis distances of all (z, component) pairs are one matrix product per chunk,
    ``sum_l (z_l - mu_nl)^2 / var_nl = z^2 @ (1/var)^T - 2 z @ (mu/var)^T + sum_l mu_nl^2 / var_nl``,
    instead of a (chunk, N, L) broadcast: 10,000 components in 16 dimensions cost seconds, not minutes.
    The expansion is evaluated in float64, where its cancellation costs no accuracy that matters.
    """
    prec = (-logvar.double()).exp()  # (N, L)
    mu64 = mu.double()
    const = (mu64.pow(2) * prec).sum(-1) + logvar.double().sum(-1) + mu.shape[1] * math.log(2 * math.pi)
    out = []
    for zc in z.double().split(chunk):
        quad = zc.pow(2) @ prec.T - 2 * zc @ (mu64 * prec).T + const
        out.append(torch.logsumexp(-0.5 * quad, dim=1) - math.log(mu.shape[0]))
    return torch.cat(out).to(z.dtype)


@torch.no_grad()
def sample_aggregate(mu: Tensor, logvar: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` draws from q(z): pick a component uniformly, then reparameterize."""
    idx = torch.randint(mu.shape[0], (n,), generator=generator)
    eps = torch.randn(n, mu.shape[1], generator=generator)
    return reparameterize(mu[idx], logvar[idx], eps)


@torch.no_grad()
def sample_prior(model: IntroVAEModel, n: int, generator: torch.Generator) -> Tensor:
    """``n`` draws from the prior in the representation space (g^-1(z0) for a dpVAE)."""
    return model.prior.sample(n, generator)


@torch.no_grad()
def generation_log_prob(model: IntroVAEModel, z: Tensor) -> Tensor:
    """log N(h(z); 0, I): the standard-normal support of a code in the generation space."""
    return standard_normal_log_prob(model.prior.to_generation(z))


@torch.no_grad()
def low_posterior(model: IntroVAEModel, mu: Tensor, logvar: Tensor, n_pool: int = 5000, k: int = 5,
                  generator: torch.Generator | None = None) -> Tensor:
    """The ``k`` prior samples (out of ``n_pool``) with the lowest aggregate posterior q(z)."""
    g = generator or torch.Generator().manual_seed(0)
    z = sample_prior(model, n_pool, g)
    order = aggregate_log_prob(z, mu, logvar).argsort()
    return z[order[:k]]


@torch.no_grad()
def high_posterior(model: IntroVAEModel, mu: Tensor, logvar: Tensor, n_pool: int = 5000, k: int = 5,
                   generator: torch.Generator | None = None) -> Tensor:
    """The ``k`` aggregate-posterior samples (out of ``n_pool``) with the lowest prior support."""
    g = generator or torch.Generator().manual_seed(0)
    z = sample_aggregate(mu, logvar, n_pool, g)
    order = generation_log_prob(model, z).argsort()
    return z[order[:k]]


@torch.no_grad()
def leakage_score(model: IntroVAEModel, mu: Tensor, logvar: Tensor, taus: Tensor | list[float], n: int = 5000,
                  generator: torch.Generator | None = None) -> Tensor:
    """LS(tau) of Eq. 6 for each threshold, estimated with ``n`` samples of q(z)."""
    g = generator or torch.Generator().manual_seed(0)
    z = sample_aggregate(mu, logvar, n, g)
    log_q = aggregate_log_prob(z, mu, logvar)
    log_p = model.prior.log_prob(z)
    log_ph = generation_log_prob(model, z)
    taus = torch.as_tensor(taus, dtype=z.dtype)
    s = (log_q - log_ph).unsqueeze(0) * (log_p.unsqueeze(0) < taus.unsqueeze(1))
    return s.mean(dim=1)


@torch.no_grad()
def symmetric_kl(model: IntroVAEModel, mu: Tensor, logvar: Tensor, n: int = 5000,
                 generator: torch.Generator | None = None) -> float:
    """sKL = KL(p || q) + KL(q || p) between the prior p(z) and the aggregate posterior q(z), by sampling."""
    g = generator or torch.Generator().manual_seed(0)
    zq = sample_aggregate(mu, logvar, n, g)
    zp = sample_prior(model, n, g)
    kl_qp = (aggregate_log_prob(zq, mu, logvar) - model.prior.log_prob(zq)).mean()
    kl_pq = (model.prior.log_prob(zp) - aggregate_log_prob(zp, mu, logvar)).mean()
    return float(kl_qp + kl_pq)


@torch.no_grad()
def traverse(model: IntroVAEModel, z_start: Tensor, z_end: Tensor, n: int = 10) -> Tensor:
    """Codes along the line from ``z_start`` to ``z_end`` *in the generation space*, mapped to z.

    For a dpVAE the end points (given in z) are mapped to z0 = g(z), joined by a straight line there and
    mapped back with g^-1, so the path bends around pockets; for a VAE (identity map) it is the straight line in z.
    """
    t = torch.linspace(0, 1, n, dtype=z_start.dtype).unsqueeze(1)
    a, b = model.prior.to_generation(z_start.unsqueeze(0)), model.prior.to_generation(z_end.unsqueeze(0))
    return model.prior.rsample((1 - t) * a + t * b)
