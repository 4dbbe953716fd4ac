"""The Nash equilibrium of Soft-IntroVAE, computed exactly on finite spaces (Daniel & Tamar 2021, Sec. 4.1, 9.6):
the finite spaces, the ELBO and both players' objectives.

The paper analyses the game in the *non-parametric* setting: the encoder may be any conditional
distribution ``q(z|x)`` and the decoder any ``p_d(x|z)``. On finite spaces both are just matrices, and
every expectation in the objectives is a finite sum, so each step of the proof can be checked by
computation instead of taken on trust. This package holds those computations; the Nash-equilibrium chapter uses them.

Conventions (shared by every function):

* ``X`` has ``n`` states and ``Z`` has ``m`` states. ``prior`` is ``p(z)``, shape ``(m,)``; ``p_data``
  is ``p_data(x)``, shape ``(n,)``.
* A decoder ``d`` is an ``(m, n)`` row-stochastic matrix, ``d[z, x] = p_d(x|z)``; an encoder ``q`` is an
  ``(n, m)`` row-stochastic matrix, ``q[x, z] = q(z|x)``.
* Everything is ``torch.float64``; arguments may be tensors or anything ``torch.as_tensor`` accepts.
* ``0 log 0 = 0``, and a term weighted by a zero probability contributes zero even when its other
  factor is ``-inf`` (a sum over ``x`` in Eq. 14 simply has no such term). ``q(z|x) > 0`` where
  ``p_d(x|z) = 0`` makes the ELBO ``-inf``, as it should.

Exact answers are used wherever the mathematics gives them: the optimal marginal of Eq. 16 (reduced to
one scalar equation per stationary point), the encoder's best response (Lemma 4, extended to every
``x``), the decoder's best response to ``q* = p_{d*}(z|x)`` (Theorem 6). Numeric maximizers over
softmax-parameterized stochastic matrices (L-BFGS, many random starts) exist to *check* those answers.
"""


from __future__ import annotations

import contextlib

import torch
from torch import Tensor

__all__ = ["single_thread", "as_f64", "decoder_marginal", "true_posterior", "entropy", "kl_divergence", "elbo",
           "encoder_objective", "decoder_objective", "regularized_kl"]

Array = Tensor


