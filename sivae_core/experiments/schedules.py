"""The one rule that scales a training schedule to a budget: warm-up and learning-rate drops as fractions.

Every run of the book is "N iterations, the first ``warmup * N`` a plain VAE, the learning rate x0.1 at
``drops * N``". Two named schedules cover every chapter:

* :data:`PAPER_2D`: the proportions of the paper's 2D budget (30,000 iterations, Daniel & Tamar 2021, Sec. 9.2.1)
  as the authors' code schedules it (2,000 warm-up iterations and drops at 10,000 and 15,000; the paper's text
  gives neither), for reduced runs that keep that shape;
* :data:`SHORT`: 10% warm-up and drops at 80% and 90%, for fast-mode runs of a few thousand iterations
  (the paper's early drops would leave a short run only a few hundred iterations at the full learning rate,
  which is where it learns).

The image runs use no warm-up and their own drops (``ImageSettings.lr_drops``), through the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..results import budget_block
from ..training.trainer import TrainConfig

__all__ = ["Schedule", "PAPER_2D", "SHORT", "train_config", "budget_2d"]


@dataclass(frozen=True)
class Schedule:
    """A warm-up and learning-rate drops, as fractions of the run."""

    warmup: float = 0.0
    drops: tuple[float, ...] = ()

    def scale(self, iterations: int) -> dict[str, Any]:
        """The schedule of a run of ``iterations``: ``iterations``, ``vae_warmup``, ``lr_milestones``."""
        return {"iterations": int(iterations), "vae_warmup": round(self.warmup * iterations),
                "lr_milestones": tuple(round(f * iterations) for f in self.drops)}


PAPER_2D = Schedule(2 / 30, (1 / 3, 1 / 2))
SHORT = Schedule(0.1, (0.8, 0.9))


def train_config(iterations: int = 30_000, schedule: Schedule = PAPER_2D, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` of ``iterations`` with ``schedule`` (default: the paper's 2D budget), then ``overrides``."""
    return replace(TrainConfig(), **{**schedule.scale(iterations), **overrides})


def budget_2d(iterations: int, seeds: int, batch_size: int = 512, hidden: int = 256,
              paper_seeds: int | None = 5) -> dict[str, Any]:
    """The budget block of a 2D result against the paper's 2D protocol (Daniel & Tamar 2021, Sec. 9.2.1: 30,000
    iterations of batch 512, MLPs of width 256; Table 2 averages 5 seeds). The fraction counts samples seen
    (iterations x batch, times seeds when the paper states its seeds); a narrower MLP is said, not counted."""
    fraction = iterations * batch_size / (30_000 * 512) * (seeds / paper_seeds if paper_seeds else 1.0)
    text = f"{iterations:,} of 30,000 iterations, " + (f"{seeds} of {paper_seeds} seeds" if paper_seeds else
                                                         f"{seeds} seed{'s' if seeds > 1 else ''}")
    if batch_size != 512:
        text += f", batch {batch_size} (paper 512)"
    if hidden != 256:
        text += f", width {hidden} (paper 256)"
    return budget_block(text, fraction)
