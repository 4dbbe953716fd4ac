"""Plots of the 2D chapters: samples next to the ``exp(ELBO)`` density (the panels of Fig. 2)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

from ..data.toy2d import METRIC_SCALE
from ..metrics.histogram import density_grid
from ..models.base import IntroVAEModel

__all__ = ["plot_samples", "plot_density", "plot_model"]


def plot_samples(ax: Axes, points: np.ndarray | torch.Tensor, dataset: str, color: str = "tab:green",
                 title: str | None = None) -> None:
    """Scatter ``points`` on the dataset's evaluation window [-2 scale, 2 scale]^2."""
    pts = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    lim = 2 * METRIC_SCALE[dataset]
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color=color)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)


def plot_density(ax: Axes, model: IntroVAEModel, dataset: str, grid_points: int = 200, title: str | None = None) -> None:
    """``exp(ELBO(x))`` with betas 1 on the evaluation window: where the model puts likelihood."""
    side, dens = density_grid(model, METRIC_SCALE[dataset], grid_points)
    ax.pcolormesh(side, side, dens, cmap="jet", shading="auto")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)


def plot_model(model: IntroVAEModel, dataset: str, n: int = 2000, seed: int = 0, title: str = "") -> plt.Figure:
    """One figure: samples from the model and its density estimate."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 4))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = model.decode(model.prior.sample(n, g).to(next(model.parameters()).device))
    plot_samples(a, x, dataset, title=f"{title} samples".strip())
    plot_density(b, model, dataset, title=f"{title} exp(ELBO)".strip())
    fig.tight_layout()
    return fig
