"""Metrics against closed forms: Frechet distance of Gaussians, IW and grid log-likelihoods of a linear Gaussian
VAE, AUROC of a hand-computed case, PSNR."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from sivae_core.metrics import (
    auroc,
    auroc_standard_error,
    elbo_score,
    frechet_distance,
    frechet_distances,
    frechet_gaussians,
    grid_log_likelihood,
    iw_log_likelihood,
    load_feature_net,
    reconstruction_metrics,
)
from sivae_core.models.base import IntroVAEModel


class _Identity(nn.Module):
    num_features = 3

    def forward(self, x):
        return x


def test_frechet_distance_of_two_gaussians_matches_closed_form():
    rng = np.random.default_rng(0)
    n, d = 20000, 3
    a1 = rng.normal(size=(d, d)) * 0.5
    a2 = rng.normal(size=(d, d)) * 0.5
    mu1, mu2 = np.zeros(d), np.array([1.0, -0.5, 0.2])
    s1, s2 = a1 @ a1.T + np.eye(d), a2 @ a2.T + 0.5 * np.eye(d)
    x1 = rng.multivariate_normal(mu1, s1, n)
    x2 = rng.multivariate_normal(mu2, s2, n)
    exact = frechet_gaussians(mu1, s1, mu2, s2)
    est = frechet_distance(torch.from_numpy(x1), torch.from_numpy(x2), _Identity())
    assert est == pytest.approx(exact, rel=0.05, abs=0.02)
    empirical = frechet_gaussians(x1.mean(0), np.cov(x1.T), x2.mean(0), np.cov(x2.T))
    assert est == pytest.approx(empirical, rel=1e-6, abs=1e-6)  # torchmetrics == scipy on the same samples


def test_frechet_distances_share_the_real_statistics_and_match_single_calls():
    rng = np.random.default_rng(1)
    real = torch.from_numpy(rng.normal(size=(4000, 3)))
    fakes = {"near": real[:2000] + 0.1, "far": torch.from_numpy(rng.normal(2.0, 1.5, size=(2000, 3)))}
    counting = _Identity()
    seen = []
    counting.register_forward_hook(lambda m, i, o: seen.append(len(o)))
    both = frechet_distances(real, fakes, counting)
    assert sum(seen) == 4000 + 2000 + 2000  # the real set passes through the feature network once
    for name, fake in fakes.items():
        assert both[name] == pytest.approx(frechet_distance(real, fake, _Identity()), rel=1e-9)
    assert both["near"] < 0.05 < 1.0 < both["far"]


class _LinearGaussianVAE(IntroVAEModel):
    """p(z) = N(0, I), p(x|z) = N(W z + b, 1/2 I), q(z|x) = the exact posterior (W has orthogonal columns)."""

    def __init__(self, W, b):
        D, k = W.shape
        var = 0.5
        post_var = 1.0 / (1.0 + (W * W).sum(0) / var)  # diagonal because W^T W is diagonal
        enc = nn.Linear(D, 2 * k)
        dec = nn.Linear(k, D)
        with torch.no_grad():
            enc.weight.zero_()
            enc.weight[:k] = (post_var[:, None] * W.T) / var
            enc.bias[:k] = -(post_var[:, None] * W.T) @ b / var
            enc.bias[k:] = post_var.log()
            dec.weight.copy_(W)
            dec.bias.copy_(b)
        super().__init__(enc, dec, (D,), k)


def _linear_gaussian_case(seed: int, scales: tuple[float, float], n: int, x_scale: float, D: int = 5):
    """A 2D-latent linear Gaussian VAE with its exact posterior, ``n`` data points and their exact log p(x)."""
    torch.manual_seed(seed)
    W = (torch.linalg.qr(torch.randn(D, 2))[0] * torch.tensor(scales)).double()
    b = torch.randn(D).double()
    x = torch.randn(n, D, dtype=torch.float64) * x_scale
    cov = W @ W.T + 0.5 * torch.eye(D, dtype=torch.float64)
    return _LinearGaussianVAE(W, b).double(), W, x, torch.distributions.MultivariateNormal(b, cov).log_prob(x)


def test_iw_log_likelihood_is_exact_with_the_true_posterior():
    model, _, x, exact = _linear_gaussian_case(0, (2.0, 0.7), n=7, x_scale=1.5)
    k = 2
    est = iw_log_likelihood(model, x, n_samples=5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(est, exact)
    # the ELBO: with the exact posterior its expectation is log p(x) (the bound is tight) ...
    reps = x.repeat(4000, 1)
    elbo = elbo_score(model, reps, torch.Generator().manual_seed(0)).reshape(4000, 7)
    torch.testing.assert_close(elbo.mean(0), exact, atol=0.06, rtol=0)
    # ... and with a wrong posterior (means shifted by 1) it stays below log p(x), by the KL between the two
    with torch.no_grad():
        model.encoder.bias[:k] += 1.0
    shifted = elbo_score(model, reps, torch.Generator().manual_seed(0)).reshape(4000, 7).mean(0)
    assert torch.all(shifted < exact - 0.2)


def test_auroc_hand_computed():
    # in: [3, 1], out: [2, 0] -> pairs (3>2, 3>0, 1<2, 1>0): 3 of 4 correct
    assert auroc(torch.tensor([3.0, 1.0]), torch.tensor([2.0, 0.0])) == pytest.approx(0.75)
    assert auroc(torch.tensor([5.0, 6.0]), torch.tensor([1.0, 2.0])) == pytest.approx(1.0)
    assert auroc(torch.tensor([1.0]), torch.tensor([1.0])) == pytest.approx(0.5)  # a tie counts one half


def test_auroc_standard_error_by_hand_and_by_simulation():
    # Hanley & McNeil's formula by hand: a = 0.75, 10 + 10 samples: Q1 = 0.6, Q2 = 1.125 / 1.75
    var = (0.75 * 0.25 + 9 * (0.6 - 0.5625) + 9 * (1.125 / 1.75 - 0.5625)) / 100
    assert auroc_standard_error(0.75, 10, 10) == pytest.approx(math.sqrt(var), rel=1e-12)
    # exponential scores, for which the formula is exact: positives Exp(1), negatives Exp(3) -> AUROC 3/4
    g = torch.Generator().manual_seed(0)
    draws = [auroc(torch.empty(40).exponential_(1.0, generator=g), torch.empty(60).exponential_(3.0, generator=g))
             for _ in range(2000)]
    assert float(np.std(draws)) == pytest.approx(auroc_standard_error(0.75, 40, 60), rel=0.08)
    with pytest.raises(ValueError, match="AUROC in"):
        auroc_standard_error(1.2, 10, 10)


def test_psnr_mse_known_values():
    x = torch.zeros(2, 1, 16, 16)
    r = x + 0.1
    m = reconstruction_metrics(x, r)
    assert m["mse"] == pytest.approx(0.01, rel=1e-5)
    assert m["psnr"] == pytest.approx(20.0, rel=1e-4)
    assert reconstruction_metrics(x + 0.5, x + 0.5)["ssim"] == pytest.approx(1.0)


def test_shipped_feature_net_is_small_and_in_eval_mode():
    from sivae_core.metrics.frechet import FEATURE_NET_PATH

    assert FEATURE_NET_PATH.stat().st_size < 2_000_000
    net = load_feature_net()
    assert not net.training and net(torch.rand(2, 1, 28, 28)).shape == (2, 64)


SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "mnist").exists(), reason="../shared/data not present")
def test_recognized_classes_tells_digits_from_garments_and_collapse():
    from sivae_core.data import load_dataset, to_float
    from sivae_core.metrics import recognized_classes

    net = load_feature_net()
    digits = to_float(load_dataset("mnist", "test", SHARED).images[:1000])
    garments = to_float(load_dataset("fmnist", "test", SHARED).images[:1000])
    real = recognized_classes(digits, net, "mnist")
    assert real["recognized"] > 0.95 and real["classes_covered"] == 10
    assert recognized_classes(garments, net, "mnist")["recognized"] < 0.02
    assert recognized_classes(garments, net, "fmnist")["classes_covered"] == 10
    assert sum(real["class_counts"]) == round(real["recognized"] * 1000)  # the recognized images, per class
    collapsed = recognized_classes(digits[:1].repeat(200, 1, 1, 1), net, "mnist")
    assert collapsed["classes_covered"] == 1 and sorted(collapsed["class_counts"])[-2:] == [0, 200]
    assert recognized_classes(torch.rand(500, 1, 28, 28), net, "mnist")["recognized"] < 0.2


@pytest.mark.parametrize("beta_rec", [0.5, 1.0, 4.0])
def test_ood_decoder_variance_turns_beta_rec_times_sse_into_a_log_likelihood(beta_rec):
    """With sigma^2 = 1 / (2 beta_rec), differences of log p(x|z) are -beta_rec x differences of the squared
    error the model was trained on; beta_rec = 1 is the default variance 1/2."""
    from sivae_core.elbo import decoder_logvar
    from sivae_core.metrics import log_px_given_z

    g = torch.Generator().manual_seed(0)
    x, m1, m2 = (torch.rand(3, 1, 4, 4, generator=g) for _ in range(3))
    lv = decoder_logvar(beta_rec)
    diff = log_px_given_z(x, m1, lv) - log_px_given_z(x, m2, lv)
    sse = lambda m: ((x - m) ** 2).flatten(1).sum(1)  # noqa: E731
    assert torch.allclose(diff, -beta_rec * (sse(m1) - sse(m2)), atol=1e-5)
    assert decoder_logvar(1.0) == pytest.approx(math.log(0.5))


def test_grid_log_likelihood_matches_the_linear_gaussian_and_its_posterior_kl():
    model, W, x, exact = _linear_gaussian_case(1, (1.5, 0.8), n=6, x_scale=1.0)
    k = 2
    log_px, kl = grid_log_likelihood(model, x, limit=6.0, points=301, batch_size=4)
    torch.testing.assert_close(log_px, exact, atol=1e-6, rtol=0)
    torch.testing.assert_close(kl, torch.zeros_like(kl), atol=1e-6, rtol=0)  # q is the true posterior
    # encoder means shifted by 1: KL of two Gaussians with the posterior's variances, 1/2 sum_j 1/var_j
    post_var = 1.0 / (1.0 + (W ** 2).sum(0) / 0.5)
    with torch.no_grad():
        model.encoder.bias[:k] += 1.0
    _, shifted = grid_log_likelihood(model, x, limit=6.0, points=301)
    torch.testing.assert_close(shifted, torch.full_like(shifted, 0.5 * (1 / post_var).sum().item()), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="2D latent space; this model has 3"):
        grid_log_likelihood(_LinearGaussianVAE(torch.eye(4, 3), torch.zeros(4)), torch.zeros(1, 4))
