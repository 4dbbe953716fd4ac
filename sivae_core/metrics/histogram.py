"""The 2D metrics of Table 2 of Daniel & Tamar (2021), with the authors' conventions reproduced exactly.

The histogram divergences are hand-written on purpose: their unusual conventions (densities, "batchmean",
reverse KLs) *are* the paper's numbers, and no library computes them; the textbook JSD beside them comes
from :func:`scipy.spatial.distance.jensenshannon`.

* **Sample KL / JSD** compare 2D histograms of 5,000 data points and 5,000 generated points
  (100 x 100 bins over [-2 scale, 2 scale]^2, ``density=True``). The authors' code computes them with
  ``F.kl_div(..., reduction="batchmean")`` on the 100 x 100 *density* arrays, which means:

  - ``kl``  = sum_bins P (log P - log(Q + eps)) / 100 (KL of data P to model Q, divided by the number of
    histogram rows, with densities rather than probabilities), and
  - ``jsd`` = 0.5 [KL(M || P) + KL(M || Q)] / 100 with M = (P + Q) / 2 (note: the *reverse* KLs, from M).

  These are the numbers in Table 2, so they are what we report as the paper metric. Because they are
  neither normalised nor bounded, we also report ``jsd_standard``: the textbook Jensen-Shannon
  divergence 0.5 KL(p || m) + 0.5 KL(q || m) between the two histograms as probability vectors, in
  nats (0 <= JSD <= ln 2).
* **Grid-normalised ELBO** (gnELBO) treats the energy ``KL(q(z|x) || p(z)) + ||x - D(mu(x))||^2``
  (betas 1, z = mu) as an unnormalised negative log-density, divides the energies of 12,800 data points
  by the summed energy over a 1024 x 1024 grid *and* those data points, and averages: a good model gives
  data points a small share of the energy. Reported in units of 1e-7. Lower is better for all three.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import jensenshannon
from torch import Tensor

from ..data.toy2d import EIGHT_GAUSSIAN_CENTERS, METRIC_SCALE, sample
from ..elbo import reconstruction_error
from ..models.base import IntroVAEModel

__all__ = [
    "histogram_divergences",
    "energy",
    "grid_normalized_elbo",
    "density_grid",
    "off_support_mass",
    "evaluate",
    "mode_coverage",
    "finds_all_modes",
]

EPS = 1e-14
BINS = 100
N_SAMPLES = 5_000
GRID_POINTS = 1024


def _hist(points: np.ndarray, scale: float, bins: int) -> np.ndarray:
    lim = 2.0 * scale
    h, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=bins, density=True, range=[[-lim, lim], [-lim, lim]])
    return h


def _kl_batchmean(target: np.ndarray, log_input: np.ndarray) -> float:
    """``F.kl_div(log_input, target, reduction="batchmean")``: sum target (log target - log_input) / rows."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(target > 0, target * (np.log(np.where(target > 0, target, 1.0)) - log_input), 0.0)
    return float(terms.sum() / target.shape[0])


def histogram_divergences(real: np.ndarray | Tensor, fake: np.ndarray | Tensor, scale: float,
                          bins: int = BINS) -> dict[str, float]:
    """Table 2's ``kl`` and ``jsd`` (authors' conventions) and the bounded ``jsd_standard`` (nats)."""
    real = np.asarray(real.detach().cpu() if isinstance(real, Tensor) else real, dtype=np.float64)
    fake = np.asarray(fake.detach().cpu() if isinstance(fake, Tensor) else fake, dtype=np.float64)
    p, q = _hist(real, scale, bins), _hist(fake, scale, bins)
    m = 0.5 * (p + q)
    kl = _kl_batchmean(p, np.log(q + EPS))
    jsd = 0.5 * (_kl_batchmean(m, np.log(p + EPS)) + _kl_batchmean(m, np.log(q + EPS)))
    # scipy returns the Jensen-Shannon *distance* (the square root), in nats with the default base.
    # No generated point in the window: q is all zeros; the old hand-written value (one of the two KLs) is kept.
    jsd_standard = float(jensenshannon(p.ravel(), q.ravel()) ** 2) if q.sum() > 0 else 0.5 * float(np.log(2))
    return {"kl": kl, "jsd": jsd, "jsd_standard": jsd_standard}


@torch.no_grad()
def energy(model: IntroVAEModel, x: Tensor, beta_rec: float = 1.0, beta_kl: float = 1.0,
           batch_size: int = 65_536) -> Tensor:
    """Per-point ``beta_kl KL(q(z|x)||p(z)) + beta_rec ||x - D(mu)||^2`` (the negative ELBO at z = mu; for a
    prior without a closed-form KL, its estimate at z = mu)."""
    device = next(model.parameters()).device
    out = []
    for chunk in x.split(batch_size):
        chunk = chunk.to(device)
        mu, logvar = model.encode(chunk)
        rec = reconstruction_error(chunk, model.decode(mu), model.event_dims)
        kl = model.prior.kl(mu, logvar, mu)
        out.append((beta_kl * kl + beta_rec * rec).double().cpu())
    return torch.cat(out)


