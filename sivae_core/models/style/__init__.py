"""The style-based Soft-IntroVAE: StyleGAN's decoder, ALAE's encoder, progressive growing.

Modules, from the bottom up: :mod:`.layers` (equalized-lr layers, blur, noise, AdaIN), :mod:`.config`
(sizes and presets), :mod:`.stage` (resolution and fade-in), :mod:`.randomness` (split-independent random
draws), :mod:`.mixing` (style mixing of prior samples), :mod:`.decoder`, :mod:`.encoder`, :mod:`.model`.
"""

from .config import (
    PRESETS,
    StyleConfig,
    cpu_config,
    gpu_config,
    paper_config,
    resolutions_up_to,
)
from .mixing import MixingPrior, mix_styles
from .model import ADAM_BETAS, StyleVAE
from .randomness import RandomSource, StepContext
from .stage import Stage, fade_real

__all__ = [
    "ADAM_BETAS",
    "PRESETS",
    "MixingPrior",
    "RandomSource",
    "Stage",
    "StepContext",
    "StyleConfig",
    "StyleVAE",
    "cpu_config",
    "fade_real",
    "gpu_config",
    "mix_styles",
    "paper_config",
    "resolutions_up_to",
]
