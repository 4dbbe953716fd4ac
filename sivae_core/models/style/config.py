"""Sizes of the style-based Soft-IntroVAE and the presets the book trains.

The paper's model (Daniel & Tamar 2021, Appendix 9.2.2; the authors' ``configs/celeba-hq256.yaml`` with ALAE's
defaults) has 512 channels up to 32x32, then 256, 128, 64; ``z`` and ``w`` of 512; an 8-layer mapping in
the decoder and a 3-layer one in the encoder, both 512 units wide with learning-rate multiplier 0.1. The
other presets keep every architectural choice and shrink the widths, so the CPU and one-GPU runs train the
same model family the paper does.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRESETS", "StyleConfig", "cpu_config", "gpu_config", "paper_config", "resolutions_up_to"]


def resolutions_up_to(resolution: int) -> tuple[int, ...]:
    """4, 8, ..., ``resolution`` (a power of two, at least 4)."""
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"the resolution must be a power of two >= 4, got {resolution}")
    return tuple(4 << i for i in range(resolution.bit_length() - 2))


@dataclass(frozen=True)
class StyleConfig:
    """Everything that fixes the parameter shapes of a :class:`~sivae_core.models.style.StyleVAE`.

    ``channels[i]`` is the width at resolution ``4 * 2**i``, from 4x4 up to ``resolution``: the decoder's
    block at resolution ``r`` outputs ``channels(r)``, the encoder's block at ``r`` takes ``channels(r)`` in
    and hands ``channels(r / 2)`` down (the 4x4 block hands ``channels(4)`` to a 2x2 map whose only use is
    its style), so encoder and decoder are mirror images.
    """

    resolution: int = 256
    channels: tuple[int, ...] = (512, 512, 512, 512, 256, 128, 64)
    z_dim: int = 512
    w_dim: int = 512
    #: Hidden width of both mapping networks (the paper: 512, the same as ``w``).
    mapping_units: int = 512
    decoder_mapping_layers: int = 8
    encoder_mapping_layers: int = 3
    mapping_lr_mul: float = 0.1
    image_channels: int = 3
    #: Probability that a batch of prior samples is style-mixed during training (StyleGAN, the authors).
    style_mixing_prob: float = 0.9
    #: Resolutions from which up/downsampling convolutions run fused: the same function in 2.25x fewer
    #: multiply-adds (the authors fuse from 128; on a CPU fused is faster from 32x32 on, slower below).
    fused_from: int = 32

    def __post_init__(self) -> None:
        levels = len(resolutions_up_to(self.resolution))
        if len(self.channels) != levels:
            raise ValueError(f"{self.resolution}x{self.resolution} needs {levels} channel counts (4x4 up to "
                             f"{self.resolution}x{self.resolution}), got {len(self.channels)}: {self.channels}")
        if min(self.decoder_mapping_layers, self.encoder_mapping_layers) < 1:
            raise ValueError("both mapping networks need at least one layer")
        if not 0.0 <= self.style_mixing_prob <= 1.0:
            raise ValueError(f"style_mixing_prob must be in [0, 1], got {self.style_mixing_prob}")

    @property
    def resolutions(self) -> tuple[int, ...]:
        return resolutions_up_to(self.resolution)

    def width(self, resolution: int) -> int:
        """Channels at ``resolution`` (``channels(4)`` for the 2x2 map below the last encoder block)."""
        return self.channels[max(resolution.bit_length() - 3, 0)]


def paper_config() -> StyleConfig:
    """The paper's CelebA-HQ / FFHQ model at 256x256 (53,926,805 parameters, as the authors' code builds it)."""
    return StyleConfig()


def gpu_config(resolution: int = 64) -> StyleConfig:
    """One GPU, 64x64 or 128x128: half the paper's widths and ``z = w = 256``."""
    widths = {4: 256, 8: 256, 16: 256, 32: 256, 64: 128, 128: 64}
    if resolution not in (64, 128):
        raise ValueError(f"the one-GPU preset is for 64x64 or 128x128, got {resolution}")
    return StyleConfig(resolution=resolution, channels=tuple(widths[r] for r in resolutions_up_to(resolution)),
                       z_dim=256, w_dim=256, mapping_units=256)


def cpu_config() -> StyleConfig:
    """32x32 on a CPU: narrow blocks and ``z = w = 64`` so one training step takes a fraction of a second."""
    return StyleConfig(resolution=32, channels=(64, 64, 32, 32), z_dim=64, w_dim=64, mapping_units=64)


#: Preset name -> builder, for command lines and the chapter.
PRESETS = {
    "paper": paper_config,
    "gpu64": lambda: gpu_config(64),
    "gpu128": lambda: gpu_config(128),
    "cpu32": cpu_config,
}
