"""Image grids: samples, reconstructions and interpolations as one picture (no torchvision needed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

__all__ = ["make_grid", "save_grid"]


def make_grid(images: Tensor, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> an (H', W', 3) array, ``nrow`` images per row (no torchvision needed)."""
    x = images.detach().float().clamp(0, 1).cpu()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    grid = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = x[i]
    return grid.permute(1, 2, 0).numpy()


def save_grid(images: Tensor, path: str | Path, nrow: int = 8) -> Path:
    """Write :func:`make_grid` of ``images`` as a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, make_grid(images, nrow))
    return path
