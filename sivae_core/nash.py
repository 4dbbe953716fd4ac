"""The Nash equilibrium of Soft-IntroVAE, computed exactly on finite spaces (seed 001, Sec. 9.6).

The paper analyses the game in the *non-parametric* setting: the encoder may be any conditional
distribution ``q(z|x)`` and the decoder any ``p_d(x|z)``. On finite spaces both are just matrices, and
every expectation in the objectives is a finite sum, so each step of the proof can be checked by
computation instead of taken on trust. This module holds those computations; chapter 5 uses them.

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
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "as_f64",
    "decoder_marginal",
    "true_posterior",
    "entropy",
    "kl_divergence",
    "elbo",
    "encoder_objective",
    "decoder_objective",
    "regularized_kl",
    "optimal_decoder_marginal",
    "stationary_marginals",
    "decoder_from_marginal",
    "assumption_margin",
    "assumption_holds",
    "largest_gamma",
    "lemma4_optimal_kl",
    "lemma4_encoder_gain",
    "best_response_encoder",
    "best_response_decoder",
    "NumericMax",
    "maximize_stochastic",
    "optimal_decoder_numeric",
    "best_response_encoder_numeric",
    "GameHistory",
    "simulate_game",
]

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
    loss on real data; with it the decoder only minimizes ``H(p_d)`` (end of Sec. 4.1).
    """
    p_data = as_f64(p_data)
    w = elbo(q, d, prior)
    pd = decoder_marginal(d, prior)
    fake = gamma * _weighted_sum(pd, w)
    return _weighted_sum(p_data, w) + fake if data_term else fake


def regularized_kl(p: Tensor, p_data: Tensor, gamma: float) -> Tensor:
    """The objective of Eq. 16 as a function of the generated marginal: ``KL(p_data || p) + gamma H(p)``."""
    return kl_divergence(p_data, p) + gamma * entropy(p)


# ---------------------------------------------------------------------------------------------------
# d*: the entropy-regularized data distribution (Eq. 16)
# ---------------------------------------------------------------------------------------------------
#
# Over the simplex, with a multiplier for sum_x p(x) = 1, the stationarity condition of Eq. 16 reads,
# for every x in the support of p_data,
#
#     h_x(p(x)) = c,    h_x(p) = p_data(x) / p + gamma log p,
#
# for one common constant c. h_x is convex-decreasing on (0, p_data(x)/gamma] and increasing after,
# so each x has at most two solutions: one on the "convex" branch p <= p_data(x)/gamma (where Eq. 16 is
# locally convex in p(x)) and one on the "concave" branch. A minimum can have at most one coordinate
# on the concave branch (two would give a descent direction e_i - e_j), so the global minimum is among
# the stationary points "all convex" and "all convex but x = k", each found by a 1-D root search in c.
# Outside the support of p_data the optimum puts no mass (mass there only adds entropy and KL).

_BISECT = 200  # bisection steps for the encoder's mixing weight (interval [0, 1])
_INNER = 64  # bisection steps in log-probability (brackets are at most ~64 wide: 64 * 2^-64 < 4e-18)
_ROUNDS = 10  # multisection rounds for the multiplier c (64 points each: 64^10 >> 1 / eps)


def _phi(pd: np.ndarray, gamma: float, y: np.ndarray) -> np.ndarray:
    """``h(e^y) = p_data e^{-y} + gamma y``: the stationarity function in log-probability."""
    return pd * np.exp(-y) + gamma * y  # exp overflow to inf is intended (far left of the branch)


def _branch_point(pd: np.ndarray, gamma: float) -> np.ndarray:
    """Log of the end of the convex branch, ``min(0, log(p_data / gamma))``."""
    return np.minimum(np.log(pd / gamma), 0.0)


