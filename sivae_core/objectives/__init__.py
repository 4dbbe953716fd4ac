"""The training objectives of the book, one module each, all through one interface (:mod:`.base`).

Importing this package registers every objective under its ``--method`` name in :data:`OBJECTIVES`.
"""

from .as_introvae import ASIntroVAE, annealing_c, as_distance, as_distance_per_dim, as_kernel, as_log_kernel
from .base import (
    OBJECTIVES,
    Auxiliary,
    HParams,
    Noise,
    Objective,
    StepOutput,
    decode_both,
    encode_both,
    make_objective,
    register_objective,
)
from .dp import DPSoftIntroVAE
from .introvae import IntroVAE
from .regularized import BetaTCVAE, BetaVAEB, BetaVAEH, FactorVAE, InfoVAE, RegularizedVAE
from .soft_introvae import SoftIntroVAE
from .vae import VAE

__all__ = [
    "OBJECTIVES", "Auxiliary", "HParams", "Noise", "Objective", "StepOutput", "decode_both", "encode_both",
    "register_objective", "make_objective", "VAE", "IntroVAE", "SoftIntroVAE", "ASIntroVAE", "DPSoftIntroVAE", "RegularizedVAE",
    "BetaVAEH", "BetaVAEB", "BetaTCVAE", "FactorVAE", "InfoVAE", "annealing_c", "as_distance",
    "as_distance_per_dim", "as_kernel", "as_log_kernel",
]
