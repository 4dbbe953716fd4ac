"""Style mixing of the prior samples (StyleGAN's mixing regularisation, as the authors train it).

**Which fakes are mixed.** In the authors' ``model.py`` only the prior samples ``x_f = D(z_f)`` are
mixed: ``generate`` mixes by default and is called without ``mixing=False`` only for the fake batch, in
the encoder step and in the decoder step. Reconstructions ``D(E(x))`` and the re-reconstructions of the
fakes are never mixed (their loss compares them with an image, which a mixed decoding would not
reproduce). With probability 0.9 a batch is mixed: a second code ``z2`` per sample and one crossover
layer ``k`` for the whole batch, uniform in ``1 .. n_active`` (both included, so ``k = n_active`` leaves
the batch unmixed); style layers below ``k`` take ``w(z_f)``, the others ``w(z2)``.

**How the decoder knows a prior sample.** Algorithm 2 decodes ``z_f`` alone in the encoder step and
concatenated after ``z`` in the decoder step (``decode_both``), and the objectives hand the decoder bare
codes. The model's prior, :class:`MixingPrior`, therefore announces the prior samples it draws during a training
step (:meth:`StyleVAE.mark_prior`), so Soft-IntroVAE trains the style model unchanged, and the decoder mixes
every row that equals an announced code *bitwise*: a reparameterized code
``mu + sigma * eps`` never coincides with a prior draw in all coordinates, and matching rows by value is
indifferent to how an objective orders or concatenates its calls. The mixing plan (coin, crossover, ``z2``)
is drawn when the codes are announced and kept for the step, so the decoder step decodes the very fakes
the encoder step judged (the authors draw a fresh fake batch in the decoder step; Algorithm 2 reuses
``Z_f``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...priors import StandardNormal
from .randomness import Draws

__all__ = ["MixingPrior", "MixingPlan", "draw_plan", "mix_styles"]


@dataclass(frozen=True)
class MixingPlan:
    """The announced prior codes of one step (this rank's rows) and how they are mixed."""

    prior: Tensor
    #: Crossover layer, or None when this step's batch is not mixed.
    cutoff: int | None
    #: The second code of every announced row.
    z2: Tensor


def draw_plan(prior: Tensor, draws: Draws, prob: float, n_active: int) -> MixingPlan:
    """Draw coin, crossover and second codes (always all three, so later draws do not depend on the coin)."""
    mixed = draws.uniform() < prob
    cutoff = draws.integer(1, n_active)
    z2 = draws.normal(prior.shape[1])
    return MixingPlan(prior.detach().clone(), cutoff if mixed else None, z2)


def mix_styles(styles: Tensor, w2: Tensor, cutoff: int, rows: Tensor | None = None) -> Tensor:
    """Layers ``>= cutoff`` of ``styles`` (B, L, w_dim) replaced by ``w2`` (B, w_dim), in ``rows`` (bool, B)
    only when given. Also the style-mixing grid of the chapter (coarse styles from one face, fine from another)."""
    layer = torch.arange(styles.shape[1], device=styles.device)[None, :, None]
    take = layer >= cutoff
    if rows is not None:
        take = take & rows[:, None, None]
    return torch.where(take, w2[:, None, :].to(styles.dtype), styles)


def apply_plan(plan: MixingPlan | None, z: Tensor, styles: Tensor, mapping: nn.Module) -> Tensor:
    """Mix the rows of ``z`` that are announced prior codes, according to ``plan``."""
    if plan is None or plan.cutoff is None or plan.cutoff >= styles.shape[1]:
        return styles
    match = (z[:, None, :] == plan.prior[None, :, :]).all(dim=-1)
    rows = match.any(dim=1)
    if not bool(rows.any()):
        return styles
    w2 = mapping(plan.z2[match.to(torch.int64).argmax(dim=1)])
    return mix_styles(styles, w2, plan.cutoff, rows)


class MixingPrior(StandardNormal):
    """N(0, I) whose samples a style decoder mixes: a prior sample drawn during a training step (the decoder's
    random source has a step context) is announced to the decoder, which then mixes exactly those rows. Outside
    a step (generating figures) nothing is announced and samples are not mixed. Otherwise it is N(0, I)."""

    def __init__(self, dim: int, decoder: nn.Module):
        super().__init__(dim)
        self._decoder = [decoder]  # a reference, not a submodule: the decoder belongs to the model, once

    def rsample(self, eps: Tensor) -> Tensor:
        decoder = self._decoder[0]
        return decoder.mark_prior(eps) if decoder.random.context is not None else eps
