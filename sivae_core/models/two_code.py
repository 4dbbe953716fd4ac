"""LORD's two-encoder architecture with an AdaIN decoder (Soft-IntroVAE, Daniel & Tamar 2021, Sec. 6.4,
Appendix 9.3 and Fig. 4b; LORD, Gabbay & Hoshen 2020).

Two encoders read the same image: one produces the *class* code (the car model), the other the *content*
code (the view). The decoder builds the image from the content code alone, through three linear layers and
four (upsample, conv, AdaIN) blocks; the class code enters only through the AdaIN layers, as a per-channel
scale and shift of instance-normalized feature maps. That split is the inductive bias that the
impossibility result of Locatello et al. (2019) says unsupervised disentanglement needs: a per-channel
scale and shift can recolour and restyle a feature map but can hardly move a car, so the view has to come
through the content code.

The model keeps :class:`~sivae_core.models.base.IntroVAEModel`'s contract so that the book's trainer and
objectives run it unchanged: ``encoder`` returns ``(mu, logvar)`` of the concatenated code ``[class,
content]`` (``z_dim = class_dim + content_dim``) and ``decoder`` splits it again. Since the two encoders
share no parameter, the KL of each code reaches only its own encoder, while the reconstruction, a
function of both codes, reaches both (Appendix 9.3; ``tests/test_translation_model.py``).

Paper setting (LORD's code): encoder convolutions (64, 128, 256, 256, 256), the first 7x7 at stride 1 and
the others 4x4 at stride 2, down to 4x4 feature maps, then linear layers 4096 -> 256 -> 256 -> 2 x code
(the paper's text, Sec. 9.3, lists four layers, (64, 128, 256, 256)); decoder AdaIN blocks of 256 channels,
then a 5x5 convolution to 64 channels and a 7x7 one to RGB with a sigmoid. One deliberate difference: the
AdaIN scale is ``1 + gamma(class code)`` rather than LORD's ``gamma``, so that a fresh decoder passes its
feature maps through instead of multiplying them by numbers near zero.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from .base import IntroVAEModel

__all__ = ["AdaINDecoder", "CodeEncoder", "TwoCodeVAE", "TwoEncoders", "adain", "split_code"]


def split_code(t: Tensor, class_dim: int) -> tuple[Tensor, Tensor]:
    """``[class, content]`` along the last axis -> ``(class part, content part)``."""
    return t[..., :class_dim], t[..., class_dim:]


def _act() -> nn.Module:
    # LORD uses LeakyReLU with PyTorch's default slope; so does the paper ("all layers are activated with LeakyReLU").
    return nn.LeakyReLU()


class CodeEncoder(nn.Module):
    """Image ``(B, C, S, S)`` -> ``(B, 2 * code_dim)``: mean, then log-variance of one code.

    A 7x7 convolution at stride 1, then a 4x4 stride-2 convolution for every further channel entry, then
    three linear layers (LORD's encoder with a Gaussian head).
    """

    def __init__(self, in_ch: int, size: int, channels: tuple[int, ...], hidden: int, code_dim: int):
        super().__init__()
        side = size // 2 ** (len(channels) - 1)
        if side * 2 ** (len(channels) - 1) != size or side < 1:
            raise ValueError(f"image size {size} is not divisible by 2**{len(channels) - 1} (one halving per "
                             f"channel entry after the first of {channels})")
        layers: list[nn.Module] = [nn.Conv2d(in_ch, channels[0], 7, padding=3), _act()]
        for c_in, c_out in pairwise(channels):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), _act()]
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(channels[-1] * side * side, hidden), _act(),
                                nn.Linear(hidden, hidden), _act(), nn.Linear(hidden, 2 * code_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convs(x))


class TwoEncoders(nn.Module):
    """The class and the content encoder side by side; output ``[mu_class, mu_content, logvar_class,
    logvar_content]`` so that ``IntroVAEModel.encode`` (mean half, log-variance half) sees one code."""

    def __init__(self, in_ch: int, size: int, channels: tuple[int, ...], hidden: int, class_dim: int,
                 content_dim: int):
        super().__init__()
        self.class_encoder = CodeEncoder(in_ch, size, channels, hidden, class_dim)
        self.content_encoder = CodeEncoder(in_ch, size, channels, hidden, content_dim)

    def forward(self, x: Tensor) -> Tensor:
        mu_class, logvar_class = self.class_encoder(x).chunk(2, dim=-1)
        mu_content, logvar_content = self.content_encoder(x).chunk(2, dim=-1)
        return torch.cat([mu_class, mu_content, logvar_class, logvar_content], dim=-1)


def adain(h: Tensor, scale: Tensor, shift: Tensor, eps: float = 1e-5) -> Tensor:
    """Adaptive instance normalization (Huang & Belongie 2017): normalize every feature map of every
    image to zero mean and unit variance over its pixels, then apply the per-image, per-channel
    ``scale`` and ``shift`` ``(B, C)`` that the class code produced."""
    mean = h.mean(dim=(2, 3), keepdim=True)
    var = h.var(dim=(2, 3), keepdim=True, unbiased=False)
    return (h - mean) * torch.rsqrt(var + eps) * scale[:, :, None, None] + shift[:, :, None, None]


class AdaINDecoder(nn.Module):
    """``z = [class, content]`` -> image. The content code goes through three linear layers to a
    ``channels[0] x S/16 x S/16`` map, then four blocks of (2x nearest upsampling, 3x3 conv, LeakyReLU,
    AdaIN driven by the class code), then a 5x5 conv to ``hidden`` channels and a 7x7 conv to the image,
    with a sigmoid for pixels in ``[0, 1]``: 6 convolutions, the first 4 preceded by upsampling and followed
    by AdaIN (Appendix 9.3)."""

    def __init__(self, out_ch: int, size: int, class_dim: int, content_dim: int, channels: tuple[int, ...],
                 hidden: int):
        super().__init__()
        self.class_dim = class_dim
        self.side = size // 2 ** len(channels)
        if self.side * 2 ** len(channels) != size:
            raise ValueError(f"image size {size} is not divisible by 2**{len(channels)} "
                             "(one upsampling per AdaIN block)")
        c0, area = channels[0], self.side * self.side
        self.fc = nn.Sequential(nn.Linear(content_dim, area * max(c0 // 8, 1)), _act(),
                                nn.Linear(area * max(c0 // 8, 1), area * max(c0 // 4, 1)), _act(),
                                nn.Linear(area * max(c0 // 4, 1), area * c0), _act())
        ins = (c0, *channels[:-1])
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(ins, channels))
        # LORD's "modulation": one linear map per AdaIN layer from the class code to (scale, shift).
        self.modulation = nn.ModuleList(nn.Linear(class_dim, 2 * c) for c in channels)
        self.act = _act()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.head = nn.Sequential(nn.Conv2d(channels[-1], hidden, 5, padding=2), _act(),
                                  nn.Conv2d(hidden, out_ch, 7, padding=3), nn.Sigmoid())

    def forward(self, z: Tensor) -> Tensor:
        z_class, z_content = split_code(z, self.class_dim)
        h = self.fc(z_content).view(z.shape[0], -1, self.side, self.side)
        for conv, modulation in zip(self.convs, self.modulation):
            gamma, shift = modulation(z_class).chunk(2, dim=-1)
            h = adain(self.act(conv(self.up(h))), 1.0 + gamma, shift)
        return self.head(h)


class TwoCodeVAE(IntroVAEModel):
    """Two encoders (class, content) and the AdaIN decoder; a Gaussian posterior for each code.

    Defaults are the paper's Cars3D model (Appendix 9.3): 64x64 RGB, class code 256, content code 128.
    """

    def __init__(self, in_ch: int = 3, size: int = 64, class_dim: int = 256, content_dim: int = 128,
                 enc_channels: tuple[int, ...] = (64, 128, 256, 256, 256), enc_hidden: int = 256,
                 dec_channels: tuple[int, ...] = (256, 256, 256, 256), dec_hidden: int = 64):
        encoder = TwoEncoders(in_ch, size, tuple(enc_channels), enc_hidden, class_dim, content_dim)
        decoder = AdaINDecoder(in_ch, size, class_dim, content_dim, tuple(dec_channels), dec_hidden)
        super().__init__(encoder, decoder, (in_ch, size, size), class_dim + content_dim)
        self.class_dim, self.content_dim = int(class_dim), int(content_dim)
        self.config: dict[str, Any] = {"in_ch": in_ch, "size": size, "class_dim": class_dim,
                                       "content_dim": content_dim, "enc_channels": list(enc_channels),
                                       "enc_hidden": enc_hidden, "dec_channels": list(dec_channels),
                                       "dec_hidden": dec_hidden}

    def split(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """A code, mean or log-variance ``(..., z_dim)`` -> its ``(class, content)`` parts."""
        return split_code(t, self.class_dim)

    @torch.no_grad()
    def transfer(self, x_class: Tensor, x_content: Tensor) -> Tensor:
        """Content transfer (Appendix 9.4.3): decode the class code (posterior mean) of ``x_class`` with
        the content code of ``x_content``. Each encoder runs only on the image it is needed for."""
        self.check_input(x_class)
        self.check_input(x_content)
        mu_class = self.encoder.class_encoder(x_class).chunk(2, dim=-1)[0]
        mu_content = self.encoder.content_encoder(x_content).chunk(2, dim=-1)[0]
        return self.decode(torch.cat([mu_class, mu_content], dim=-1))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TwoCodeVAE:
        """Rebuild a model from its ``config`` (as stored in a run's ``model.pt``)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
