"""The progressive-growing schedule: where training stands after any number of images.

Training grows the style model from 4x4 to its final resolution in *phases*, one per resolution
(Daniel & Tamar 2021, Appendix 9.2.2; the authors' ``lod_driver.py``). A phase lasts a number of epochs over the data
set, has its own total batch, learning rate and ``beta_neg``, and fades its new block in over its first
``fade_epochs`` (half of the epochs per resolution). The schedule is a pure function of the number of
training images seen so far, so a resumed run, a one-process run and an N-process run with the same
global batch all stand at the same place.

**Fade-in curve.** With ``t`` the fraction of the fade done, the authors blend with
``alpha = sin(pi t - pi/2) / 2 + 1/2 = (1 - cos(pi t)) / 2``: it leaves 0 and arrives at 1 with zero slope,
so neither the start nor the end of a fade jolts the networks. The same here.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FAST_PRESETS",
    "PAPER_BATCH",
    "PAPER_BETA_NEG",
    "Phase",
    "ProgressiveSchedule",
    "ScheduleState",
    "fade_alpha",
    "fast_schedule",
    "paper_schedule",
    "uniform_schedule",
]

#: ``beta_neg`` per resolution 4, 8, ..., 256: the authors' configs (celeba-hq256.yaml and ffhq256.yaml).
#: The paper's text gives a single 512: the list's value from 64x64 on.
PAPER_BETA_NEG = (2048.0, 2048.0, 2048.0, 1024.0, 512.0, 512.0, 512.0)
#: Total batch per resolution 4, ..., 256 for 1 and 4 GPUs (the authors' LOD_2_BATCH_1GPU / _4GPU).
PAPER_BATCH = {1: (128, 128, 128, 32, 16, 8, 4), 4: (512, 256, 128, 64, 32, 32, 16)}


def fade_alpha(t: float) -> float:
    """The authors' eased blend factor for fade progress ``t`` (clipped to [0, 1])."""
    t = min(max(t, 0.0), 1.0)
    return 0.5 - 0.5 * math.cos(math.pi * t)


@dataclass(frozen=True)
class Phase:
    """Training at one resolution."""

    resolution: int
    epochs: float
    #: Total batch over all processes (each of ``world`` processes takes ``batch / world``).
    batch: int
    lr: float
    beta_neg: float
    #: Epochs at the start of the phase that fade the new block in (0 for the first resolution).
    fade_epochs: float = 0.0
    #: The phase's ``beta_rec``; None: the objective's own, unchanged (the authors' one value for every resolution).
    beta_rec: float | None = None


@dataclass(frozen=True)
class ScheduleState:
    """Where training stands: the stage to set, the batch, learning rate and ``beta_neg`` to use."""

    phase: int
    resolution: int
    alpha: float
    batch: int
    lr: float
    beta_neg: float
    #: Epochs since the start of training (fractional).
    epoch: float
    #: True during the plain-VAE warm-up at the start of training.
    vae: bool
    #: The phase's ``beta_rec`` (None: leave the objective's).
    beta_rec: float | None = None


