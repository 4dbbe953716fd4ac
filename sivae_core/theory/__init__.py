"""The theory of Soft-IntroVAE's game on finite spaces (Daniel & Tamar 2021, Sec. 4.1 and 9.6), computed
exactly: :mod:`.finite` (the spaces, the ELBO, the players' objectives), :mod:`.equilibrium` (the decoder's
optimum, Assumption 5, Lemma 4) and :mod:`.dynamics` (numeric checks, gradient play)."""

from . import dynamics, equilibrium, finite
from .dynamics import *  # noqa: F403
from .equilibrium import *  # noqa: F403
from .finite import *  # noqa: F403

__all__ = [*finite.__all__, *equilibrium.__all__, *dynamics.__all__]