def _solve_convex(pd: np.ndarray, gamma: float, c: np.ndarray) -> np.ndarray:
    """``p`` on the convex branch with ``h(p) = c`` (broadcast); ``nan`` where ``c`` is below the branch."""
    shape = np.broadcast(pd, c).shape
    y_hi = np.broadcast_to(_branch_point(pd, gamma), shape).copy()
    valid = _phi(pd, gamma, y_hi) <= c
    y_lo = y_hi - 1.0
    for _ in range(64):  # phi -> inf as y -> -inf: widen until the bracket holds
        short = _phi(pd, gamma, y_lo) < c
        if not short.any():
            break
        y_lo = np.where(short, y_hi - 2.0 * (y_hi - y_lo), y_lo)
    for _ in range(_INNER):  # phi is decreasing on [y_lo, y_hi]
        mid = 0.5 * (y_lo + y_hi)
        above = _phi(pd, gamma, mid) > c
        y_lo, y_hi = np.where(above, mid, y_lo), np.where(above, y_hi, mid)
    return np.where(valid, np.exp(0.5 * (y_lo + y_hi)), np.nan)


def _solve_concave(pd: float, gamma: float, c: np.ndarray) -> np.ndarray:
    """``p`` on the concave branch ``[p_data/gamma, 1]`` with ``h(p) = c``; ``nan`` outside its range."""
    y_lo = np.full_like(c, math.log(pd / gamma))
    y_hi = np.zeros_like(c)
    valid = (c >= _phi(pd, gamma, y_lo)) & (c <= _phi(pd, gamma, y_hi))
    for _ in range(_INNER):  # phi is increasing
        mid = 0.5 * (y_lo + y_hi)
        below = _phi(pd, gamma, mid) < c
        y_lo, y_hi = np.where(below, mid, y_lo), np.where(below, y_hi, mid)
    return np.where(valid, np.exp(0.5 * (y_lo + y_hi)), np.nan)


def _root(f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float) -> float:
    """A root of ``f`` (vectorized over its argument) in ``[lo, hi]``, given a sign change there.

    Multisection: 64 evaluations per round, so ten rounds reach machine precision at the cost of a
    handful of vectorized calls instead of ~50 scalar ones.
    """
    f_lo = float(f(np.array([lo]))[0])
    for _ in range(_ROUNDS):
        cs = np.linspace(lo, hi, 65)
        vals = f(cs)
        vals[0] = f_lo
        change = np.nonzero(np.sign(vals[1:]) != np.sign(f_lo))[0]
        if change.size == 0:
            return hi
        i = int(change[0])
        lo, hi, f_lo = float(cs[i]), float(cs[i + 1]), float(vals[i])
    return 0.5 * (lo + hi)


