"""sivae_core: the library behind the book on introspective VAEs.

One home per concept:

* :mod:`.elbo` (the ELBO's pieces), :mod:`.priors` (N(0, I) and the decoupled prior), :mod:`.flows`;
* :mod:`.models` (encoder/decoder architectures), :mod:`.objectives` (VAE, IntroVAE, Soft-IntroVAE,
  AS-IntroVAE, the regularized VAEs, dp-Soft-IntroVAE: one interface, one registry);
* :mod:`.training` (the one trainer, samplers, ensembles, precision, checkpoints, data parallelism);
* :mod:`.data`, :mod:`.metrics`, :mod:`.theory` (the Nash equilibrium on finite spaces);
* :mod:`.experiments` (the papers' settings, budgets and table runners), :mod:`.viz` (figures);
* :mod:`.results` (stored results with provenance), :mod:`.book` (helpers of the chapters), :mod:`.cli`.

``python -m sivae_core <command>`` runs every experiment; the modules ``toy2d``, ``images``, ``ood``,
``asivae``, ``dpvae_2d`` and ``dpvae_images`` are only the documented entry points ``python -m sivae_core.X``.
Importing the package registers every objective, so ``--method`` names resolve.
"""

from . import elbo, objectives
from .models import ConditionalResNetVAE, IntroVAEModel, ResNetVAE, ToyVAE, seeded
from .objectives import OBJECTIVES, VAE, IntroVAE, Objective, SoftIntroVAE
from .training import Ensemble, NonFiniteLossError, TensorSampler, TrainConfig, Trainer

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
