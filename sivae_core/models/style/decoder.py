"""The style-based decoder (StyleGAN's generator, as the authors use it).

``z`` is mapped to a style ``w`` by an 8-layer MLP (pixel norm on its input), and ``w`` drives every
layer through AdaIN. Synthesis starts from a learned 4x4 constant; each resolution's block is

    [upsample + conv 3x3 -> blur] -> noise -> bias -> LeakyReLU -> IN -> AdaIN(w)
    -> conv 3x3 -> noise -> bias -> LeakyReLU -> IN -> AdaIN(w)

(the 4x4 block has no first convolution: the constant is its input), and each resolution has its own
1x1 ToRGB (gain 0.03, so the first images are near zero). The decoder holds the current growth
:class:`~sivae_core.models.style.stage.Stage` and its :class:`RandomSource`; a copy of it (an EMA decoder)
needs its own ``stage`` set.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import StyleConfig
from .layers import (
    LEAKY_SLOPE,
    AdaIN,
    Blur,
    EqualConv2d,
    EqualLinear,
    NoiseInjection,
    pixel_norm,
    upsample,
)
from .mixing import MixingPlan, apply_plan, draw_plan
from .randomness import Draws, RandomSource, StepContext
from .stage import Stage

__all__ = ["DecoderBlock", "DecoderMapping", "StyleDecoder", "StyledActivation"]


class DecoderMapping(nn.Module):
    """``z -> w``: pixel norm, then ``layers`` equalized linear layers with lr multiplier, each + LeakyReLU."""

    def __init__(self, z_dim: int, w_dim: int, units: int, layers: int, lr_mul: float):
        super().__init__()
        sizes = [z_dim] + [units] * (layers - 1) + [w_dim]
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul) for a, b in pairwise(sizes))

    def forward(self, z: Tensor) -> Tensor:
        x = pixel_norm(z)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), LEAKY_SLOPE)
        return x


class StyledActivation(nn.Module):
    """What follows every decoder convolution: noise -> bias -> LeakyReLU -> Instance Norm -> AdaIN(w)."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.noise = NoiseInjection(channels)
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.style = AdaIN(w_dim, channels)

    def forward(self, x: Tensor, w: Tensor, noise: Tensor | None) -> Tensor:
        if noise is not None:
            x = self.noise(x, noise)
        x = F.leaky_relu(x + self.bias, LEAKY_SLOPE)
        return self.style(F.instance_norm(x, eps=1e-8), w)


class DecoderBlock(nn.Module):
    """One resolution of the synthesis network; two style inputs, two noise inputs."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, first: bool, fused: bool):
        super().__init__()
        self.up = None if first else nn.Sequential(
            EqualConv2d(in_channels, out_channels, 3, bias=False, resample="up", fused=fused), Blur(out_channels))
        self.act1 = StyledActivation(out_channels, w_dim)
        self.conv = EqualConv2d(out_channels, out_channels, 3, bias=False)
        self.act2 = StyledActivation(out_channels, w_dim)

    def forward(self, x: Tensor, w1: Tensor, w2: Tensor, noise1: Tensor | None, noise2: Tensor | None) -> Tensor:
        if self.up is not None:
            x = self.up(x)
        x = self.act1(x, w1, noise1)
        return self.act2(self.conv(x), w2, noise2)


class StyleDecoder(nn.Module):
    """``z -> image`` at the current stage; draws its noise and mixing from :attr:`random`."""

    def __init__(self, config: StyleConfig):
        super().__init__()
        res = config.resolutions
        self.mapping = DecoderMapping(config.z_dim, config.w_dim, config.mapping_units,
                                      config.decoder_mapping_layers, config.mapping_lr_mul)
        self.const = nn.Parameter(torch.ones(1, config.width(4), 4, 4))
        self.blocks = nn.ModuleList(
            DecoderBlock(config.width(r // 2 if i else r), config.width(r), config.w_dim, first=i == 0,
                         fused=r >= config.fused_from) for i, r in enumerate(res))
        self.to_rgb = nn.ModuleList(EqualConv2d(config.width(r), config.image_channels, 1, gain=0.03) for r in res)
        self.style_mixing_prob = config.style_mixing_prob
        self.stage = Stage(config.resolution)
        #: Per-pixel noise on (training, default) or off (deterministic decodings for figures).
        self.use_noise = True
        self.random = RandomSource()
        self.plan: MixingPlan | None = None

    @property
    def n_active(self) -> int:
        """Style layers in use at the current stage (two per block)."""
        return 2 * (self.stage.level + 1)

    def begin_step(self, context: StepContext) -> None:
        self.random.begin_step(context)
        self.plan = None

    def end_step(self) -> None:
        self.random.end_step()
        self.plan = None

    def mark_prior(self, z: Tensor) -> Tensor:
        """Announce ``z`` as this step's prior samples (see :mod:`.mixing`); returns ``z`` unchanged."""
        draws = self.random.draws(z.shape[0], z.device)
        self.plan = draw_plan(z, draws, self.style_mixing_prob, self.n_active)
        return z

    def styles(self, z: Tensor) -> Tensor:
        """Per-layer styles ``(B, n_active, w_dim)``: ``w(z)`` broadcast, prior samples mixed per the plan."""
        w = self.mapping(z)
        styles = w[:, None, :].expand(-1, self.n_active, -1)
        return apply_plan(self.plan, z, styles, self.mapping)

    def forward(self, z: Tensor) -> Tensor:
        draws = self.random.draws(z.shape[0], z.device)
        return self.synthesize(self.styles(z), draws)

    def synthesize(self, styles: Tensor, draws: Draws) -> Tensor:
        """Images from per-layer styles, fading the newest block in when the stage says so."""
        level, alpha = self.stage.level, self.stage.alpha
        x = self.const.expand(styles.shape[0], -1, -1, -1)
        previous = None
        for i in range(level + 1):
            if i == level and self.stage.fading:
                previous = self.to_rgb[i - 1](x)
            size = 4 << i
            noise = [draws.normal(1, size, size) if self.use_noise else None for _ in range(2)]
            x = self.blocks[i](x, styles[:, 2 * i], styles[:, 2 * i + 1], *noise)
        image = self.to_rgb[level](x)
        if previous is not None:
            image = torch.lerp(upsample(previous).to(image.dtype), image, alpha)  # autocast: dtypes may differ
        return image
