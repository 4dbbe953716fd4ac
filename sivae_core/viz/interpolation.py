"""Latent-space interpolation (Daniel & Tamar 2021, Sec. 6.3 Fig. 5 and Sec. 9.4.2 Fig. 18).

Images are encoded to their posterior means; intermediate codes are decoded. The 4-corner grid puts the
codes ``z_a, z_b, z_c, z_d`` of four images on the corners of a square and fills it bilinearly:
``z_ij = z_a (1-u)(1-v) + z_b u (1-v) + z_c (1-u) v + z_d u v`` with ``u = i/(n-1)``, ``v = j/(n-1)``
(the paper's 8x8 grid: n = 8, "7-step" interpolation).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.base import IntroVAEModel

__all__ = ["linear_codes", "bilinear_codes", "interpolate", "interpolate_grid"]


def linear_codes(z_a: Tensor, z_b: Tensor, steps: int) -> Tensor:
    """``steps`` codes from ``z_a`` to ``z_b`` (both included), shape (steps, z_dim)."""
    t = torch.linspace(0, 1, steps, device=z_a.device, dtype=z_a.dtype)[:, None]
    return (1 - t) * z_a + t * z_b


def bilinear_codes(z_a: Tensor, z_b: Tensor, z_c: Tensor, z_d: Tensor, n: int = 8) -> Tensor:
    """``n x n`` codes, row-major, shape (n, n, z_dim): corners a (top left), b (top right),
    c (bottom left), d (bottom right)."""
    u = torch.linspace(0, 1, n, device=z_a.device, dtype=z_a.dtype)
    v, u = torch.meshgrid(u, u, indexing="ij")  # v: row, u: column
    u, v = u[..., None], v[..., None]
    return z_a * (1 - u) * (1 - v) + z_b * u * (1 - v) + z_c * (1 - u) * v + z_d * u * v


@torch.no_grad()
def interpolate(model: IntroVAEModel, x_a: Tensor, x_b: Tensor, steps: int = 8) -> Tensor:
    """Decoded linear interpolation between two images (each (C, H, W)): (steps, C, H, W)."""
    mu, _ = model.encode(torch.stack([x_a, x_b]))
    return model.decode(linear_codes(mu[0], mu[1], steps))


@torch.no_grad()
def interpolate_grid(model: IntroVAEModel, corners: Tensor, n: int = 8) -> Tensor:
    """Decoded bilinear grid from four images ``corners`` (4, C, H, W): (n * n, C, H, W), row-major."""
    mu, _ = model.encode(corners)
    z = bilinear_codes(mu[0], mu[1], mu[2], mu[3], n)
    return model.decode(z.reshape(n * n, -1))