def stationary_marginals(p_data: Tensor, gamma: float, grid: int = 1024) -> list[Tensor]:
    """Every candidate minimizer of Eq. 16: stationary points with at most one concave coordinate.

    Returns full-length probability vectors (zeros outside the support of ``p_data``). The roots with one
    concave coordinate are bracketed on a grid of ``grid`` values of the multiplier ``c``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _stationary_marginals(as_f64(p_data).numpy(), gamma, grid)


def _stationary_marginals(p_np: np.ndarray, gamma: float, grid: int) -> list[Tensor]:
    support = p_np > 0
    pd = p_np[support]
    k_sup = pd.size
    if gamma == 0 or k_sup == 1:
        return [as_f64(p_np).clone()]
    phi_end = _phi(pd, gamma, _branch_point(pd, gamma))  # the smallest c each convex branch reaches
    found: list[Tensor] = []

    def embed(p_sup: np.ndarray) -> Tensor:
        full = np.zeros_like(p_np)
        full[support] = p_sup / p_sup.sum()
        return torch.from_numpy(full)

    # All coordinates on the convex branch: the total mass decreases in c, so there is one root.
    c_lo = float(phi_end.max())
    c_hi = max(c_lo, 1.0)  # p <= p_data / c on the convex branch, so the mass is <= 1 at c = 1

    def mass(c: np.ndarray) -> np.ndarray:
        return _solve_convex(pd, gamma, c[:, None]).sum(-1) - 1.0

    if float(mass(np.array([c_lo]))[0]) >= 0:
        c = _root(mass, c_lo, c_hi) if c_hi > c_lo else c_lo
        found.append(embed(_solve_convex(pd, gamma, np.array([c]))))

    # One coordinate k on the concave branch (it exists only where p_data(k) < gamma). On one shared grid
    # of c: mass_k(c) = sum_{x != k} p_convex(x) + p_concave(k), bracketed by sign changes, then refined.
    ks = [k for k in range(k_sup) if pd[k] < gamma]
    if not ks:
        return found
    lo_k = {}
    for k in ks:
        others_end = np.delete(phi_end, k).max()
        lo_k[k] = max(float(others_end), float(_phi(pd[k], gamma, np.array(math.log(pd[k] / gamma)))))
    ks = [k for k in ks if lo_k[k] < pd[k]]  # the concave branch of k reaches c up to h_k(1) = p_data(k)
    if not ks:
        return found
    cs = np.linspace(min(lo_k.values()), max(float(pd[k]) for k in ks), grid)
    conv = _solve_convex(pd, gamma, cs[:, None])  # (grid, k_sup), nan below each branch
    for k in ks:
        conc = _solve_concave(float(pd[k]), gamma, cs)
        vals = np.nansum(np.delete(conv, k, axis=1), axis=1) + conc - 1.0
        inside = (cs >= lo_k[k]) & (cs <= pd[k]) & np.isfinite(conc)
        vals = np.where(inside, vals, np.nan)
        others = np.arange(k_sup) != k

        def mass_k(c: np.ndarray, k: int = k, others: np.ndarray = others) -> np.ndarray:
            rest = _solve_convex(pd[others], gamma, c[:, None]).sum(-1)
            return rest + _solve_concave(float(pd[k]), gamma, c) - 1.0

        brackets = [(float(cs[i]), float(cs[i + 1])) for i in range(grid - 1)
                    if np.isfinite(vals[i]) and np.isfinite(vals[i + 1]) and vals[i] * vals[i + 1] <= 0]
        # the ends of k's own range may fall between grid points: add the partial cells there
        idx = np.nonzero(inside)[0]
        if idx.size:
            for a, b in ((lo_k[k], float(cs[idx[0]])), (float(cs[idx[-1]]), float(pd[k]))):
                fa, fb = mass_k(np.array([a]))[0], mass_k(np.array([b]))[0]
                if b > a and np.isfinite(fa) and np.isfinite(fb) and fa * fb <= 0:
                    brackets.append((a, b))
        for a, b in brackets:
            c = np.array([_root(mass_k, a, b)])
            p = _solve_convex(pd, gamma, c)
            p[k] = _solve_concave(float(pd[k]), gamma, c)[0]
            if np.isfinite(p).all():
                found.append(embed(p))
    return found


def optimal_decoder_marginal(p_data: Tensor, gamma: float) -> Tensor:
    """``p_{d*}``, the generated marginal of ``d* in argmin_d {KL(p_data || p_d) + gamma H(p_d)}`` (Eq. 16).

    Only the marginal ``p_d(x) = sum_z p(z) p_d(x|z)`` enters Eq. 16, and with a prior of full support
    every marginal is reachable by some decoder, so minimizing over decoders and over marginals is the
    same problem. Solved exactly: all stationary points that can be minima (see
    :func:`stationary_marginals`), then the one with the smallest objective. For ``gamma = 0`` the answer
    is ``p_data`` itself.
    """
    p_data = as_f64(p_data)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    candidates = stationary_marginals(p_data, gamma)
    values = torch.stack([regularized_kl(p, p_data, gamma) for p in candidates])
    return candidates[int(values.argmin())]


def decoder_from_marginal(
    p: Tensor, prior: Tensor, kernel: Tensor | None = None, seed: int = 0, iters: int = 5000
) -> Tensor:
    """A decoder ``d`` with ``sum_z p(z) d[z, x] = p(x)``: a coupling of ``prior`` and ``p``, divided by ``p(z)``.

    Eq. 16 fixes only the marginal, so ``d*`` is any such decoder. ``kernel`` (``(m, n)``, positive; random
    from ``seed`` by default) picks which one: Sinkhorn scaling turns it into the coupling. A constant
    kernel gives ``d[z, x] = p(x)``, the decoder that ignores ``z``.
    """
    p, prior = as_f64(p), as_f64(prior)
    if kernel is None:
        g = torch.Generator().manual_seed(seed)
        kernel = torch.exp(2.0 * torch.randn(prior.numel(), p.numel(), generator=g, dtype=torch.float64))
    K = as_f64(kernel) * (p > 0)
    u = torch.ones_like(prior)
    for _ in range(iters):
        v = torch.where(p > 0, p / (u @ K).clamp_min(1e-300), torch.zeros_like(p))
        u = prior / (K @ v)
        if float((u[:, None] * K * v).sum(0).sub(p).abs().max()) < 1e-15:
            break
    joint = u[:, None] * K * v
    d = joint / prior[:, None]
    return d / d.sum(-1, keepdim=True)


# ---------------------------------------------------------------------------------------------------
# Assumption 5 and Theorem 7
# ---------------------------------------------------------------------------------------------------


def assumption_margin(p_data: Tensor, p_d: Tensor, alpha: float) -> float:
    """``min_{x: p_data(x) > 0} [p_data(x)^{1/(alpha+1)} - p_d(x)]``: Assumption 5 holds iff this is ``>= 0``."""
    p_data, p_d = as_f64(p_data), as_f64(p_d)
    s = p_data > 0
    return float((p_data[s] ** (1.0 / (alpha + 1.0)) - p_d[s]).min())


def assumption_holds(p_data: Tensor, p_d: Tensor, alpha: float, tol: float = 0.0) -> bool:
    """Assumption 5: ``p_d(x) <= p_data(x)^{1/(alpha+1)}`` for every ``x`` with ``p_data(x) > 0``.

    Equivalently ``a(x) = p_d(x)^{alpha+1} / p_data(x) <= 1``: the quantity that decides Lemma 4.
    ``tol`` allows for round-off in a numerically computed ``p_d``.
    """
    return assumption_margin(p_data, p_d, alpha) >= -tol


def largest_gamma(p_data: Tensor, alpha: float, gamma_max: float = 10.0, grid: int = 24, tol: float = 1e-6) -> float:
    """The largest ``gamma`` such that Assumption 5 holds for ``p_{d*}(gamma)`` on ``[0, gamma]``.

    Theorem 7 says the set of such ``gamma`` contains an interval ``[0, gamma_0]`` with ``gamma_0 > 0``; this
    finds its right end: a scan over a log-spaced grid up to ``gamma_max`` to find the first failure, then
    bisection to ``tol``. Returns ``gamma_max`` if no failure is found.
    """
    def ok(g: float) -> bool:
        return assumption_holds(p_data, optimal_decoder_marginal(p_data, g), alpha)

    gammas = torch.logspace(-4, math.log10(gamma_max), grid, dtype=torch.float64).tolist()
    lo = 0.0
    for g in gammas:
        if not ok(g):
            hi = g
            break
        lo = g
    else:
        return gamma_max
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


# ---------------------------------------------------------------------------------------------------
# Best responses (Lemma 4, Theorem 6)
# ---------------------------------------------------------------------------------------------------


def lemma4_optimal_kl(p_d: Tensor, p_data: Tensor, alpha: float) -> Tensor:
    """The KL ``K*(x) = KL(q(z|x) || p_d(z|x))`` that maximizes the encoder's objective for each ``x`` (Lemma 4).

    Per ``x``, Eq. 15 is ``p_data(x) g(-K)`` plus a constant, with ``g(y) = y - (a/alpha) exp(alpha y)`` and
    ``a = p_d(x)^{alpha+1} / p_data(x)``. ``g`` is concave with its peak at ``y = -log(a)/alpha``, and ``y <= 0``:

    * ``a <= 1`` (Assumption 5 at this ``x``): ``K* = 0``, the encoder matches the true posterior;
    * ``a > 1``: ``K* = log(a) / alpha > 0``, the encoder *moves away* from the true posterior.

    For ``p_data(x) = 0 < p_d(x)`` only ``-(1/alpha) p_d^{alpha+1} exp(-alpha K)`` remains, which increases in
    ``K``: ``K* = +inf`` (the paper's proof says 0 here; at ``d*`` the case never arises because
    ``p_{d*}(x) = 0`` outside the data support). Where ``p_d(x) = 0`` nothing depends on ``q(z|x)``: 0.
    """
    p_d, p_data = as_f64(p_d), as_f64(p_data)
    safe = torch.where(p_data > 0, p_data, torch.ones_like(p_data))
    log_a = (alpha + 1.0) * torch.log(p_d) - torch.log(safe)
    k = torch.clamp(log_a / alpha, min=0.0)
    k = torch.where(p_data > 0, k, torch.full_like(k, math.inf))
    return torch.where(p_d > 0, k, torch.zeros_like(k))


def lemma4_encoder_gain(p_d: Tensor, p_data: Tensor, alpha: float) -> Tensor:
    """What the encoder gains in ``L_q`` per ``x`` by moving from the true posterior to ``K*`` (Lemma 4).

    ``p_data(x) [g(-K*) - g(0)] = (p_data(x)/alpha) (a - 1 - log a)`` where ``a > 1``, else 0. Positive
    exactly where Assumption 5 fails, which is why ``(p_{d*}(z|x), d*)`` is then *not* an equilibrium.
    """
    p_d, p_data = as_f64(p_d), as_f64(p_data)
    safe = torch.where(p_data > 0, p_data, torch.ones_like(p_data))
    a = p_d ** (alpha + 1.0) / safe
    gain = p_data / alpha * (a - 1.0 - torch.log(a))
    return torch.where((p_data > 0) & (a > 1), gain, torch.zeros_like(gain))


def best_response_encoder(d: Tensor, prior: Tensor, p_data: Tensor, alpha: float) -> Tensor:
    """An encoder ``q*(d)`` maximizing ``L_q(., d)`` (Eq. 13), in closed form via Lemma 4.

    ``L_q`` depends on row ``q(.|x)`` only through ``K = KL(q(z|x) || p_d(z|x))``, and is concave in ``-K``
    with peak at :func:`lemma4_optimal_kl`. The KL values a row can reach are ``[0, K_max]`` with
    ``K_max = -log min_z p_d(z|x)`` (a point mass on the least likely ``z``), so the optimum is
    ``min(K*, K_max)``. We realize it on the segment from the posterior to that point mass
    (the KL grows monotonically along it; bisection on the mixing weight). With ``K* = 0`` this is the
    true posterior; otherwise the maximizer is not unique (any row with the same KL is as good).
    """
    d, prior, p_data = as_f64(d), as_f64(prior), as_f64(p_data)
    post = true_posterior(d, prior)  # (n, m)
    target = lemma4_optimal_kl(decoder_marginal(d, prior), p_data, alpha)
    z_min = post.argmin(-1)
    delta = torch.nn.functional.one_hot(z_min, post.shape[-1]).to(post)
    k_max = -torch.log(post.gather(-1, z_min[:, None])[:, 0])
    target = torch.minimum(target, k_max)
    lo, hi = torch.zeros_like(target), torch.ones_like(target)
    for _ in range(_BISECT):
        lam = 0.5 * (lo + hi)
        k = kl_divergence((1 - lam)[:, None] * post + lam[:, None] * delta, post)
        lo, hi = torch.where(k < target, lam, lo), torch.where(k < target, hi, lam)
    lam = torch.where(target >= k_max, torch.ones_like(lo), torch.where(target <= 0, torch.zeros_like(lo), 0.5 * (lo + hi)))
    return (1 - lam)[:, None] * post + lam[:, None] * delta


# ---------------------------------------------------------------------------------------------------
# Numeric maximization over stochastic matrices (the checks)
# ---------------------------------------------------------------------------------------------------


@dataclass
class NumericMax:
    """Result of :func:`maximize_stochastic`: the best matrix found, its value, and every restart's value."""

    argmax: Tensor
    value: float
    values: list[float] = field(default_factory=list)


