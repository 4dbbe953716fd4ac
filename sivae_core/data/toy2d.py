"""The 2D toy distributions of Table 2 of Daniel & Tamar (2021), plus two moons, as seeded samplers.

Definitions follow the FFJORD/BNAF toy data that the authors' 2D code uses, with the one detail that
Table 2 depends on: "8 Gaussians" has centres at radius 2 and standard deviation 0.02, and the whole
set is divided by 1.414, so the modes sit at radius ~1.414 inside the [-2, 2]^2 metric window.
Every sampler takes a :class:`torch.Generator`, so a run's data stream is fixed by its seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["DATASETS", "METRIC_SCALE", "sample", "ToySampler", "EIGHT_GAUSSIAN_CENTERS"]

_S2 = 1.0 / math.sqrt(2.0)
#: Unit-circle directions of the 8 modes (before the radius-2 scaling and the division by 1.414).
EIGHT_GAUSSIAN_CENTERS = torch.tensor(
    [(1, 0), (-1, 0), (0, 1), (0, -1), (_S2, _S2), (_S2, -_S2), (-_S2, _S2), (-_S2, -_S2)], dtype=torch.float32
)


def _rand(n: int, g: torch.Generator) -> Tensor:
    return torch.rand(n, generator=g, device=g.device)


def _randn(shape: tuple[int, ...], g: torch.Generator) -> Tensor:
    return torch.randn(shape, generator=g, device=g.device)


def eight_gaussians(n: int, g: torch.Generator) -> Tensor:
    """8 modes on a circle of radius 2, std 0.02, all divided by 1.414."""
    centers = 2.0 * EIGHT_GAUSSIAN_CENTERS.to(g.device)
    idx = torch.randint(len(centers), (n,), generator=g, device=g.device)
    return (centers[idx] + 0.02 * _randn((n, 2), g)) / 1.414


def spiral(n: int, g: torch.Generator) -> Tensor:
    """Two interleaved spirals ("2spirals"), scaled by 1/3, Gaussian noise 0.1."""
    half = n // 2
    t = torch.sqrt(_rand(half, g)) * 540 * (2 * math.pi) / 360
    d1x = -torch.cos(t) * t + _rand(half, g) * 0.5
    d1y = torch.sin(t) * t + _rand(half, g) * 0.5
    arm = torch.stack([d1x, d1y], dim=1)
    x = torch.cat([arm, -arm], dim=0) / 3
    if x.shape[0] < n:  # odd n: one more point from the first arm
        x = torch.cat([x, arm[:1] / 3], dim=0)
    return x + 0.1 * _randn((n, 2), g)


def checkerboard(n: int, g: torch.Generator) -> Tensor:
    """Uniform on the 8 black squares of a 4x4 board spanning [-4, 4]^2."""
    x1 = _rand(n, g) * 4 - 2
    x2_ = _rand(n, g) - torch.randint(0, 2, (n,), generator=g, device=g.device).to(x1.dtype) * 2
    x2 = x2_ + torch.floor(x1) % 2
    return torch.stack([x1, x2], dim=1) * 2


def rings(n: int, g: torch.Generator) -> Tensor:
    """Four concentric circles of radius 3, 2.25, 1.5, 0.75, Gaussian noise 0.08."""
    per = [n // 4] * 3
    per = [n - sum(per)] + per  # outer ring, then inner ones (as in FFJORD)
    radii = [1.0, 0.75, 0.5, 0.25]
    pts = []
    for k, r in zip(per, radii):
        theta = torch.linspace(0, 2 * math.pi, k + 1, device=g.device)[:-1]
        pts.append(torch.stack([torch.cos(theta), torch.sin(theta)], dim=1) * r)
    x = torch.cat(pts, dim=0) * 3.0
    x = x[torch.randint(0, n, (n,), generator=g, device=g.device)]
    return x + 0.08 * _randn((n, 2), g)


def moons(n: int, g: torch.Generator) -> Tensor:
    """Two interleaving half circles (scikit-learn's make_moons, noise 0.1), scaled by 2 and centred."""
    upper = torch.randint(0, 2, (n,), generator=g, device=g.device).bool()
    t = _rand(n, g) * math.pi
    x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    pts = torch.stack([x, y], dim=1) + 0.1 * _randn((n, 2), g)
    return pts * 2 + torch.tensor([-1.0, -0.2], device=g.device)


DATASETS: dict[str, Callable[[int, torch.Generator], Tensor]] = {
    "8gaussians": eight_gaussians,
    "spiral": spiral,
    "checkerboard": checkerboard,
    "rings": rings,
    "moons": moons,
}

#: Half-width / 2 of the evaluation window: metrics use [-2 * scale, 2 * scale]^2.
METRIC_SCALE: dict[str, float] = {"8gaussians": 1.0, "spiral": 2.0, "checkerboard": 2.0, "rings": 2.0, "moons": 2.0}


def sample(dataset: str, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` points of ``dataset``; raises a clear error for an unknown name."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown 2D dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    return DATASETS[dataset](n, g)


class ToySampler:
    """A :class:`~sivae_core.training.samplers.Sampler` that draws fresh points every batch (infinite data)."""

    def __init__(self, dataset: str):
        if dataset not in DATASETS:
            raise ValueError(f"unknown 2D dataset {dataset!r}; choose one of {sorted(DATASETS)}")
        self.dataset = dataset

    def __call__(self, batch_size: int, generator: torch.Generator, rows: slice | None = None) -> Tensor:
        x = DATASETS[self.dataset](batch_size, generator)
        return x if rows is None else x[rows]

    def __repr__(self) -> str:
        return f"ToySampler({self.dataset!r})"
