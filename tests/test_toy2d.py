"""2D data, the Table 2 metrics (authors' conventions), and the command-line entry point."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sivae_core.data.toy2d import DATASETS, sample
from sivae_core.metrics.histogram import (
    _grid,
    energy,
    finds_all_modes,
    grid_normalized_elbo,
    histogram_divergences,
    mode_coverage,
)
from sivae_core.models import ToyVAE, seeded


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_eight_gaussians_geometry():
    x = sample("8gaussians", 20_000, g())
    radius = x.norm(dim=1)
    assert abs(radius.mean().item() - 2 / 1.414) < 2e-3
    assert abs(radius.std().item() - 0.02 / 1.414) < 2e-3
    covered, on_mode = mode_coverage(x, radius_tol=0.1)
    assert covered == 8 and on_mode == 1.0


def test_mode_check_fails_a_ring_through_the_modes():
    """The check the 2D chapters assert: a ring through the eight modes covers all of them, yet fails."""
    t = 2 * math.pi * torch.rand(5000, generator=g(5))
    ring = (2 / 1.414) * torch.stack([t.cos(), t.sin()], dim=1)
    covered, on_mode = mode_coverage(ring)
    assert covered == 8 and 0.3 < on_mode < 0.4  # 8 arcs of length 0.4 on a circle of length 8.9
    assert not finds_all_modes(ring) and finds_all_modes(sample("8gaussians", 5000, g()))
    assert not finds_all_modes(sample("8gaussians", 5000, g())[:, :1].repeat(1, 2))  # a diagonal line


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_datasets_are_seeded_and_inside_their_window(name):
    a, b = sample(name, 1001, g(3)), sample(name, 1001, g(3))
    assert a.shape == (1001, 2) and torch.equal(a, b)
    assert not torch.equal(a, sample(name, 1001, g(4)))
    lim = 2.0 if name == "8gaussians" else 4.0
    assert (a.abs() <= lim + 0.5).float().mean() > 0.99


def test_checkerboard_occupies_alternate_squares():
    x = sample("checkerboard", 20_000, g())
    cell = (torch.floor(x[:, 0] / 2) + torch.floor(x[:, 1] / 2)) % 2
    assert torch.all(cell == 0) or torch.all(cell == 1)


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of"):
        sample("swissroll", 10)


def authors_divergences(real, fake, scale):
    """The authors' code, transcribed: F.kl_div on density histograms with batchmean."""
    rng = [[-2 * scale, 2 * scale]] * 2
    p = torch.tensor(np.histogram2d(real[:, 0], real[:, 1], bins=100, density=True, range=rng)[0])
    q = torch.tensor(np.histogram2d(fake[:, 0], fake[:, 1], bins=100, density=True, range=rng)[0])
    kl = F.kl_div(torch.log(q + 1e-14), p, reduction="batchmean")
    jsd = 0.5 * (F.kl_div(torch.log(p + 1e-14), 0.5 * (p + q), reduction="batchmean")
                 + F.kl_div(torch.log(q + 1e-14), 0.5 * (p + q), reduction="batchmean"))
    return kl.item(), jsd.item()


@pytest.mark.parametrize("fake_name", ["8gaussians", "rings"])
def test_histogram_metrics_match_the_authors_formula(fake_name):
    real = sample("8gaussians", 5000, g(1)).numpy()
    fake = (sample(fake_name, 5000, g(2)) * (0.5 if fake_name == "rings" else 1.0)).numpy()
    ours = histogram_divergences(real, fake, scale=1.0)
    kl, jsd = authors_divergences(real, fake, 1.0)
    assert ours["kl"] == pytest.approx(kl, rel=1e-9)
    assert ours["jsd"] == pytest.approx(jsd, rel=1e-9)


def test_histogram_metrics_identical_and_disjoint():
    x = sample("rings", 5000, g()).numpy()
    same = histogram_divergences(x, x, scale=2.0)
    assert same["jsd_standard"] == 0.0
    assert same["kl"] == pytest.approx(0.0, abs=1e-10) and same["jsd"] == pytest.approx(0.0, abs=1e-10)  # eps=1e-14
    left = np.random.default_rng(0).uniform([-3, -3], [-1, 3], size=(5000, 2))
    right = np.random.default_rng(1).uniform([1, -3], [3, 3], size=(5000, 2))
    far = histogram_divergences(left, right, scale=2.0)
    assert far["jsd_standard"] == pytest.approx(math.log(2), rel=1e-12)  # the maximum
    assert far["kl"] > 40  # ~ sum P (log P - log 1e-14) / 100: the eps penalty for empty model bins


def test_grid_normalized_elbo_matches_direct_computation():
    model = seeded(lambda: ToyVAE(hidden=16, n_hidden_layers=1), 0)
    data = sample("spiral", 300, g())
    grid = _grid(2.0, 8)
    e_grid, e_data = energy(model, grid), energy(model, data)
    expected = (e_data / (e_grid.sum() + e_data.sum())).mean().item()
    assert grid_normalized_elbo(model, data, scale=2.0, grid_points=8) == pytest.approx(expected, rel=1e-12)



def test_grid_normalized_elbo_of_a_constant_energy_is_one_over_the_point_count(monkeypatch):
    """A model that gives every point the same energy spreads the normalisation evenly: each of the 300 data
    points gets exactly 1 / (64 grid points + 300 data points)."""
    import sivae_core.metrics.histogram as histogram

    monkeypatch.setattr(histogram, "energy", lambda model, x: torch.full((len(x),), 3.0, dtype=torch.float64))
    data = sample("spiral", 300, g())
    assert histogram.grid_normalized_elbo(None, data, scale=2.0, grid_points=8) == pytest.approx(1 / 364, rel=1e-12)


def test_energy_is_kl_plus_squared_error_at_the_mean():
    model = seeded(lambda: ToyVAE(hidden=16, n_hidden_layers=1), 1)
    x = sample("moons", 10, g())
    mu, logvar = model.encode(x)
    expected = 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(1) + ((x - model.decode(mu)) ** 2).sum(1)
    torch.testing.assert_close(energy(model, x), expected.double().detach())


def test_cli_writes_metrics_samples_and_figure(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "sivae_core.toy2d", "--dataset", "8gaussians", "--method", "sivae",
           "--iters", "30", "--vae-warmup", "10", "--batch-size", "64", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"kl", "jsd", "jsd_standard", "gnelbo"} <= set(metrics)
    assert metrics["hparams"]["beta_neg"] == 0.9  # Table 5 default for 8 Gaussians
    assert "command" in metrics["provenance"] and "commit" in metrics["provenance"]
    assert np.load(out / "samples.npy").shape == (5000, 2)
    assert (out / "samples_density.png").stat().st_size > 10_000
