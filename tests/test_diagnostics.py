"""Pockets and leaks diagnostics on cases with known answers."""

import math

import numpy as np
import pytest
import torch

from sivae_core.metrics.latent import (
    aggregate_log_prob,
    high_posterior,
    leakage_score,
    low_posterior,
    symmetric_kl,
    traverse,
)
from sivae_core.models import ToyVAE


def test_aggregate_posterior_of_one_component_is_that_gaussian():
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.0, math.log(4.0)]])
    z = torch.tensor([[0.0, 0.0]])
    expected = -0.5 * (0.25 + 1.0 / 4.0 + math.log(4.0) + 2 * math.log(2 * math.pi))
    assert aggregate_log_prob(z, mu, logvar).item() == pytest.approx(expected, rel=1e-6)
    two = aggregate_log_prob(z, torch.cat([mu, mu]), torch.cat([logvar, logvar]))
    assert two.item() == pytest.approx(expected, rel=1e-6)  # duplicates do not change the mixture


def test_aggregate_log_prob_matches_the_mixture_definition_with_narrow_far_components():
    """The matrix-product form must agree with the plain sum over components, also where its expansion
    cancels most (variances 1e-4 around means at distance ~10)."""
    g = torch.Generator().manual_seed(0)
    mu = 10 + torch.randn(300, 16, generator=g, dtype=torch.float64)
    logvar = math.log(1e-4) + 0.5 * torch.randn(300, 16, generator=g, dtype=torch.float64)
    z = mu[:50] + 0.01 * torch.randn(50, 16, generator=g, dtype=torch.float64)  # near some components
    pairs = -0.5 * (((z.unsqueeze(1) - mu) ** 2 / logvar.exp()) + logvar + math.log(2 * math.pi)).sum(-1)
    expected = torch.logsumexp(pairs, 1) - math.log(300)
    got = aggregate_log_prob(z.float(), mu.float(), logvar.float(), chunk=7)
    assert torch.allclose(got.double(), expected, rtol=1e-3)


def test_pockets_and_leaks_on_a_two_cluster_posterior():
    """q(z): two narrow clusters at (+-2, 0). Prior samples near the origin are in the pocket between them;
    the HP samples are the cluster codes farthest from the origin."""
    model = ToyVAE(hidden=8)
    mu = torch.tensor([[2.0, 0.0], [-2.0, 0.0]]).repeat(50, 1)
    logvar = torch.full_like(mu, math.log(0.05))
    lp = low_posterior(model, mu, logvar, n_pool=2000, k=5)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0]])
    # every LP sample is far from both clusters (q is ~0 there), where the pool's median sample is not
    assert torch.cdist(lp, centers).min() > 1.5
    assert aggregate_log_prob(lp, mu, logvar).max() < aggregate_log_prob(torch.zeros(1, 2), mu, logvar).item() + 1e-3
    hp = high_posterior(model, mu, logvar, n_pool=2000, k=5)
    assert hp.norm(dim=1).min() > 2.2
    ls = leakage_score(model, mu, logvar, taus=[-100.0, -4.0, 0.0])
    assert ls[0].item() == 0.0 and ls[2].item() > 0  # nothing below -100; everything below 0
    assert symmetric_kl(model, mu, logvar, n=2000) > 1.0


def test_symmetric_kl_near_zero_when_q_is_the_prior():
    model = ToyVAE(hidden=8)
    mu, logvar = torch.zeros(10, 2), torch.zeros(10, 2)
    assert abs(symmetric_kl(model, mu, logvar, n=4000)) < 1e-5


def test_traversal_is_a_line_in_generation_space():
    torch.manual_seed(0)
    model = ToyVAE(hidden=8, flow_layers=3, flow_hidden=8)
    with torch.no_grad():
        for p in model.prior.parameters():
            p.normal_(0, 0.5)
    a, b = torch.tensor([-1.0, 0.5]), torch.tensor([1.5, -0.5])
    path = traverse(model, a, b, n=7)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    z0 = model.prior.to_generation(path)
    steps = z0[1:] - z0[:-1]
    assert torch.allclose(steps, steps[0].expand_as(steps), atol=1e-5)  # equal steps along a line in z0
    straight = traverse(ToyVAE(hidden=8), a, b, n=3)
    assert torch.allclose(straight[1], (a + b) / 2)


def test_pockets_and_leaks_draws_q_on_a_window_that_holds_the_marked_codes():
    """An encoder whose codes lie near (6, 6): the q(z) panel widens beyond [-4, 4]^2 to show its marked codes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sivae_core.viz.latent import pockets_and_leaks

    model = ToyVAE(hidden=8)
    with torch.no_grad():
        last = model.encoder[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([6.0, 6.0, math.log(0.05), math.log(0.05)]))
    fig, axes = plt.subplots(1, 3)
    pockets_and_leaks(model, "far", axes)
    marked = np.concatenate([c.get_offsets() for c in axes[1].collections[1:]])
    lim = axes[1].get_xlim()[1]
    assert lim > 4 and np.abs(marked).max() < lim and axes[1].get_ylim()[1] == lim
    plt.close(fig)
