"""Image grids: samples, reconstructions and interpolations as one picture (no torchvision needed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

__all__ = ["make_grid", "save_grid", "read_grid"]


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


def read_grid(path: str | Path, side: int, nrow: int = 8, pad: int = 2) -> Tensor:
    """The tiles of a picture written by :func:`save_grid`, row by row, as an (N, 3, side, side) tensor in [0, 1].

    Stored pictures are results too: reading their tiles back lets a chapter *measure* what a figure from a GPU
    run shows (for example whether reconstructions follow their inputs) without the run's checkpoint. The colours
    are the PNG's 8 bits, so values are exact to 1/255. A picture whose size does not fit ``side``, ``nrow`` and
    ``pad`` is refused rather than cut at the wrong places.
    """
    img = torch.from_numpy(np.ascontiguousarray(plt.imread(str(path))[..., :3], dtype=np.float32)).permute(2, 0, 1)
    step = side + pad
    rows, rest = divmod(img.shape[1] - pad, step)
    if rest or img.shape[2] != nrow * step + pad:
        raise ValueError(f"{path} is {img.shape[2]}x{img.shape[1]} pixels: not a grid of {nrow} tiles of {side}x{side} "
                         f"per row with {pad}-pixel padding (pass the tile size and row length it was written with)")
    return torch.stack([img[:, pad + r * step: pad + r * step + side, pad + c * step: pad + c * step + side]
                        for r in range(rows) for c in range(nrow)])
