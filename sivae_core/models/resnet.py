"""IntroVAE's residual encoder/decoder for images (Daniel & Tamar 2021, Sec. 9.2.2 and Table 6).

The layout follows the authors' image code: the encoder is a 5x5 convolution, then for every further
channel count a residual block and a 2x average pool, one last residual block and a linear layer to
``2 * z_dim``; the decoder mirrors it with a linear layer, a residual block and a 2x nearest upsampling for
every channel count, one last residual block and a final 5x5 convolution. For CIFAR-10 the paper uses channels
(64, 128, 256) and z_dim 128; it speaks of "3 residual blocks in both encoder and decoder", while this layout (the
authors' code's, and ours) has three in the encoder and four in the decoder.

**Normalization.** The authors' code uses BatchNorm, and users who call ``model.eval()`` on a trained
model get garbage samples: in eval mode BatchNorm switches from the batch's statistics to running
averages that were estimated under a different (and changing) mix of real images, reconstructions and
fakes. Here the default is :class:`torch.nn.GroupNorm`, which normalizes each sample on its own: the
model computes exactly the same function in ``train()`` and ``eval()`` mode, and encoding a concatenation
of two batches equals encoding each (the objectives rely on that in ``encode_both``). BatchNorm is
deliberately not offered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import IntroVAEModel, make_prior

__all__ = ["ResidualBlock", "ResNetEncoder", "ResNetDecoder", "ResNetVAE", "ConditionalResNetVAE", "norm_layer"]


def norm_layer(channels: int, kind: str = "group") -> nn.Module:
    """A per-sample normalization (identical in train and eval mode), or none.

    ``"group"``: GroupNorm with the largest group count in (32, 16, 8, 4, 2, 1) that leaves at least two
    channels per group; ``"none"``: identity (fastest on a CPU).
    """
    if kind == "none":
        return nn.Identity()
    if kind != "group":
        raise ValueError(f"norm must be 'group' or 'none', got {kind!r} (BatchNorm breaks eval(): see module doc)")
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and channels // g >= 2 or g == 1)
    return nn.GroupNorm(groups, channels)


class ResidualBlock(nn.Module):
    """Table 6's residual block: ``act(norm2(conv3(act(norm1(conv3(x))))) + shortcut(x))``, act a leaky ReLU (0.2).

    The second normalization acts on the residual branch *before* the addition, as in the Soft-IntroVAE authors'
    code (their docstring: "self.bn2 on output and not on (output + identity)"), which produced the paper's image
    results; the original IntroVAE code (github.com/hhb072/IntroVAE) normalizes the sum. With ``norm="none"`` the
    two are the same function. (Before 2026-11-28 this block normalized the sum; of the stored results only the
    GPU suite's CIFAR-10 run, ``suite_cifar10``, used a normalization and so that order.) The shortcut is a 1x1
    convolution when the channel count changes (the "1x1" rows of Table 6).
    """

    def __init__(self, in_ch: int, out_ch: int, norm: str = "group"):
        super().__init__()
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, bias=False) if in_ch != out_ch else nn.Identity()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=norm == "none")
        self.norm1 = norm_layer(out_ch, norm)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=norm == "none")
        self.norm2 = norm_layer(out_ch, norm)

    def forward(self, x: Tensor) -> Tensor:
        h = F.leaky_relu(self.norm1(self.conv1(x)), 0.2)
        return F.leaky_relu(self.norm2(self.conv2(h)) + self.shortcut(x), 0.2)


def _check_resolution(resolution: int, channels: tuple[int, ...]) -> int:
    factor = 2 ** len(channels)
    if resolution % factor:
        raise ValueError(
            f"resolution {resolution} is not divisible by 2**len(channels) = {factor}: every channel entry "
            "halves the feature map; use fewer channels or pad/resize the images"
        )
    return resolution // factor


class ResNetEncoder(nn.Module):
    """Image ``(B, C, R, R)`` -> ``(B, 2 * z_dim)`` (mean, then log-variance). ``n_classes`` > 0 appends
    a one-hot label to the flattened features (class-conditional model)."""

    def __init__(self, in_ch: int, resolution: int, channels: tuple[int, ...], z_dim: int,
                 norm: str = "group", n_classes: int = 0):
        super().__init__()
        side = _check_resolution(resolution, channels)
        c = channels[0]
        layers: list[nn.Module] = [nn.Conv2d(in_ch, c, 5, padding=2, bias=norm == "none"), norm_layer(c, norm),
                                   nn.LeakyReLU(0.2), nn.AvgPool2d(2)]
        for ch in channels[1:]:
            layers += [ResidualBlock(c, ch, norm), nn.AvgPool2d(2)]
            c = ch
        layers.append(ResidualBlock(c, c, norm))
        self.main = nn.Sequential(*layers)
        self.n_classes = n_classes
        self.fc = nn.Linear(c * side * side + n_classes, 2 * z_dim)

    def forward(self, x: Tensor, onehot: Tensor | None = None) -> Tensor:
        h = self.main(x).flatten(1)
        if self.n_classes:
            h = torch.cat([h, onehot.to(h.dtype)], dim=1)
        return self.fc(h)


class ResNetDecoder(nn.Module):
    """``(B, z_dim)`` -> image ``(B, C, R, R)``; a linear output (the Gaussian decoder's mean)."""

    def __init__(self, out_ch: int, resolution: int, channels: tuple[int, ...], z_dim: int,
                 norm: str = "group", n_classes: int = 0):
        super().__init__()
        self.side = _check_resolution(resolution, channels)
        c = channels[-1]
        self.top = c
        self.n_classes = n_classes
        self.fc = nn.Sequential(nn.Linear(z_dim + n_classes, c * self.side * self.side), nn.ReLU())
        layers: list[nn.Module] = []
        for ch in channels[::-1]:
            layers += [ResidualBlock(c, ch, norm), nn.Upsample(scale_factor=2, mode="nearest")]
            c = ch
        layers += [ResidualBlock(c, c, norm), nn.Conv2d(c, out_ch, 5, padding=2)]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor, onehot: Tensor | None = None) -> Tensor:
        if self.n_classes:
            z = torch.cat([z, onehot.to(z.dtype)], dim=1)
        h = self.fc(z).view(z.shape[0], self.top, self.side, self.side)
        return self.main(h)


class ResNetVAE(IntroVAEModel):
    """The IntroVAE residual model. CIFAR-10 (paper): ``ResNetVAE(3, 32, (64, 128, 256), 128)``."""

    def __init__(self, in_ch: int = 3, resolution: int = 32, channels: tuple[int, ...] = (64, 128, 256),
                 z_dim: int = 128, norm: str = "group", flow_layers: int = 0, flow_hidden: int = 128):
        channels = tuple(int(c) for c in channels)
        super().__init__(ResNetEncoder(in_ch, resolution, channels, z_dim, norm),
                         ResNetDecoder(in_ch, resolution, channels, z_dim, norm),
                         (in_ch, resolution, resolution), z_dim, make_prior(z_dim, flow_layers, flow_hidden))
        self.config = {"in_ch": in_ch, "resolution": resolution, "channels": list(channels), "z_dim": z_dim,
                       "norm": norm, "flow_layers": flow_layers, "flow_hidden": flow_hidden}


class ConditionalResNetVAE(IntroVAEModel):
    """Class-conditional variant: a one-hot label goes into the encoder's and the decoder's linear layer.

    The objectives call ``model.encode(x)`` / ``model.decode(z)`` without labels, so the model *holds* the
    labels of the current mini-batch (:meth:`set_labels`, called by the data sampler). A call on a batch
    that is a multiple ``k`` of the stored labels (``encode_both``/``decode_both`` concatenate two batches)
    uses the labels repeated ``k`` times: real images, their reconstructions and the prior samples of one
    step share the batch's labels, as in the authors' conditional code.
    """

    def __init__(self, in_ch: int = 3, resolution: int = 32, channels: tuple[int, ...] = (64, 128, 256),
                 z_dim: int = 128, n_classes: int = 10, norm: str = "group"):
        channels = tuple(int(c) for c in channels)
        super().__init__(ResNetEncoder(in_ch, resolution, channels, z_dim, norm, n_classes),
                         ResNetDecoder(in_ch, resolution, channels, z_dim, norm, n_classes),
                         (in_ch, resolution, resolution), z_dim)
        self.n_classes = n_classes
        self.labels: Tensor | None = None
        self.config = {"in_ch": in_ch, "resolution": resolution, "channels": list(channels), "z_dim": z_dim,
                       "norm": norm, "n_classes": n_classes}

    def set_labels(self, labels: Tensor) -> None:
        """Labels (int, shape (B,)) of the mini-batch the next encode/decode calls belong to."""
        self.labels = labels.long()

    def _onehot(self, n: int, device: torch.device) -> Tensor:
        if self.labels is None:
            raise RuntimeError("ConditionalResNetVAE needs labels: call model.set_labels(y) first")
        b = self.labels.shape[0]
        if n % b:
            raise ValueError(f"batch of {n} is not a multiple of the {b} labels set with set_labels")
        return F.one_hot(self.labels.to(device).repeat(n // b), self.n_classes).float()

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.check_input(x)
        mu, logvar = self.encoder(x, self._onehot(x.shape[0], x.device)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z, self._onehot(z.shape[0], z.device))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: Tensor | None = None) -> Tensor:
        """``n`` samples; ``labels`` default to ``0, 1, ..., n_classes-1`` repeated."""
        device = next(self.parameters()).device
        if labels is None:
            labels = torch.arange(n, device=device) % self.n_classes
        self.set_labels(labels)
        return self.decode(self.prior.sample(n, generator, device))


def build_model(config: dict) -> IntroVAEModel:
    """Rebuild a model from its ``config`` dict (stored in checkpoints)."""
    config = dict(config)
    if config.get("n_classes"):
        return ConditionalResNetVAE(**config)
    config.pop("n_classes", None)
    return ResNetVAE(**config)
