"""Numeric checks of the equilibrium and the game played by gradient steps (Daniel & Tamar 2021, Sec. 9.6).

Numeric maximizers over softmax-parameterized stochastic matrices (L-BFGS, many random starts) exist to
*check* the closed-form answers of :mod:`.equilibrium`; :func:`best_response_check` runs that check at the
candidate equilibrium, and :func:`simulate_game` plays the game from a random start.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .equilibrium import (
    assumption_holds,
    best_response_encoder,
    decoder_from_marginal,
    lemma4_encoder_gain,
    optimal_decoder_marginal,
)
from .finite import (
    as_f64,
    decoder_marginal,
    decoder_objective,
    encoder_objective,
    entropy,
    kl_divergence,
    regularized_kl,
    single_thread,
    true_posterior,
)

__all__ = ["NumericMax", "maximize_stochastic", "optimal_decoder_numeric", "best_response_encoder_numeric",
           "best_response_decoder", "best_response_check", "GameHistory", "simulate_game"]


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


def best_response_decoder(q: Tensor, prior: Tensor, p_data: Tensor, gamma: float, restarts: int = 4, seed: int = 0,
                          init: Tensor | None = None, data_term: bool = True) -> NumericMax:
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

    def record(self, t: int, q: Tensor, d: Tensor, prior: Tensor, p_data: Tensor, alpha: float, gamma: float,
               p_star: Tensor) -> None:
        """Append step ``t``'s objectives and distances of the players ``(q, d)``."""
        pd = decoder_marginal(d, prior)
        self.step.append(t)
        self.L_q.append(float(encoder_objective(q, d, prior, p_data, alpha)))
        self.L_d.append(float(decoder_objective(q, d, prior, p_data, gamma)))
        self.kl_data.append(float(kl_divergence(p_data, pd)))
        self.entropy.append(float(entropy(pd)))
        self.tv_to_star.append(float(0.5 * (pd - p_star).abs().sum()))
        gap, support = kl_divergence(q, true_posterior(d, prior)), p_data > 0
        self.posterior_gap.append(float((p_data[support] * gap[support]).sum()))


def simulate_game(p_data: Tensor, prior: Tensor, alpha: float, gamma: float, steps: int = 2000, lr: float = 0.5,
                  seed: int = 0, alternating: bool = False, record_every: int = 10,
                  p_star: Tensor | None = None) -> GameHistory:
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

    def grad_q() -> Tensor:
        lq = encoder_objective(torch.softmax(th_q, -1), torch.softmax(th_d, -1).detach(), prior, p_data, alpha)
        return torch.autograd.grad(lq, th_q)[0]

    def grad_d() -> Tensor:
        ld = decoder_objective(torch.softmax(th_q, -1).detach(), torch.softmax(th_d, -1), prior, p_data, gamma)
        return torch.autograd.grad(ld, th_d)[0]

    with single_thread():
        for t in range(steps + 1):
            if t % record_every == 0:
                with torch.no_grad():
                    hist.record(t, torch.softmax(th_q, -1), torch.softmax(th_d, -1), prior, p_data, alpha, gamma, p_star)
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


def best_response_check(p_data: Tensor, prior: Tensor, gamma: float, alpha: float, restarts: int = 8,
                        seed: int = 0) -> dict[str, float | bool]:
    """Is ``(q*, d*) = (p_{d*}(z|x), d*)`` an equilibrium? How much each player's numeric best response beats it.

    ``enc_gap`` / ``dec_gap`` > 0 would refute the encoder's / decoder's half of Theorem 6; ``enc_dist`` is
    ``E_data KL(q || q*)`` of the numeric encoder, ``dec_dist`` the largest entry change of the numeric decoder.
    ``enc_closed_gain`` and ``lemma4_gain`` are the closed-form encoder's gain (both 0 when Assumption 5 holds).
    """
    p_st = optimal_decoder_marginal(p_data, gamma)
    d_st = decoder_from_marginal(p_st, prior, seed=seed)
    q_st = true_posterior(d_st, prior)
    lq_star = float(encoder_objective(q_st, d_st, prior, p_data, alpha))
    ld_star = float(decoder_objective(q_st, d_st, prior, p_data, gamma))
    q_closed = best_response_encoder(d_st, prior, p_data, alpha)
    enc = best_response_encoder_numeric(d_st, prior, p_data, alpha, restarts=restarts, seed=seed)
    dec = best_response_decoder(q_st, prior, p_data, gamma, restarts=restarts, seed=seed)
    return {
        "assumption": assumption_holds(p_data, p_st, alpha),
        "enc_gap": enc.value - lq_star,
        "enc_closed_gain": float(encoder_objective(q_closed, d_st, prior, p_data, alpha)) - lq_star,
        "lemma4_gain": float(lemma4_encoder_gain(p_st, p_data, alpha).sum()),
        "enc_dist": float((as_f64(p_data) * kl_divergence(enc.argmax, q_st)).sum()),
        "dec_gap": dec.value - ld_star,
        "dec_dist": float((dec.argmax - d_st).abs().max()),
    }
