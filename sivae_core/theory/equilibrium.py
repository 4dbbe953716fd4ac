"""The decoder's optimum of Eq. 16 and the assumption of Theorem 7 (Daniel & Tamar 2021, Sec. 9.6), exactly.

The stationary points of the regularized KL reduce to one scalar equation each, solved by vectorized
bisection (the branch inversions) and :func:`scipy.optimize.brentq` (the multiplier); Lemma 4 gives the
encoder's best response in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import brentq
from torch import Tensor

from .finite import as_f64, decoder_marginal, kl_divergence, regularized_kl, true_posterior

__all__ = ["stationary_marginals", "optimal_decoder_marginal", "decoder_from_marginal", "assumption_margin",
           "assumption_holds", "largest_gamma", "lemma4_optimal_kl", "lemma4_encoder_gain", "best_response_encoder"]


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
    """A root of the decreasing or increasing ``f`` (vectorized over its argument) in ``[lo, hi]``, by
    :func:`scipy.optimize.brentq` to machine precision; ``hi`` when ``f`` does not change sign there."""
    def scalar(c: float) -> float:
        return float(f(np.array([c]))[0])

    f_lo, f_hi = scalar(lo), scalar(hi)
    if f_lo == 0.0:
        return lo
    if np.sign(f_lo) == np.sign(f_hi):
        return hi
    return float(brentq(scalar, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500))


def stationary_marginals(p_data: Tensor, gamma: float, grid: int = 1024) -> list[Tensor]:
    """Every candidate minimizer of Eq. 16: stationary points with at most one concave coordinate.

    Returns full-length probability vectors (zeros outside the support of ``p_data``). The roots with one
    concave coordinate are bracketed on a grid of ``grid`` values of the multiplier ``c``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _stationary_marginals(as_f64(p_data).numpy(), gamma, grid)


def _all_convex(pd: np.ndarray, gamma: float, phi_end: np.ndarray) -> list[np.ndarray]:
    """The stationary point with every coordinate on the convex branch (the total mass decreases in the
    multiplier ``c``, so there is at most one root)."""
    c_lo = float(phi_end.max())
    c_hi = max(c_lo, 1.0)  # p <= p_data / c on the convex branch, so the mass is <= 1 at c = 1

    def mass(c: np.ndarray) -> np.ndarray:
        return _solve_convex(pd, gamma, c[:, None]).sum(-1) - 1.0

    if float(mass(np.array([c_lo]))[0]) < 0:
        return []
    c = _root(mass, c_lo, c_hi) if c_hi > c_lo else c_lo
    return [_solve_convex(pd, gamma, np.array([c]))]


def _one_concave(pd: np.ndarray, gamma: float, phi_end: np.ndarray, grid: int) -> list[np.ndarray]:
    """Stationary points with one coordinate ``k`` on the concave branch (only where ``p_data(k) < gamma``).

    On one shared grid of ``c``, ``mass_k(c) = sum_{x != k} p_convex(x) + p_concave(k) - 1`` is bracketed by
    sign changes (plus the partial cells at the ends of ``k``'s own range), then each root refined."""
    k_sup = pd.size
    lo_k = {k: max(float(np.delete(phi_end, k).max()), float(_phi(pd[k], gamma, np.array(math.log(pd[k] / gamma)))))
            for k in range(k_sup) if pd[k] < gamma}
    ks = [k for k in lo_k if lo_k[k] < pd[k]]  # the concave branch of k reaches c up to h_k(1) = p_data(k)
    if not ks:
        return []
    cs = np.linspace(min(lo_k[k] for k in ks), max(float(pd[k]) for k in ks), grid)
    conv = _solve_convex(pd, gamma, cs[:, None])  # (grid, k_sup), nan below each branch
    found = []
    for k in ks:
        conc = _solve_concave(float(pd[k]), gamma, cs)
        inside = (cs >= lo_k[k]) & (cs <= pd[k]) & np.isfinite(conc)
        vals = np.where(inside, np.nansum(np.delete(conv, k, axis=1), axis=1) + conc - 1.0, np.nan)
        others = np.arange(k_sup) != k

        def mass_k(c: np.ndarray, k: int = k, others: np.ndarray = others) -> np.ndarray:
            return _solve_convex(pd[others], gamma, c[:, None]).sum(-1) + _solve_concave(float(pd[k]), gamma, c) - 1.0

        brackets = [(float(cs[i]), float(cs[i + 1])) for i in range(grid - 1)
                    if np.isfinite(vals[i]) and np.isfinite(vals[i + 1]) and vals[i] * vals[i + 1] <= 0]
        idx = np.nonzero(inside)[0]
        ends = ((lo_k[k], float(cs[idx[0]])), (float(cs[idx[-1]]), float(pd[k]))) if idx.size else ()
        for a, b in ends:
            fa, fb = mass_k(np.array([a]))[0], mass_k(np.array([b]))[0]
            if b > a and np.isfinite(fa) and np.isfinite(fb) and fa * fb <= 0:
                brackets.append((a, b))
        for a, b in brackets:
            c = np.array([_root(mass_k, a, b)])
            p = _solve_convex(pd, gamma, c)
            p[k] = _solve_concave(float(pd[k]), gamma, c)[0]
            if np.isfinite(p).all():
                found.append(p)
    return found


def _stationary_marginals(p_np: np.ndarray, gamma: float, grid: int) -> list[Tensor]:
    support = p_np > 0
    pd = p_np[support]
    if gamma == 0 or pd.size == 1:
        return [as_f64(p_np).clone()]
    phi_end = _phi(pd, gamma, _branch_point(pd, gamma))  # the smallest c each convex branch reaches

    def embed(p_sup: np.ndarray) -> Tensor:
        full = np.zeros_like(p_np)
        full[support] = p_sup / p_sup.sum()
        return torch.from_numpy(full)

    return [embed(p) for p in _all_convex(pd, gamma, phi_end) + _one_concave(pd, gamma, phi_end, grid)]


def optimal_decoder_marginal(p_data: Tensor, gamma: float) -> Tensor:
    """``p_{d*}``, the generated marginal of ``d* in argmin_d {KL(p_data || p_d) + gamma H(p_d)}`` (Eq. 16).

    Only the marginal ``p_d(x) = sum_z p(z) p_d(x|z)`` enters Eq. 16, and with a prior of full support
    every marginal is reachable by some decoder, so minimizing over decoders and over marginals is the
    same problem. Solved without a starting point: all stationary points that can be minima (see
    :func:`stationary_marginals`; exact up to its bracketing grid of multipliers), then the one with the
    smallest objective. For ``gamma = 0`` the answer is ``p_data`` itself.
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
