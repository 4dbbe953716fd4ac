"""The one rule that scales a training schedule to a budget: warm-up and learning-rate drops as fractions.

Every run of the book is "N iterations, the first ``warmup * N`` a plain VAE, the learning rate x0.1 at
``drops * N``". Two named schedules cover every chapter:

* :data:`PAPER_2D`: the proportions of the paper's 2D budget (Daniel & Tamar 2021, Sec. 9.2.1: 2,000 warm-up
  iterations and drops at 10,000 and 15,000 of 30,000), for reduced runs that keep the paper's shape;
* :data:`SHORT`: 10% warm-up and drops at 80% and 90%, for fast-mode runs of a few thousand iterations
  (the paper's early drops would leave a short run only a few hundred iterations at the full learning rate,
  which is where it learns).

The image runs use no warm-up and their own drops (``ImageSettings.lr_drops``), through the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..training.trainer import TrainConfig

__all__ = ["Schedule", "PAPER_2D", "SHORT", "train_config"]


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
