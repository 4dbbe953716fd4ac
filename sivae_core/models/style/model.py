"""The style-based Soft-IntroVAE model (Daniel & Tamar 2021, Sec. 6.3, Fig. 4c, Appendix 9.2.2).

It is an :class:`~sivae_core.models.base.IntroVAEModel` like every other model of the book, so every
objective trains it unchanged; what it adds is the state that progressive, data-parallel training needs:

* a **stage** (:meth:`StyleVAE.set_stage`): the current resolution and fade-in factor. ``data_shape``
  follows the resolution, so objectives and the trainer see the image size they are trained at.
* a **random source** for the decoder's per-pixel noise and style mixing, announced per optimisation
  step with :meth:`StyleVAE.begin_step`, whose draws do not depend on how the global batch is split
  across processes (:mod:`.randomness`).
* its prior, :class:`~.mixing.MixingPrior`: N(0, I), whose samples drawn in a training step are announced to the
  decoder for style mixing (:mod:`.mixing`), so every objective trains it unchanged.

The trainer's duties: ``set_stage`` whenever the schedule moves (also on an EMA copy of the decoder:
``ema.stage = model.stage``); ``begin_step(step, seed, rank, world, per_rank_batch)`` before the encoder
loss of every step and ``end_step()`` after the decoder update; feed real images through
:func:`~sivae_core.models.style.stage.fade_real`; reset both Adam states when the resolution grows; use one
learning rate per network (the lr multipliers live in the layers) with betas (0, 0.99).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..base import IntroVAEModel
from .config import StyleConfig, paper_config
from .decoder import StyleDecoder
from .encoder import StyleEncoder
from .mixing import MixingPrior
from .randomness import StepContext
from .stage import Stage

__all__ = ["ADAM_BETAS", "StyleVAE"]

#: Adam's betas for the style model (the authors, after ALAE and StyleGAN): no first-moment averaging.
ADAM_BETAS = (0.0, 0.99)


class StyleVAE(IntroVAEModel):
    """Style-based encoder and decoder grown progressively up to ``config.resolution``.

    A new model stands at the final resolution, fully faded in (ready to sample after loading weights);
    progressive training starts with ``set_stage(4)``.
    """

    encoder: StyleEncoder
    decoder: StyleDecoder

    def __init__(self, config: StyleConfig | None = None):
        config = config if config is not None else paper_config()
        r = config.resolution
        decoder = StyleDecoder(config)
        super().__init__(StyleEncoder(config), decoder, (config.image_channels, r, r), config.z_dim,
                         MixingPrior(config.z_dim, decoder))
        self.config = config

    @property
    def stage(self) -> Stage:
        return self.decoder.stage

    def set_stage(self, resolution: int, alpha: float = 1.0) -> Stage:
        """Train/evaluate at ``resolution`` with the newest block faded in by ``alpha``."""
        if resolution > self.config.resolution:
            raise ValueError(f"this model grows up to {self.config.resolution}x{self.config.resolution}, "
                             f"not {resolution}x{resolution}")
        stage = Stage(resolution, float(alpha))
        self.encoder.stage = self.decoder.stage = stage
        self.data_shape = (self.config.image_channels, resolution, resolution)
        return stage

    def begin_step(self, step: int, seed: int, rank: int = 0, world: int = 1,
                   per_rank_batch: int | None = None) -> None:
        """Start optimisation step ``step``: the model's random draws come from ``(seed, step, call)`` and
        each rank keeps its rows of the global batch (``world * per_rank_batch``) from here on."""
        if per_rank_batch is None:
            raise ValueError("begin_step needs per_rank_batch: the rows each process holds of the global batch")
        self.decoder.begin_step(StepContext(int(seed), int(step), int(rank), int(world), int(per_rank_batch)))

    def end_step(self) -> None:
        """Back to the default (sampling) context: any batch size, draws from the global random state."""
        self.decoder.end_step()

    def mark_prior(self, z: Tensor) -> Tensor:
        """Announce ``z`` as this step's prior samples, to be style-mixed; returns ``z``."""
        return self.decoder.mark_prior(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples at the current stage; ``generator`` also drives the per-pixel noise."""
        device = self.decoder.const.device
        with self.decoder.random.using(generator):
            z = torch.randn(n, self.z_dim, generator=generator, device=device)
            return self.decode(z)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
