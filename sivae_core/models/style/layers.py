"""The building blocks of the style-based encoder and decoder (StyleGAN's generator, ALAE's encoder).

**Equalized learning rate** (Karras et al., ProGAN): every weight is *stored* as a standard normal draw
and multiplied at run time by ``gain / sqrt(fan_in)``. He initialisation does the same scaling once at
construction; doing it in the forward pass instead means Adam, whose step size is invariant to a
parameter's scale, moves every layer's *effective* weight at the same relative speed, whatever its
fan-in. A learning-rate multiplier ``lr_mul`` (0.1 for the mapping networks) stores ``N(0, 1/lr_mul^2)``
and multiplies the weight and the bias by ``lr_mul`` at run time: the initial function is unchanged and
every Adam step on those layers is ``lr_mul`` times smaller. The optimizer therefore needs one learning
rate for all parameters; no parameter groups.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LEAKY_SLOPE",
    "AdaIN",
    "Blur",
    "EqualConv2d",
    "EqualLinear",
    "NoiseInjection",
    "downsample",
    "instance_style",
    "pixel_norm",
    "upsample",
]

#: Negative slope of every LeakyReLU in both networks (StyleGAN, ALAE).
LEAKY_SLOPE = 0.2


def pixel_norm(z: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale each code to unit root-mean-square (StyleGAN's mapping input): the mapping sees codes on a
    sphere, so the length of ``z`` (a chi distribution for a prior sample) carries no style."""
    return z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + eps)


def instance_style(x: Tensor, eps: float = 1e-8) -> Tensor:
    """ALAE's style of an activation: per-channel mean and standard deviation over the pixels, ``(B, 2C)``.

    These are exactly the statistics Instance Norm removes, so the encoder hands on a normalized map and
    reports what it removed as the style. ``eps`` keeps the gradient of the standard deviation finite for
    a constant channel (the authors' code has none).
    """
    mean = x.mean(dim=(2, 3))
    std = torch.sqrt(x.var(dim=(2, 3), unbiased=False) + eps)
    return torch.cat([mean, std], dim=1)


def upsample(x: Tensor) -> Tensor:
    """2x nearest-neighbour upsampling: the resampling of the fade-in paths (decoder output, real images)."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def downsample(x: Tensor) -> Tensor:
    """2x average pooling: the resampling of the encoder's fade-in input and of real images."""
    return F.avg_pool2d(x, 2)


class EqualLinear(nn.Module):
    """Linear layer with an equalized learning rate (module docstring) and an optional lr multiplier."""

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2.0), lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, scale={self.scale:.3g}, lr_mul={self.lr_mul:g}"


class EqualConv2d(nn.Module):
    """Square 'same' convolution with an equalized learning rate, optionally resampling by 2.

    ``resample="up"`` computes nearest upsampling followed by the convolution, ``"down"`` the convolution
    followed by 2x average pooling. With ``fused`` the same function is one strided (transposed)
    convolution with a 4x4 kernel built from the 3x3 one (StyleGAN's fused scaling, which the authors use
    from 128x128 on): 2.25x fewer multiply-adds, identical output up to rounding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = math.sqrt(2.0),
                 bias: bool = True, resample: str | None = None, fused: bool = False):
        super().__init__()
        if resample not in (None, "up", "down"):
            raise ValueError(f"resample must be None, 'up' or 'down', got {resample!r}")
        if fused and kernel_size != 3:
            raise ValueError("fused resampling is defined for 3x3 kernels")
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.resample = resample
        self.fused = fused and resample is not None

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight * self.scale
        pad = self.weight.shape[-1] // 2
        if self.fused and self.resample == "up":
            return F.conv_transpose2d(x, _fused_up_kernel(w), self.bias, stride=2, padding=1)
        if self.fused:
            return F.conv2d(x, _fused_down_kernel(w), self.bias, stride=2, padding=1)
        if self.resample == "up":
            x = upsample(x)
        x = F.conv2d(x, w, self.bias, padding=pad)
        return downsample(x) if self.resample == "down" else x

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, kernel_size={k}, scale={self.scale:.3g}, resample={self.resample}, fused={self.fused}"


def _shift_sum(w: Tensor) -> Tensor:
    """The 4x4 kernel whose every tap sums the 3x3 taps that cover it when the 3x3 kernel is applied at
    the four positions of a 2x2 cell: the algebra behind fused up/downsampling."""
    w = F.pad(w, (1, 1, 1, 1))
    return w[..., 1:, 1:] + w[..., :-1, 1:] + w[..., 1:, :-1] + w[..., :-1, :-1]


def _fused_down_kernel(w: Tensor) -> Tensor:
    """Stride-2 kernel equal to a 3x3 convolution followed by 2x average pooling."""
    return _shift_sum(w) * 0.25


def _fused_up_kernel(w: Tensor) -> Tensor:
    """Transposed-convolution kernel equal to nearest upsampling followed by a 3x3 convolution: a transposed
    convolution correlates with the flipped kernel and takes it as (in, out, kh, kw)."""
    return _shift_sum(w.flip(-1, -2)).transpose(0, 1)


class Blur(nn.Module):
    """Depthwise [1, 2, 1] x [1, 2, 1] / 16 low-pass filter: smooths the blocky output of nearest
    upsampling in the decoder and removes aliasing before downsampling in the encoder."""

    def __init__(self, channels: int):
        super().__init__()
        f = torch.tensor([1.0, 2.0, 1.0])
        kernel = (f[:, None] * f[None, :]) / 16.0
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.kernel.to(x.dtype), padding=1, groups=x.shape[1])


class NoiseInjection(nn.Module):
    """StyleGAN's per-pixel noise: one N(0, 1) map per image, scaled by a learned per-channel weight.

    The weight starts at zero, so a freshly built decoder is deterministic and learns how much stochastic
    detail (hair, skin) each layer should carry. The noise map comes from the caller (the model's step
    random source), never from the global random state.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor, noise: Tensor) -> Tensor:
        return x + self.weight * noise.to(x.dtype)


class AdaIN(nn.Module):
    """Adaptive Instance Norm's style modulation ``x * (1 + s) + b`` with ``(s, b)`` an affine map of ``w``.

    The ``1 +`` makes a zero style the identity; the map has gain 1 (StyleGAN), and its input is an
    Instance-Normed activation, so ``s`` and ``b`` set each channel's scale and offset directly.
    """

    def __init__(self, w_dim: int, channels: int):
        super().__init__()
        self.affine = EqualLinear(w_dim, 2 * channels, gain=1.0)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        s, b = self.affine(w).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return x * (1.0 + s) + b