def _grid(scale: float, n: int) -> Tensor:
    side = torch.linspace(-2.0 * scale, 2.0 * scale, n)
    xx, yy = torch.meshgrid(side, side, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1)


def grid_normalized_elbo(model: IntroVAEModel, data: Tensor, scale: float, grid_points: int = GRID_POINTS) -> float:
    """Mean over ``data`` of energy(x) / (sum of energies over the grid and ``data``); see module doc."""
    e_grid = energy(model, _grid(scale, grid_points))
    e_data = energy(model, data)
    return float((e_data / (e_grid.sum() + e_data.sum())).mean())


def density_grid(model: IntroVAEModel, scale: float, grid_points: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``exp(ELBO)`` on a square grid (the density plots of Fig. 2); returns (grid side, density[y, x])."""
    side = torch.linspace(-2.0 * scale, 2.0 * scale, grid_points)
    dens = torch.exp(-energy(model, _grid(scale, grid_points))).reshape(grid_points, grid_points)
    return side.numpy(), dens.T.numpy()


def off_support_mass(model: IntroVAEModel, dataset: str, grid_points: int = 64, n_data: int = 50_000) -> float:
    """Share of the model's normalised ``exp(ELBO)`` mass on grid cells where the data never falls.

    The cells are those of a ``grid_points`` x ``grid_points`` histogram of ``n_data`` data points over the
    evaluation window; a model that "hallucinates" likelihood between the modes scores high.
    """
    scale = METRIC_SCALE[dataset]
    data = sample(dataset, n_data, torch.Generator().manual_seed(123)).numpy()
    support = _hist(data, scale, grid_points) > 0
    lim = 2.0 * scale
    centers = torch.linspace(-lim, lim, 2 * grid_points + 1)[1::2]  # cell centres, x and y
    xx, yy = torch.meshgrid(centers, centers, indexing="ij")
    dens = torch.exp(-energy(model, torch.stack([xx.flatten(), yy.flatten()], 1))).reshape(grid_points, grid_points)
    dens = dens.numpy() / dens.sum().item()
    return float(dens[~support].sum())


def mode_coverage(points: Tensor, radius_tol: float = 0.2) -> tuple[int, float]:
    """For 8 Gaussians: how many of the 8 modes receive a sample within ``radius_tol``, and the share of
    samples that are within ``radius_tol`` of some mode ("high quality")."""
    centers = 2.0 * EIGHT_GAUSSIAN_CENTERS / 1.414
    d = torch.cdist(points.float().cpu(), centers)
    near = d.min(dim=1).values < radius_tol
    covered = int((d < radius_tol).any(dim=0).sum())
    return covered, float(near.float().mean())


def finds_all_modes(points: Tensor, min_on_mode: float = 0.5) -> bool:
    """The 8-Gaussians check of the book: every mode populated *and* most samples near a mode.

    Coverage alone cannot fail on the typical half-trained model: a ring through the modes puts a sample near
    each of them (8/8) while only about a third of its samples are near any mode."""
    covered, on_mode = mode_coverage(points)
    return covered == 8 and on_mode > min_on_mode


def evaluate(model: IntroVAEModel, dataset: str, seed: int = 0, n_samples: int = N_SAMPLES,
             grid_points: int = GRID_POINTS, n_elbo_points: int = 12_800, gnelbo: bool = True) -> dict[str, float]:
    """All Table 2 metrics of a trained model: ``kl``, ``jsd``, ``jsd_standard``, ``gnelbo`` (x 1e-7).

    Uses its own generator (``seed``) for the evaluation data and the model's samples. ``gnelbo=False``
    skips the grid-normalized ELBO (a 500 x 500 grid of ELBOs, most of the ~20 CPU-s an evaluation costs),
    for tables that report only the sample metrics (Tables 1 and 4 of Lu et al. 2022).
    """
    scale = METRIC_SCALE[dataset]
    g = torch.Generator().manual_seed(10_000 + seed)
    real = sample(dataset, n_samples, g)
    device = next(model.parameters()).device
    z = torch.randn(n_samples, model.z_dim, generator=g).to(device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        fake = model.decode(z).cpu()
    out = histogram_divergences(real, fake, scale)
    if gnelbo:
        out["gnelbo"] = grid_normalized_elbo(model, sample(dataset, n_elbo_points, g), scale, grid_points) * 1e7
    model.train(was_training)
    return out