@contextlib.contextmanager
def single_thread():
    """Run torch on one intra-op thread: these problems are tiny, and on a shared CPU extra threads only
    contend (we measured a 100x slowdown of one L-BFGS evaluation with two busy cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def as_f64(a: object) -> Tensor:
    """``a`` as a float64 tensor (no copy when it already is one)."""
    return torch.as_tensor(a, dtype=torch.float64)


def _xlogy(x: Tensor, y: Tensor) -> Tensor:
    """``x log y`` with ``0 log y = 0`` for every ``y`` (including 0)."""
    return torch.special.xlogy(x, y)


def _weighted_sum(w: Tensor, v: Tensor) -> Tensor:
    """``sum_x w(x) v(x)`` over the last axis, skipping terms with ``w(x) = 0`` (``v`` may be ``-inf`` there)."""
    return torch.where(w > 0, w * v, torch.zeros_like(v)).sum(-1)


# ---------------------------------------------------------------------------------------------------
# The generative model and the ELBO (Eq. 8, 11)
# ---------------------------------------------------------------------------------------------------


def decoder_marginal(d: Tensor, prior: Tensor) -> Tensor:
    """``p_d(x) = E_{p(z)}[p_d(x|z)]``: the distribution of generated samples, shape ``(n,)``."""
    d, prior = as_f64(d), as_f64(prior)
    return prior @ d


def true_posterior(d: Tensor, prior: Tensor) -> Tensor:
    """``p_d(z|x) = p(z) p_d(x|z) / p_d(x)`` as an ``(n, m)`` encoder matrix (Bayes' rule).

    Where ``p_d(x) = 0`` the posterior is undefined; those rows are set to the prior, a harmless
    convention because such an ``x`` carries zero weight in every objective at which it is used here.
    """
    d, prior = as_f64(d), as_f64(prior)
    joint = (prior[:, None] * d).T  # (n, m): p(z) p_d(x|z)
    px = joint.sum(-1, keepdim=True)
    safe = torch.where(px > 0, px, torch.ones_like(px))
    return torch.where(px > 0, joint / safe, prior.expand_as(joint))


def entropy(p: Tensor) -> Tensor:
    """Shannon entropy ``H(p) = -sum p log p`` over the last axis (nats)."""
    p = as_f64(p)
    return -_xlogy(p, p).sum(-1)


def kl_divergence(p: Tensor, r: Tensor) -> Tensor:
    """``KL(p || r) = sum p log(p / r)`` over the last axis; ``+inf`` when ``p`` is not absolutely continuous."""
    p, r = as_f64(p), as_f64(r)
    return (_xlogy(p, p) - _xlogy(p, r)).sum(-1)


def elbo(q: Tensor, d: Tensor, prior: Tensor) -> Tensor:
    """The ELBO of every ``x``, Eq. 8: ``W(x; d, q) = E_{q(z|x)}[log p_d(x|z)] - KL(q(z|x) || p(z))``.

    Shape ``(n,)``. Written as ``sum_z q(z|x) [log p_d(x|z) + log p(z) - log q(z|x)]``, i.e. as
    ``E_q[log p_d(x, z) - log q(z|x)]``, from which Eq. 11 ``W = log p_d(x) - KL(q(z|x) || p_d(z|x))``
    follows by writing ``p_d(x, z) = p_d(x) p_d(z|x)``.
    """
    q, d, prior = as_f64(q), as_f64(d), as_f64(prior)
    log_joint_terms = _xlogy(q, d.T) + _xlogy(q, prior.expand_as(q))  # (n, m)
    return (log_joint_terms - _xlogy(q, q)).sum(-1)


# ---------------------------------------------------------------------------------------------------
# The game (Eq. 13)
# ---------------------------------------------------------------------------------------------------


def encoder_objective(q: Tensor, d: Tensor, prior: Tensor, p_data: Tensor, alpha: float) -> Tensor:
    """``L_q(q, d)`` of Eq. 13, to be *maximized* by the encoder:

    ``L_q = E_{p_data}[W(x; d, q)] - E_{p_d}[alpha^{-1} exp(alpha W(x; d, q))]``.

    The second expectation is over generated samples ``x ~ p_d``; Eq. 9 is what lets us write the
    paper's ``E_{z ~ p(z)}[exp(alpha W(D(z)))]`` this way, and on a finite space it is an exact sum.
    """
    p_data = as_f64(p_data)
    w = elbo(q, d, prior)
    pd = decoder_marginal(d, prior)
    return _weighted_sum(p_data, w) - _weighted_sum(pd, torch.exp(alpha * w)) / alpha


def decoder_objective(
    q: Tensor, d: Tensor, prior: Tensor, p_data: Tensor, gamma: float, data_term: bool = True
) -> Tensor:
    """``L_d(q, d)`` of Eq. 13, to be *maximized* by the decoder:

    ``L_d = E_{p_data}[W(x; d, q)] + gamma E_{p_d}[W(x; d, q)]`` (Eq. 10 turns the expectation over
    ``z ~ p(z)`` of the ELBO of a generated sample ``D(z)`` into one over ``x ~ p_d``).

    ``data_term=False`` drops ``E_{p_data}[W]``: the IntroVAE-style analysis that ignores the decoder's
    loss on real data (Sec. 4.1). Then ``L_d = -gamma H(p_d) - gamma E_{p_d}[KL(q || p_d(z|x))]``: against
    the current decoder's own posterior it is ``-gamma H(p_d)``, maximized by any point mass; for a fixed
    ``q`` the maximizer is the point mass on ``argmin_x KL(q(z|x) || p(z))``.
    """
    p_data = as_f64(p_data)
    w = elbo(q, d, prior)
    pd = decoder_marginal(d, prior)
    fake = gamma * _weighted_sum(pd, w)
    return _weighted_sum(p_data, w) + fake if data_term else fake


def regularized_kl(p: Tensor, p_data: Tensor, gamma: float) -> Tensor:
    """The objective of Eq. 16 as a function of the generated marginal: ``KL(p_data || p) + gamma H(p)``."""
    return kl_divergence(p_data, p) + gamma * entropy(p)