def maximize_stochastic(
    fn: Callable[[Tensor], Tensor],
    shape: tuple[int, int],
    restarts: int = 8,
    seed: int = 0,
    init: Tensor | None = None,
    max_iter: int = 500,
    scale: float = 1.0,
) -> NumericMax:
    """Maximize ``fn(P)`` over row-stochastic ``P`` of ``shape`` with ``P = softmax(theta)`` and L-BFGS.

    ``restarts`` random starts (logits ``~ N(0, scale^2)`` from ``seed``), plus ``init`` (a stochastic matrix)
    when given. float64 and tight tolerances, so an optimum is reached to ~1e-10 in value.
    """
    g = torch.Generator().manual_seed(seed)
    starts = [scale * torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(restarts)]
    if init is not None:
        starts.insert(0, torch.log(as_f64(init).clamp_min(1e-300)))
    best: tuple[float, Tensor] | None = None
    values = []
    with single_thread():
        for theta0 in starts:
            v, p = _lbfgs_run(fn, theta0, max_iter)
            values.append(v)
            if best is None or v > best[0]:
                best = (v, p)
    assert best is not None
    return NumericMax(best[1], best[0], values)


def _lbfgs_run(fn: Callable[[Tensor], Tensor], theta0: Tensor, max_iter: int, rounds: int = 6) -> tuple[float, Tensor]:
    """One L-BFGS ascent of ``fn(softmax(theta))`` from ``theta0``; returns (value, matrix)."""
    theta = theta0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [theta], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter, history_size=50,
        tolerance_grad=1e-11, tolerance_change=1e-16, line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = -fn(torch.softmax(theta, -1))
        loss.backward()
        return loss

    # L-BFGS can stop early (a failed line search, a stale curvature history): restart it from where it
    # stopped, with a fresh history, until a round no longer improves the value.
    previous = math.inf
    for _ in range(rounds):
        value = float(opt.step(closure).detach())
        if previous - value <= 1e-15 * max(1.0, abs(value)):
            break
        previous = value
        opt.state.clear()
    with torch.no_grad():
        p = torch.softmax(theta, -1)
        return float(fn(p)), p


