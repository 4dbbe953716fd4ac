"""Several independent trainers advanced side by side, each on its own CUDA stream.

Why: one ensemble of Table 2 (20 tiny runs) leaves an H200 partly idle even with its step recorded as a CUDA graph:
at 15 runs an ensemble made about 3,000 run-iterations per second, at 240 runs about 4,800. Table 2's three
ensembles (VAE, IntroVAE, S-IntroVAE) cannot share one ``vmap`` (different objectives), but nothing stops the GPU from
running their steps at the same time: each on its own stream, one step of each in turn, so every stream always has
work queued while the others compute. On a CPU (or with one trainer) the steps simply run one after another.

The trainers are independent (own parameters, optimizers, generators), so the order in which their steps are
issued changes nothing: a trainer advanced side by side ends exactly where it ends when trained alone (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["fit_side_by_side"]


def fit_side_by_side(trainers: Sequence[Trainer], iterations: int) -> None:
    """Train every trainer until ``iterations`` in total, one step of each in turn; on a GPU, each on its own stream.

    Returns when all of them are done, with the caller's stream ordered after their work (so what the caller runs
    next, an evaluation for example, sees the trained weights)."""
    cuda = bool(trainers) and trainers[0].device.type == "cuda"
    streams = [torch.cuda.Stream(device=tr.device) for tr in trainers] if cuda else [None] * len(trainers)
    for stream in streams:
        if stream is not None:
            stream.wait_stream(torch.cuda.current_stream())
    running = [(tr.iterate(iterations, resume=False), stream) for tr, stream in zip(trainers, streams)]
    while running:
        for pair in list(running):
            steps, stream = pair
            with torch.cuda.stream(stream) if stream is not None else nullcontext():
                if next(steps, None) is None:  # done (or stopped by a callback): its last checkpoint is written
                    running.remove(pair)
    for stream in streams:
        if stream is not None:
            torch.cuda.current_stream().wait_stream(stream)
