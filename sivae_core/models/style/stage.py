"""The growth stage of a progressively trained model: the current resolution and the fade-in factor.

Progressive growing (Karras et al.; the authors' ``lod_driver.py``) trains at 4x4 first and adds one
resolution at a time. A new resolution is blended in over the first half of its epochs: with blend
factor ``alpha`` going from 0 to 1,

* the decoder outputs ``lerp(up(ToRGB_old(h)), ToRGB_new(block_new(h)), alpha)``, where ``h`` is the
  input of the new block (so at ``alpha = 0`` the grown decoder is the previous one, upsampled);
* the encoder feeds ``lerp(FromRGB_old(down(x)), block_new(FromRGB_new(x)), alpha)`` to the old blocks,
  and weights the new block's styles by ``alpha``;
* the real images are blended the same way, :func:`fade_real`, so the data the encoder sees changes no
  faster than the networks do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .config import resolutions_up_to
from .layers import downsample, upsample

__all__ = ["Stage", "fade_real"]


@dataclass(frozen=True)
class Stage:
    """``resolution`` (4, 8, ...) and the fade-in factor ``alpha`` of its newest block (1: fully in)."""

    resolution: int
    alpha: float = 1.0

    def __post_init__(self) -> None:
        resolutions_up_to(self.resolution)  # validates the resolution
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.resolution == 4 and self.alpha != 1.0:
            raise ValueError("4x4 is the first resolution: there is nothing to fade in from (alpha must be 1)")

    @property
    def level(self) -> int:
        """Index of the resolution: 0 for 4x4, 1 for 8x8, ..."""
        return self.resolution.bit_length() - 3

    @property
    def fading(self) -> bool:
        return self.alpha < 1.0


def fade_real(x: Tensor, alpha: float) -> Tensor:
    """Real images as the model sees them during a fade-in: ``lerp(up(down(x)), x, alpha)`` (the authors
    blend with 2x average pooling and nearest upsampling, the same resampling as the networks' fade-in)."""
    if alpha >= 1.0:
        return x
    return torch.lerp(upsample(downsample(x)), x, alpha)