def optimal_decoder_numeric(
    p_data: Tensor, prior: Tensor, gamma: float, restarts: int = 4, seed: int = 0
) -> NumericMax:
    """Eq. 16 minimized numerically over *decoders* ``p_d(x|z)`` with the prior fixed (value is ``-min``)."""
    p_data, prior = as_f64(p_data), as_f64(prior)
    shape = (prior.numel(), p_data.numel())
    return maximize_stochastic(lambda d: -regularized_kl(decoder_marginal(d, prior), p_data, gamma), shape, restarts, seed)


def best_response_encoder_numeric(
    d: Tensor, prior: Tensor, p_data: Tensor, alpha: float, restarts: int = 4, seed: int = 0
) -> NumericMax:
    """``max_q L_q(q, d)`` by L-BFGS from random encoders: the check of :func:`best_response_encoder`."""
    d, prior, p_data = as_f64(d), as_f64(prior), as_f64(p_data)
    shape = (p_data.numel(), prior.numel())
    return maximize_stochastic(lambda q: encoder_objective(q, d, prior, p_data, alpha), shape, restarts, seed)


def best_response_decoder(
    q: Tensor,
    prior: Tensor,
    p_data: Tensor,
    gamma: float,
    restarts: int = 4,
    seed: int = 0,
    init: Tensor | None = None,
    data_term: bool = True,
) -> NumericMax:
    """``max_d L_d(q, d)`` (Eq. 13) over all decoders, numerically (L-BFGS, random starts, optional ``init``).

    There is no closed form for a general ``q``. For ``q = q* = p_{d*}(z|x)`` Theorem 6's proof gives one:
    ``L_d(q*, d) <= -KL(p_data || p_d) - gamma H(p_d) + const <= L_d(q*, d*)`` for *every* ``d`` (the
    assumption is not needed for this half), which is what the numeric search is there to test.
    ``data_term=False`` maximizes the IntroVAE-style objective without ``E_{p_data}[W]``.
    """
    q, prior, p_data = as_f64(q), as_f64(prior), as_f64(p_data)
    shape = (prior.numel(), p_data.numel())
    return maximize_stochastic(
        lambda d: decoder_objective(q, d, prior, p_data, gamma, data_term=data_term), shape, restarts, seed, init=init
    )