@dataclass(frozen=True)
class ProgressiveSchedule:
    """Phases over a data set of ``dataset_size`` images, after a plain-VAE warm-up of ``vae_epochs``
    (counted inside the first phase, as the authors' first epoch)."""

    phases: tuple[Phase, ...]
    dataset_size: int
    vae_epochs: float = 0.0

    def __post_init__(self) -> None:
        if self.dataset_size < 1:
            raise ValueError(f"dataset_size must be positive, got {self.dataset_size}")
        if not self.phases or self.phases[0].resolution != 4:
            raise ValueError("a progressive schedule starts at 4x4")
        for prev, ph in zip(self.phases[:-1], self.phases[1:]):
            if ph.resolution != 2 * prev.resolution:
                raise ValueError(f"resolutions must double from phase to phase: {prev.resolution} -> {ph.resolution}")
        if self.phases[0].fade_epochs:
            raise ValueError("the 4x4 phase has nothing to fade in (fade_epochs must be 0)")
        for ph in self.phases:
            if ph.epochs <= 0 or ph.batch < 1 or not 0 <= ph.fade_epochs <= ph.epochs:
                raise ValueError(f"phase {ph}: need epochs > 0, batch >= 1 and 0 <= fade_epochs <= epochs")

    @property
    def starts(self) -> tuple[int, ...]:
        """Images seen at the start of each phase."""
        out, total = [], 0.0
        for ph in self.phases:
            out.append(round(total))
            total += ph.epochs * self.dataset_size
        return tuple(out)

    @property
    def total_images(self) -> int:
        return round(sum(ph.epochs for ph in self.phases) * self.dataset_size)

    @property
    def total_epochs(self) -> float:
        return sum(ph.epochs for ph in self.phases)

    @property
    def step_starts(self) -> tuple[int, ...]:
        """Images seen at the first training step of each phase. Every step takes the batch of the phase it starts
        in, so a step that starts just before a phase begins still belongs to the phase before, and a phase's first
        step is the first one that starts at or after its start (where Adam is reset when the resolution grows)."""
        firsts, seen = [0], 0
        for ph, end in zip(self.phases[:-1], self.starts[1:]):
            seen += max(-(-(end - seen) // ph.batch), 0) * ph.batch
            firsts.append(seen)
        return tuple(firsts)

    def steps_before(self, images: int) -> int:
        """How many training steps start before ``images`` images have been seen."""
        n = 0
        for ph, first, end in zip(self.phases, self.step_starts, (*self.starts[1:], self.total_images)):
            stop = min(end, images)
            if stop > first:
                n += -(-(stop - first) // ph.batch)
        return n

    @property
    def iterations(self) -> int:
        """Training steps of the whole schedule."""
        return self.steps_before(self.total_images)

    @property
    def vae_steps(self) -> int:
        """Training steps of the plain-VAE warm-up (the trainer's ``vae_warmup``)."""
        return self.steps_before(round(self.vae_epochs * self.dataset_size))

    def state(self, images_seen: int) -> ScheduleState:
        """The schedule after ``images_seen`` training images (past the end: the last phase, fully in)."""
        i = max(bisect.bisect_right(self.starts, images_seen) - 1, 0)
        ph, into = self.phases[i], images_seen - self.starts[i]
        alpha = fade_alpha(into / (ph.fade_epochs * self.dataset_size)) if ph.fade_epochs else 1.0
        epoch = images_seen / self.dataset_size
        return ScheduleState(i, ph.resolution, alpha, ph.batch, ph.lr, ph.beta_neg, epoch, epoch < self.vae_epochs,
                             ph.beta_rec)

    def curve(self, points: int = 512) -> dict[str, list[float]]:
        """``epoch``, ``resolution`` and ``alpha`` at ``points`` evenly spaced moments, for plotting."""
        seen = [round(k * self.total_images / (points - 1)) for k in range(points)]
        states = [self.state(n) for n in seen]
        return {"epoch": [n / self.dataset_size for n in seen], "resolution": [s.resolution for s in states],
                "alpha": [s.alpha for s in states]}

    def plot(self, ax: Any = None) -> Any:
        """Resolution (log scale, left axis) and fade-in ``alpha`` (right axis) over the epochs."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.subplots(figsize=(8, 3))[1]
        c = self.curve()
        ax.step(c["epoch"], c["resolution"], where="post", color="C0")
        ax.set_yscale("log", base=2)
        ax.set_yticks([ph.resolution for ph in self.phases], [str(ph.resolution) for ph in self.phases])
        ax.set_xlabel("epoch")
        ax.set_ylabel("resolution", color="C0")
        right = ax.twinx()
        right.plot(c["epoch"], c["alpha"], color="C1")
        right.set_ylabel("fade-in alpha", color="C1")
        right.set_ylim(-0.05, 1.05)
        return ax


def uniform_schedule(dataset_size: int, resolution: int, epochs_per_resolution: float, batches: Sequence[int],
                     lr: float | Sequence[float], beta_neg: float | Sequence[float], final_epochs: float | None = None,
                     vae_epochs: float = 0.0, beta_rec: Sequence[float] | None = None) -> ProgressiveSchedule:
    """``epochs_per_resolution`` at every resolution up to ``resolution`` (``final_epochs`` at the last one),
    each fading in over half of ``epochs_per_resolution``; per-resolution lists or one value for lr and beta_neg,
    and optionally a ``beta_rec`` per resolution."""
    n = resolution.bit_length() - 2
    lrs = list(lr) if isinstance(lr, Sequence) else [lr] * n
    negs = list(beta_neg) if isinstance(beta_neg, Sequence) else [beta_neg] * n
    recs: list[float | None] = list(beta_rec) if beta_rec is not None else [None] * n
    if min(len(batches), len(lrs), len(negs), len(recs)) < n:
        raise ValueError(f"need a batch, lr, beta_neg (and beta_rec, if given) for each of the {n} resolutions "
                         f"4..{resolution}")
    phases = []
    for i in range(n):
        epochs = final_epochs if (i == n - 1 and final_epochs is not None) else epochs_per_resolution
        phases.append(Phase(4 << i, epochs, batches[i], lrs[i], negs[i], epochs_per_resolution / 2 if i else 0.0,
                            recs[i]))
    return ProgressiveSchedule(tuple(phases), dataset_size, vae_epochs)


def paper_schedule(dataset: str = "celeba-hq", gpus: int = 4, dataset_size: int | None = None) -> ProgressiveSchedule:
    """The paper's 256x256 schedule: 30 epochs per resolution, 256x256 from epoch 180, 230 epochs in all for
    CelebA-HQ (29,000 training images) and 270 for FFHQ (60,000); lr 1.5e-3; one plain-VAE epoch first.

    The paper's 30 epochs per resolution hold for both data sets; the authors' ``ffhq256.yaml`` says 16 (and
    lr 2e-3 at 256x256): the paper is followed here.
    """
    sizes, totals = {"celeba-hq": 29_000, "ffhq": 60_000}, {"celeba-hq": 230, "ffhq": 270}
    if dataset not in sizes or gpus not in PAPER_BATCH:
        raise ValueError(f"dataset in {sorted(sizes)} and gpus in {sorted(PAPER_BATCH)}, got {dataset!r}, {gpus}")
    return uniform_schedule(dataset_size or sizes[dataset], 256, 30, PAPER_BATCH[gpus], 1.5e-3, PAPER_BETA_NEG,
                            final_epochs=totals[dataset] - 6 * 30, vae_epochs=1)


#: Short budgets for the book's live runs (name -> resolution, epochs per resolution, batches, final epochs).
FAST_PRESETS: dict[str, tuple[int, float, tuple[int, ...], float]] = {
    # CPU fast mode on the 10k CelebA faces: 4 -> 32, minutes on two cores.
    "cpu32": (32, 0.5, (32, 32, 16, 16), 1.0),
    # One GPU, a few minutes at 64x64.
    "gpu64": (64, 4.0, (128, 128, 128, 64, 32), 6.0),
}


def fast_schedule(name: str, dataset_size: int) -> ProgressiveSchedule:
    """A :data:`FAST_PRESETS` budget with the paper's lr and beta_neg list (no VAE warm-up)."""
    if name not in FAST_PRESETS:
        raise ValueError(f"unknown fast preset {name!r}; choose one of {sorted(FAST_PRESETS)}")
    resolution, epochs, batches, final = FAST_PRESETS[name]
    return uniform_schedule(dataset_size, resolution, epochs, batches, 1.5e-3, PAPER_BETA_NEG, final_epochs=final)
