"""Whole-step CUDA graphs (``TrainConfig.cuda_graph``): one launch per training step instead of thousands.

Why: an ensemble step of the 2D experiments is about 2,200 tiny kernels (S-IntroVAE's encoder and decoder
passes, two backward passes and two Adam steps, all under ``vmap``). On a GPU each kernel costs more to launch
from Python than to run, so the step is bound by the CPU: an H200 managed about 34 ensemble steps/s at R = 60,
which puts Table 2 (three ensembles x 30,000 steps) at half an hour. PyTorch can record the step once as a CUDA
graph and replay the recording with one call ("whole-network capture", PyTorch's CUDA semantics notes).

A recorded step replays exactly the same kernels on the same memory, so everything that varies between steps
must live in tensors the graph reads, and nothing may wait for the GPU inside it. :class:`StepGraphs` arranges
that for the :class:`~sivae_core.training.trainer.Trainer`:

* **inputs**: the trainer draws each step's batch and noise as always (its generators, so runs and resumes
  are unchanged) and the draw is copied into the buffers the graph reads;
* **no host synchronisation**: instead of checking every loss for NaN/inf on the host, the step records on
  the device the first iteration at which each run's loss was not finite; :meth:`StepGraphs.check` reads it at
  log steps and before a checkpoint is written (so a NaN surfaces up to ``log_every`` iterations late, with
  the iteration it happened at);
* **optimizer state on the device**: Adam with ``capturable=True`` and the learning rate as a tensor that the
  scheduler fills at its milestones;
* **no Python-side state in the objective**: an objective whose schedule counter is a Python number (beta-VAE-B's
  capacity; ``Objective.recordable`` is False) is refused, because a replay would not advance it. AS-IntroVAE
  keeps its annealing counter as a tensor on the device, which the recorded step advances.

One graph per phase (the VAE warm-up, then the objective), captured after a few ordinary steps on a side
stream (CUDA needs its libraries initialised before capture). On a CPU nothing is captured: the same
synchronisation-free step runs as it is, so the CPU tests exercise every part but the recording itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["StepGraphs", "EAGER_STEPS_BEFORE_CAPTURE", "CALLS_UNTIL_STEADY"]

#: Ordinary steps of a phase before its capture (they train like any other step).
EAGER_STEPS_BEFORE_CAPTURE = 3
#: Calls of a recorded step before its calls are steady replays: the ordinary steps, the capture, a first replay
#: (what a benchmark leaves untimed).
CALLS_UNTIL_STEADY = EAGER_STEPS_BEFORE_CAPTURE + 2

Updates = Callable[[dict[str, Any], Tensor, Tensor, Tensor], dict[str, Tensor]]


class StepGraphs:
    """Records and replays a trainer's step, one graph per phase, and keeps the device-side finite-loss record."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.capture = trainer.device.type == "cuda"
        n = trainer.model.n_runs if trainer.is_ensemble else 1
        #: First iteration at which run r's encoder (row 0) or decoder (row 1) loss was not finite; -1: never.
        self.first_nonfinite = torch.full((2, n), -1, dtype=torch.long, device=trainer.device)
        self.iteration = torch.zeros((), dtype=torch.long, device=trainer.device)
        self.reset()

    def reset(self) -> None:
        """Forget the recordings (new optimizers or a loaded checkpoint replace tensors the graphs point to)."""
        self.phase: str | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[Tensor, ...] = ()
        self.outputs: dict[str, Tensor] = {}
        self.hp: dict[str, Any] = {}
        self.eager_steps = 0

    def mark(self, loss: Tensor, part: str) -> Tensor:
        """Record which runs' ``part`` loss is not finite at this iteration (on the device); return the mask of
        finite runs, with which the trainer zeroes the others' losses exactly as an eager step drops them."""
        finite = torch.isfinite(loss).reshape(-1)
        row = self.first_nonfinite[0 if part in ("encoder", "joint") else 1]
        row.copy_(torch.where(~finite & (row < 0), self.iteration, row))
        return finite.reshape(loss.shape)

    def step(self, phase: str, hparams: Callable[[], dict[str, Any]], updates: Updates,
             x: Tensor, eps_e: Tensor, eps_d: Tensor) -> dict[str, Tensor]:
        """One training step of ``phase`` on this draw: ``updates(hp, x, eps_e, eps_d)`` run, recorded or replayed.

        The returned loss terms are the graph's output buffers: the next step overwrites them."""
        if phase != self.phase:
            self.reset()
            self.phase, self.hp = phase, hparams()
        self.iteration.fill_(self.trainer.iteration)
        if not self.capture:
            return updates(self.hp, x, eps_e, eps_d)
        if self.graph is not None:
            for buffer, value in zip(self.inputs, (x, eps_e, eps_d)):
                buffer.copy_(value)
            self.graph.replay()
            return self.outputs
        if self.eager_steps < EAGER_STEPS_BEFORE_CAPTURE:
            self.eager_steps += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                logs = updates(self.hp, x, eps_e, eps_d)
            torch.cuda.current_stream().wait_stream(side)
            return logs
        self.inputs = (x.clone(), eps_e.clone(), eps_d.clone())
        for opt in (self.trainer.opt_e, self.trainer.opt_d):
            opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.outputs = updates(self.hp, *self.inputs)
        self.graph = graph
        graph.replay()  # capture only records: this step still has to run
        return self.outputs

    def nonfinite(self) -> dict[int, tuple[int, str]]:
        """Runs whose loss was not finite: run -> (first iteration, "encoder" or "decoder"). Waits for the GPU."""
        rows = self.first_nonfinite.tolist()
        out: dict[int, tuple[int, str]] = {}
        for part, row in zip(("encoder", "decoder"), rows):
            for r, it in enumerate(row):
                if it >= 0 and (r not in out or it < out[r][0]):
                    out[r] = (it, part)
        return out