# ---------------------------------------------------------------------------------------------------
# The game itself: gradient play
# ---------------------------------------------------------------------------------------------------


@dataclass
class GameHistory:
    """What :func:`simulate_game` records every ``record_every`` steps (lists of floats), and the final players."""

    step: list[int] = field(default_factory=list)
    L_q: list[float] = field(default_factory=list)
    L_d: list[float] = field(default_factory=list)
    kl_data: list[float] = field(default_factory=list)  # KL(p_data || p_d)
    entropy: list[float] = field(default_factory=list)  # H(p_d)
    tv_to_star: list[float] = field(default_factory=list)  # TV(p_d, p_{d*})
    posterior_gap: list[float] = field(default_factory=list)  # E_{p_data} KL(q(z|x) || p_d(z|x))
    q: Tensor | None = None
    d: Tensor | None = None


def simulate_game(
    p_data: Tensor,
    prior: Tensor,
    alpha: float,
    gamma: float,
    steps: int = 2000,
    lr: float = 0.5,
    seed: int = 0,
    alternating: bool = False,
    record_every: int = 10,
    p_star: Tensor | None = None,
) -> GameHistory:
    """Gradient play on Eq. 13: each player ascends *its own* objective in softmax-logit space.

    Simultaneous: both gradients at the current ``(q, d)``, then both steps. Alternating: the encoder
    steps first and the decoder responds to the updated encoder (as in Algorithm 1 of the paper).
    Plain gradient ascent with step ``lr`` (Adam would hide how the game itself behaves). Distances are
    measured to the *set* of equilibria: the marginal ``p_{d*}`` (Eq. 16 fixes only the marginal) and the
    encoder's KL to the current decoder's true posterior.
    """
    p_data, prior = as_f64(p_data), as_f64(prior)
    n, m = p_data.numel(), prior.numel()
    if p_star is None:
        p_star = optimal_decoder_marginal(p_data, gamma)
    g = torch.Generator().manual_seed(seed)
    th_q = torch.randn(n, m, generator=g, dtype=torch.float64).requires_grad_(True)
    th_d = torch.randn(m, n, generator=g, dtype=torch.float64).requires_grad_(True)
    hist = GameHistory()
    support = p_data > 0

    def record(t: int) -> None:
        with torch.no_grad():
            q, d = torch.softmax(th_q, -1), torch.softmax(th_d, -1)
            pd = decoder_marginal(d, prior)
            hist.step.append(t)
            hist.L_q.append(float(encoder_objective(q, d, prior, p_data, alpha)))
            hist.L_d.append(float(decoder_objective(q, d, prior, p_data, gamma)))
            hist.kl_data.append(float(kl_divergence(p_data, pd)))
            hist.entropy.append(float(entropy(pd)))
            hist.tv_to_star.append(float(0.5 * (pd - p_star).abs().sum()))
            gap = kl_divergence(q, true_posterior(d, prior))
            hist.posterior_gap.append(float((p_data[support] * gap[support]).sum()))

    def grad_q() -> Tensor:
        lq = encoder_objective(torch.softmax(th_q, -1), torch.softmax(th_d, -1).detach(), prior, p_data, alpha)
        return torch.autograd.grad(lq, th_q)[0]

    def grad_d() -> Tensor:
        ld = decoder_objective(torch.softmax(th_q, -1).detach(), torch.softmax(th_d, -1), prior, p_data, gamma)
        return torch.autograd.grad(ld, th_d)[0]

    with single_thread():
        for t in range(steps + 1):
            if t % record_every == 0:
                record(t)
            if t == steps:
                break
            if alternating:
                gq = grad_q()
                with torch.no_grad():
                    th_q += lr * gq
                gd = grad_d()
            else:
                gq, gd = grad_q(), grad_d()
                with torch.no_grad():
                    th_q += lr * gq
            with torch.no_grad():
                th_d += lr * gd
    hist.q = torch.softmax(th_q, -1).detach()
    hist.d = torch.softmax(th_d, -1).detach()
    return hist
