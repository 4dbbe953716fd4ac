"""The ELBO pieces against closed forms and Monte Carlo."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from sivae_core.elbo import (
    gaussian_log_prob,
    kl_diag_gaussians,
    kl_to_standard_normal,
    reconstruction_error,
    reparameterize,
)


def test_kl_to_standard_normal_matches_torch_distributions():
    mu, logvar = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_to_standard_normal(mu, logvar), ref)


def test_kl_to_standard_normal_matches_monte_carlo():
    g = torch.Generator().manual_seed(1)
    mu = torch.tensor([[0.7, -1.2, 0.1]], dtype=torch.float64)
    logvar = torch.tensor([[-0.5, 0.3, 0.0]], dtype=torch.float64)
    z = reparameterize(mu, logvar, torch.randn(400_000, 3, generator=g, dtype=torch.float64))
    mc = (gaussian_log_prob(z, mu, logvar) - gaussian_log_prob(z, torch.zeros(3), torch.zeros(3))).mean()
    exact = kl_to_standard_normal(mu, logvar)[0]
    assert abs(mc - exact) < 4e-3 * max(1.0, float(exact))


def test_general_kl_reduces_to_standard_and_matches_closed_form():
    mu_q, lv_q = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(kl_diag_gaussians(mu_q, lv_q, torch.zeros(4, 3), torch.zeros(4, 3)),
                               kl_to_standard_normal(mu_q, lv_q))
    mu_p, lv_p = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    ref = kl_divergence(Normal(mu_q, (0.5 * lv_q).exp()), Normal(mu_p, (0.5 * lv_p).exp())).sum(-1)
    torch.testing.assert_close(kl_diag_gaussians(mu_q, lv_q, mu_p, lv_p), ref)
    # KL(q || q) = 0
    torch.testing.assert_close(kl_diag_gaussians(mu_q, lv_q, mu_q, lv_q), torch.zeros(4, dtype=torch.float64))


def test_reconstruction_error_is_per_sample_sum_of_squares():
    x = torch.zeros(2, 3, 4, 4)
    x_rec = torch.ones(2, 3, 4, 4)
    x_rec[1] *= 2
    torch.testing.assert_close(reconstruction_error(x, x_rec, event_dims=3), torch.tensor([48.0, 192.0]))


def test_reconstruction_error_refuses_broadcasting():
    with pytest.raises(ValueError, match="shape"):
        reconstruction_error(torch.zeros(8, 1), torch.zeros(8, 2), event_dims=1)


def test_reparameterize_has_the_posterior_moments():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.tensor([1.5]), torch.tensor([math.log(0.25)])
    z = reparameterize(mu, logvar, torch.randn(200_000, 1, generator=g))
    assert abs(z.mean() - 1.5) < 5e-3
    assert abs(z.std() - 0.5) < 5e-3
