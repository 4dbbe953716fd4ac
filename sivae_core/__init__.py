"""sivae_core: the library behind the book on introspective VAEs.

Importing the package registers every objective (so ``--method`` names resolve) and exposes the
pieces the chapters use most.
"""

from . import elbo, objectives
from . import asivae, dpvae, flows  # noqa: F401  (registers asivae, betavae_h, ..., dpsivae)
from .ensemble import Ensemble
from .models import ConditionalResNetVAE, IntroVAEModel, ResNetVAE, ToyVAE
from .objectives import OBJECTIVES, VAE, IntroVAE, Objective, SoftIntroVAE
from .trainer import NonFiniteLossError, TensorSampler, TrainConfig, Trainer, seeded

__version__ = "0.1.0"

__all__ = [
    "elbo",
    "objectives",
    "Ensemble",
    "IntroVAEModel",
    "ToyVAE",
    "ResNetVAE",
    "ConditionalResNetVAE",
    "TensorSampler",
    "OBJECTIVES",
    "VAE",
    "IntroVAE",
    "SoftIntroVAE",
    "Objective",
    "NonFiniteLossError",
    "TrainConfig",
    "Trainer",
    "seeded",
]
