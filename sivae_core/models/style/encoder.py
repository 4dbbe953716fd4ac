"""The style-based encoder (ALAE's, as the authors use it).

Every layer reports the style it removes. A block at resolution ``r`` is

    conv 3x3 -> bias -> LeakyReLU -> [style C_1 (mean, std)] -> IN
    -> blur -> conv 3x3 + 2x downsampling -> bias -> LeakyReLU -> [style C_2 (mean, std)] -> IN

where ``[style C (mean, std)]`` is a learned linear map of the activation's per-channel mean and standard
deviation (the Instance-Norm statistics). The style of the image is the sum over all blocks,
``w = sum_i C_i [mu(y_i), sigma(y_i)]`` (Daniel & Tamar 2021, Appendix 9.2.2), and a 3-layer mapping turns it into
``(mu_q, logvar_q)``. Each resolution has its own 1x1 FromRGB. The 4x4 block is like the others: its second
convolution produces a 2x2 map of which only the style is used (the default encoder of the authors'
CelebA-HQ configuration), so there are as many style readings as the decoder has style inputs.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import StyleConfig
from .layers import (
    LEAKY_SLOPE,
    Blur,
    EqualConv2d,
    EqualLinear,
    downsample,
    instance_style,
)
from .stage import Stage

__all__ = ["EncoderBlock", "EncoderMapping", "StyleEncoder"]


class EncoderBlock(nn.Module):
    """One resolution of the encoder: returns the normalized, downsampled map and the block's style."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, fused: bool):
        super().__init__()
        self.conv = EqualConv2d(in_channels, in_channels, 3, bias=False)
        self.bias1 = nn.Parameter(torch.zeros(1, in_channels, 1, 1))
        self.style1 = EqualLinear(2 * in_channels, w_dim)
        self.blur = Blur(in_channels)
        self.down = EqualConv2d(in_channels, out_channels, 3, bias=False, resample="down", fused=fused)
        self.bias2 = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.style2 = EqualLinear(2 * out_channels, w_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.leaky_relu(self.conv(x) + self.bias1, LEAKY_SLOPE)
        w = self.style1(instance_style(x))
        x = self.down(self.blur(F.instance_norm(x)))
        x = F.leaky_relu(x + self.bias2, LEAKY_SLOPE)
        w = w + self.style2(instance_style(x))
        return F.instance_norm(x), w


class EncoderMapping(nn.Module):
    """``w -> (mu, logvar)`` as one ``(B, 2 z_dim)`` tensor: ``layers`` equalized linear layers with lr
    multiplier, each followed by LeakyReLU, the last one too (the authors' mapping; a LeakyReLU is a
    bijection, so the posterior parameters can still take any value)."""

    def __init__(self, w_dim: int, z_dim: int, units: int, layers: int, lr_mul: float):
        super().__init__()
        sizes = [w_dim] + [units] * (layers - 1) + [2 * z_dim]
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul) for a, b in pairwise(sizes))

    def forward(self, w: Tensor) -> Tensor:
        for layer in self.layers:
            w = F.leaky_relu(layer(w), LEAKY_SLOPE)
        return w


class StyleEncoder(nn.Module):
    """``image -> (mu, logvar)`` (concatenated) at the current :class:`Stage`, fading the newest block in."""

    def __init__(self, config: StyleConfig):
        super().__init__()
        res = config.resolutions
        self.from_rgb = nn.ModuleList(EqualConv2d(config.image_channels, config.width(r), 1) for r in res)
        self.blocks = nn.ModuleList(
            EncoderBlock(config.width(r), config.width(r // 2), config.w_dim, fused=r >= config.fused_from)
            for r in res)
        self.mapping = EncoderMapping(config.w_dim, config.z_dim, config.mapping_units,
                                      config.encoder_mapping_layers, config.mapping_lr_mul)
        self.stage = Stage(config.resolution)

    def forward(self, x: Tensor) -> Tensor:
        level, alpha = self.stage.level, self.stage.alpha
        h, w = self.blocks[level](self._from_rgb(level, x))
        if self.stage.fading:
            w = w * alpha
            old = self._from_rgb(level - 1, downsample(x))
            h = torch.lerp(old.to(h.dtype), h, alpha)  # autocast: the two paths may differ in dtype
        for i in range(level - 1, -1, -1):
            h, style = self.blocks[i](h)
            w = w + style
        return self.mapping(w)

    def _from_rgb(self, level: int, x: Tensor) -> Tensor:
        return F.leaky_relu(self.from_rgb[level](x), LEAKY_SLOPE)
