"""Tests for sivae_core.nash: the Nash-equilibrium analysis of seed 001, Sec. 9.6, on finite spaces.

Every check compares against something independent of the code under test: a hand computation, a
closed form from the paper, or a numeric optimizer started from random points.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy.optimize import minimize_scalar

from sivae_core import theory as N


def f64(x):
    return torch.tensor(x, dtype=torch.float64)


def dirichlet(n: int, seed: int, conc: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch._standard_gamma(torch.full((n,), conc, dtype=torch.float64), generator=g)
    return x / x.sum()


def random_stochastic(rows: int, cols: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(1.5 * torch.randn(rows, cols, generator=g, dtype=torch.float64), -1)


# --- Eq. 8, 11, 13 on a 2 x 2 case by hand ---------------------------------------------------------

PRIOR = [0.5, 0.5]
D = [[0.8, 0.2], [0.4, 0.6]]  # d[z, x] = p_d(x|z)
Q = [[0.7, 0.3], [0.2, 0.8]]  # q[x, z] = q(z|x)
P_DATA = [0.3, 0.7]
LOG = math.log


def hand_elbo() -> list[float]:
    # W(x) = sum_z q(z|x) [log p_d(x|z) + log p(z) - log q(z|x)]
    w0 = 0.7 * (LOG(0.8) + LOG(0.5) - LOG(0.7)) + 0.3 * (LOG(0.4) + LOG(0.5) - LOG(0.3))
    w1 = 0.2 * (LOG(0.2) + LOG(0.5) - LOG(0.2)) + 0.8 * (LOG(0.6) + LOG(0.5) - LOG(0.8))
    return [w0, w1]


def test_elbo_matches_hand_computation_and_eq11():
    w = N.elbo(f64(Q), f64(D), f64(PRIOR))
    assert torch.allclose(w, f64(hand_elbo()), atol=1e-14, rtol=0)
    # Eq. 11: W = log p_d(x) - KL(q(z|x) || p_d(z|x)), with p_d = (0.6, 0.4) and Bayes by hand.
    post = [[0.4 / 0.6, 0.2 / 0.6], [0.1 / 0.4, 0.3 / 0.4]]
    eq11 = [LOG(0.6) - sum(Q[0][z] * LOG(Q[0][z] / post[0][z]) for z in range(2)),
            LOG(0.4) - sum(Q[1][z] * LOG(Q[1][z] / post[1][z]) for z in range(2))]
    assert torch.allclose(w, f64(eq11), atol=1e-14, rtol=0)
    assert torch.allclose(N.true_posterior(f64(D), f64(PRIOR)), f64(post), atol=1e-15, rtol=0)
    assert torch.allclose(N.decoder_marginal(f64(D), f64(PRIOR)), f64([0.6, 0.4]), atol=1e-15, rtol=0)


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_encoder_objective_matches_hand_computation(alpha):
    w0, w1 = hand_elbo()
    # L_q = sum_x p_data W - (1/alpha) sum_x p_d exp(alpha W), p_d = (0.6, 0.4)
    expected = 0.3 * w0 + 0.7 * w1 - (0.6 * math.exp(alpha * w0) + 0.4 * math.exp(alpha * w1)) / alpha
    got = float(N.encoder_objective(f64(Q), f64(D), f64(PRIOR), f64(P_DATA), alpha))
    assert got == pytest.approx(expected, abs=1e-14)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0])
def test_decoder_objective_matches_hand_computation(gamma):
    w0, w1 = hand_elbo()
    expected = 0.3 * w0 + 0.7 * w1 + gamma * (0.6 * w0 + 0.4 * w1)
    got = float(N.decoder_objective(f64(Q), f64(D), f64(PRIOR), f64(P_DATA), gamma))
    assert got == pytest.approx(expected, abs=1e-14)
    no_data = float(N.decoder_objective(f64(Q), f64(D), f64(PRIOR), f64(P_DATA), gamma, data_term=False))
    assert no_data == pytest.approx(gamma * (0.6 * w0 + 0.4 * w1), abs=1e-14)


def test_zero_probability_terms_contribute_nothing():
    # x = 1 is never generated and never seen: its W is -inf, but it must not poison the sums.
    d = f64([[1.0, 0.0], [1.0, 0.0]])
    q = f64([[0.5, 0.5], [0.5, 0.5]])
    p_data = f64([1.0, 0.0])
    w = N.elbo(q, d, f64(PRIOR))
    assert w[0] == 0.0 and w[1] == -math.inf
    assert float(N.encoder_objective(q, d, f64(PRIOR), p_data, 1.0)) == pytest.approx(-1.0)
    assert float(N.decoder_objective(q, d, f64(PRIOR), p_data, 1.0)) == pytest.approx(0.0)


# --- d* (Eq. 16) -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_gamma_zero_gives_data_distribution(seed):
    p = dirichlet(7, seed)
    p[seed] = 0.0  # a state outside the data support
    p = p / p.sum()
    assert torch.equal(N.optimal_decoder_marginal(p, 0.0), p)


def test_negative_gamma_is_rejected():
    with pytest.raises(ValueError, match="gamma"):
        N.optimal_decoder_marginal(dirichlet(3, 0), -0.1)


@pytest.mark.parametrize("seed,gamma", [(0, 0.05), (1, 0.3), (2, 1.0), (3, 2.5), (4, 6.0)])
def test_optimal_marginal_is_stationary_and_beats_numeric_search(seed, gamma):
    p_data = dirichlet(6, seed)
    p_star = N.optimal_decoder_marginal(p_data, gamma)
    assert float(p_star.sum()) == pytest.approx(1.0, abs=1e-14)
    # Stationarity: p_data/p + gamma log p is the same constant (the multiplier) for every x.
    h = p_data / p_star + gamma * torch.log(p_star)
    assert float(h.max() - h.min()) < 1e-9
    # No numeric minimizer over the simplex, from random starts, does better.
    num = N.maximize_stochastic(lambda p: -N.regularized_kl(p[0], p_data, gamma), (1, 6), restarts=3, seed=seed)
    assert -num.value >= float(N.regularized_kl(p_star, p_data, gamma)) - 1e-12
    if gamma <= 1.0:  # the problem is convex near p_data: the search finds the same point
        assert float((num.argmax[0] - p_star).abs().max()) < 1e-6


def test_optimal_marginal_puts_no_mass_outside_support_and_sharpens():
    p_data = f64([0.5, 0.3, 0.0, 0.2])
    p_star = N.optimal_decoder_marginal(p_data, 0.3)
    assert p_star[2] == 0.0
    assert p_star[0] > p_data[0] and p_star[3] < p_data[3]  # mass moves to the mode
    assert float(N.entropy(p_star)) < float(N.entropy(p_data))


def test_decoder_level_solution_agrees_with_marginal():
    p_data, prior = dirichlet(5, 11), dirichlet(3, 12)
    num = N.optimal_decoder_numeric(p_data, prior, 0.2, restarts=2, seed=0)
    p_star = N.optimal_decoder_marginal(p_data, 0.2)
    assert float((N.decoder_marginal(num.argmax, prior) - p_star).abs().max()) < 1e-6
    assert -num.value == pytest.approx(float(N.regularized_kl(p_star, p_data, 0.2)), abs=1e-10)


def test_decoder_from_marginal_reproduces_the_marginal():
    p, prior = f64([0.5, 0.25, 0.0, 0.25]), dirichlet(3, 5)
    d = N.decoder_from_marginal(p, prior, seed=1)
    assert torch.allclose(d.sum(-1), torch.ones(3, dtype=torch.float64), atol=1e-14)
    assert torch.allclose(N.decoder_marginal(d, prior), p, atol=1e-13, rtol=0)
    assert bool((d[:, 2] == 0).all())


# --- Assumption 5, Theorem 7 -----------------------------------------------------------------------


def test_assumption_by_hand():
    p_data = f64([0.25, 0.75, 0.0])
    # alpha = 1: p_d(x) <= sqrt(p_data(x)) where p_data > 0; x = 2 is not constrained.
    assert N.assumption_holds(p_data, f64([0.5, 0.5, 0.0]), 1.0)
    assert not N.assumption_holds(p_data, f64([0.51, 0.49, 0.0]), 1.0)
    assert N.assumption_holds(p_data, f64([0.3, 0.3, 0.4]), 1.0)
    # alpha = 3: bound p_data^(1/4) = 0.7071 for x = 0
    assert N.assumption_holds(p_data, f64([0.70, 0.30, 0.0]), 3.0)
    assert not N.assumption_holds(p_data, f64([0.71, 0.29, 0.0]), 3.0)


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_largest_gamma_is_the_edge_of_assumption_5(alpha):
    p_data = dirichlet(6, 3)
    g0 = N.largest_gamma(p_data, alpha, tol=1e-7)
    assert g0 > 0  # Theorem 7
    for g in torch.linspace(0, g0, 6).tolist():
        assert N.assumption_holds(p_data, N.optimal_decoder_marginal(p_data, g), alpha)
    assert not N.assumption_holds(p_data, N.optimal_decoder_marginal(p_data, g0 + 1e-5), alpha)


# --- Lemma 4 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.5])
def test_lemma4_closed_form_matches_scalar_optimization(alpha):
    p_data = f64([0.02, 0.1, 0.3, 0.58])
    p_d = f64([0.4, 0.3, 0.2, 0.1])  # x = 0 and x = 1 violate the assumption for these alphas
    k_star = N.lemma4_optimal_kl(p_d, p_data, alpha)
    for x in range(4):
        a = float(p_d[x]) ** (alpha + 1) / float(p_data[x])
        res = minimize_scalar(lambda k, a=a: -(-k - a / alpha * math.exp(-alpha * k)), bounds=(0, 50), method="bounded",
                              options={"xatol": 1e-12})
        assert float(k_star[x]) == pytest.approx(res.x, abs=1e-7)
        assert (float(k_star[x]) > 0) == (a > 1)
    gain = N.lemma4_encoder_gain(p_d, p_data, alpha)
    assert bool((gain[k_star > 0] > 0).all()) and bool((gain[k_star == 0] == 0).all())


def test_lemma4_outside_data_support_pushes_kl_up():
    # The paper's proof says K* = 0 when p_data(x) = 0 < p_d(x); the objective there increases in K.
    k = N.lemma4_optimal_kl(f64([0.5, 0.5]), f64([1.0, 0.0]), 1.0)
    assert k[0] == 0.0 and k[1] == math.inf


@pytest.mark.parametrize("seed", range(3))
def test_best_response_encoder_matches_numeric_maximization(seed):
    n, m, alpha = 5, 3, 1.0
    p_data, prior = dirichlet(n, 100 + seed), dirichlet(m, 200 + seed)
    d = random_stochastic(m, n, 300 + seed)
    q_br = N.best_response_encoder(d, prior, p_data, alpha)
    post = N.true_posterior(d, prior)
    pd = N.decoder_marginal(d, prior)
    # Each row sits at the Lemma 4 KL (clipped to the largest reachable one).
    k_max = -torch.log(post.min(-1).values)
    target = torch.minimum(N.lemma4_optimal_kl(pd, p_data, alpha), k_max)
    assert torch.allclose(N.kl_divergence(q_br, post), target, atol=1e-10, rtol=0)
    value = float(N.encoder_objective(q_br, d, prior, p_data, alpha))
    # Where K* > 0 the row objective has spurious local maxima at point masses whose KL is below K*,
    # so the search needs a few starts; none may beat the closed form.
    num = N.best_response_encoder_numeric(d, prior, p_data, alpha, restarts=6, seed=seed)
    assert max(num.values) <= value + 1e-10
    assert num.value == pytest.approx(value, abs=1e-8)
    # And the closed-form gain over the true posterior is exactly the sum of the Lemma 4 gains
    # (where no row is clipped).
    if bool((N.lemma4_optimal_kl(pd, p_data, alpha) <= k_max).all()):
        gain = value - float(N.encoder_objective(post, d, prior, p_data, alpha))
        assert gain == pytest.approx(float(N.lemma4_encoder_gain(pd, p_data, alpha).sum()), abs=1e-10)


# --- Theorem 6 -------------------------------------------------------------------------------------


def test_theorem6_on_random_instances():
    """(q*, d*) is a Nash equilibrium whenever Assumption 5 holds: neither player gains by deviating."""
    held = 0
    for seed in range(10):
        n, m = 3 + seed % 4, 2 + seed % 2
        alpha = 1.0 + (seed % 3) * 0.5
        p_data, prior = dirichlet(n, 1000 + seed), dirichlet(m, 2000 + seed)
        gamma = 0.05 + 0.1 * (seed % 5)
        p_star = N.optimal_decoder_marginal(p_data, gamma)
        if not N.assumption_holds(p_data, p_star, alpha):
            continue
        held += 1
        d_star = N.decoder_from_marginal(p_star, prior, seed=seed)
        q_star = N.true_posterior(d_star, prior)
        # Encoder: the closed-form best response is the true posterior, and no random start beats it.
        assert float((N.best_response_encoder(d_star, prior, p_data, alpha) - q_star).abs().max()) < 1e-9
        lq = float(N.encoder_objective(q_star, d_star, prior, p_data, alpha))
        enc = N.best_response_encoder_numeric(d_star, prior, p_data, alpha, restarts=1, seed=seed)
        assert enc.value <= lq + 1e-10
        assert float((enc.argmax - q_star).abs().max()) < 1e-4
        # Decoder: nothing beats d* against q*, and the search lands on d* itself.
        ld = float(N.decoder_objective(q_star, d_star, prior, p_data, gamma))
        dec = N.best_response_decoder(q_star, prior, p_data, gamma, restarts=1, seed=seed)
        assert dec.value <= ld + 1e-10
        assert dec.value == pytest.approx(ld, abs=1e-8)
        assert float((dec.argmax - d_star).abs().max()) < 1e-4
    assert held >= 8


def test_equilibrium_breaks_when_assumption_fails():
    p_data, prior, alpha = f64([0.55, 0.25, 0.12, 0.08]), f64([0.5, 0.5]), 1.0
    gamma = 2.0
    p_star = N.optimal_decoder_marginal(p_data, gamma)
    assert not N.assumption_holds(p_data, p_star, alpha)
    d_star = N.decoder_from_marginal(p_star, prior, seed=0)
    q_star = N.true_posterior(d_star, prior)
    q_br = N.best_response_encoder(d_star, prior, p_data, alpha)
    gain = float(N.encoder_objective(q_br, d_star, prior, p_data, alpha)
                 - N.encoder_objective(q_star, d_star, prior, p_data, alpha))
    assert gain == pytest.approx(float(N.lemma4_encoder_gain(p_star, p_data, alpha).sum()), abs=1e-10)
    assert gain > 1e-3
    # The decoder half of the proof needs no assumption: d* is still the best response to q*.
    ld = float(N.decoder_objective(q_star, d_star, prior, p_data, gamma))
    assert N.best_response_decoder(q_star, prior, p_data, gamma, restarts=1).value <= ld + 1e-10


def test_without_data_term_the_decoder_only_minimizes_entropy():
    p_data, prior = dirichlet(4, 7), f64([0.5, 0.5])
    q = N.true_posterior(N.decoder_from_marginal(p_data, prior), prior)
    res = N.best_response_decoder(q, prior, p_data, 1.0, restarts=1, data_term=False)
    assert float(N.entropy(N.decoder_marginal(res.argmax, prior))) < 1e-3


def test_gradient_play_converges_to_the_equilibrium():
    p_data, prior = dirichlet(5, 21), dirichlet(3, 22)
    alpha, gamma = 1.0, 0.2
    p_star = N.optimal_decoder_marginal(p_data, gamma)
    assert N.assumption_holds(p_data, p_star, alpha)
    hist = N.simulate_game(p_data, prior, alpha, gamma, steps=1500, lr=2.0, seed=0, record_every=500, p_star=p_star)
    assert hist.tv_to_star[-1] < 1e-3 < hist.tv_to_star[0]
    assert hist.posterior_gap[-1] < 1e-6
