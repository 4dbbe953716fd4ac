"""Coupling flows: exact inverse, log-determinant vs autograd Jacobian, the decoupled prior normalizes."""


import pytest
import torch

from sivae_core.elbo import standard_normal_log_prob
from sivae_core.flows import CouplingFlow, make_masks
from sivae_core.priors import DecoupledPrior


def random_flow(dim: int, n_layers: int = 4, mask: str = "alternating", seed: int = 0) -> CouplingFlow:
    """A flow far from the identity (the zero-initialized output layers are randomized)."""
    torch.manual_seed(seed)
    flow = CouplingFlow(dim, n_layers, hidden=16, mask=mask).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0, 0.5)
    return flow


def test_masks_alternate_and_complement():
    m = make_masks(5, 3, "alternating")
    assert m[0].tolist() == [1, 0, 1, 0, 1] and m[1].tolist() == [0, 1, 0, 1, 0] and torch.equal(m[2], m[0])
    h = make_masks(4, 2, "half")
    assert h[0].tolist() == [1, 1, 0, 0] and h[1].tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError):
        make_masks(1, 2)


def test_untrained_flow_is_the_identity():
    flow = CouplingFlow(3, 4)
    z = torch.randn(10, 3)
    z0, logdet = flow(z)
    assert torch.equal(z0, z) and torch.equal(logdet, torch.zeros(10))


@pytest.mark.parametrize("mask", ["alternating", "half"])
@pytest.mark.parametrize("dim", [2, 5])
def test_inverse_is_exact(dim, mask):
    flow = random_flow(dim, mask=mask)
    z = 2 * torch.randn(100, dim, dtype=torch.float64)
    z0, _ = flow(z)
    assert not torch.allclose(z0, z)
    assert torch.allclose(flow.inverse(z0), z, atol=1e-10)
    assert torch.allclose(flow(flow.inverse(z))[0], z, atol=1e-10)


@pytest.mark.parametrize("dim", [2, 3, 6])
def test_logdet_matches_autograd_jacobian(dim):
    flow = random_flow(dim, n_layers=5)
    for z in torch.randn(4, dim, dtype=torch.float64):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v.unsqueeze(0))[0].squeeze(0), z)
        _, logdet = flow(z.unsqueeze(0))
        assert logdet.item() == pytest.approx(torch.linalg.slogdet(jac).logabsdet.item(), abs=1e-9)


def test_scale_is_bounded():
    flow = random_flow(2, n_layers=1)
    with torch.no_grad():
        for p in flow.parameters():
            p.mul_(100)
    _, logdet = flow(torch.randn(50, 2, dtype=torch.float64) * 10)
    assert logdet.abs().max() <= flow.blocks[0].scale_bound + 1e-12  # one transformed coordinate per block


def test_decoupled_prior_integrates_to_one_on_a_grid():
    prior = DecoupledPrior(random_flow(2, n_layers=4, seed=3))
    side = torch.linspace(-12, 12, 481, dtype=torch.float64)
    zz = torch.cartesian_prod(side, side)
    with torch.no_grad():
        dens = prior.log_prob(zz).exp()
    h = (side[1] - side[0]).item()
    assert dens.sum().item() * h * h == pytest.approx(1.0, abs=2e-3)


def test_prior_samples_follow_log_prob():
    """Samples g^-1(eps) have the density log_prob: E_p[log p] by sampling == -entropy by the grid."""
    prior = DecoupledPrior(random_flow(2, n_layers=4, seed=3))
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(10_000, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        z = prior.rsample(eps)
        # change of variables: log p(z) = log N(eps) - log|det d g^-1/d eps| = log N(g(z)) + logdet g
        assert torch.allclose(prior.log_prob(z), standard_normal_log_prob(eps) + prior.flow(z)[1], atol=1e-9)
        side = torch.linspace(-12, 12, 481, dtype=torch.float64)
        zz = torch.cartesian_prod(side, side)
        lp = prior.log_prob(zz)
        h = (side[1] - side[0]).item()
        grid_mean = (lp.exp() * lp).sum().item() * h * h
        assert lp.exp().sum().item() * h * h == pytest.approx(1.0, abs=2e-3)  # the grid holds the mass
    assert prior.log_prob(z).mean().item() == pytest.approx(grid_mean, abs=0.03)
    assert prior.sample(5).shape == (5, 2)
