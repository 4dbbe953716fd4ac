"""Callbacks the trainer calls at every log step, and the exception that ends a run early but cleanly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["StopTraining", "Callback", "time_budget"]

Callback = Callable[["Trainer", int, dict[str, Any]], None]


class StopTraining(Exception):
    """Raised by a callback to end training early: the trainer saves its checkpoint and returns normally."""


def time_budget(seconds: float, clock: Callable[[], float] | None = None) -> Callback:
    """A callback that stops a run before it exceeds ``seconds`` of ``clock`` (CPU time by default).

    Checks come every ``log_every`` iterations. It stops at the last check from which another stretch as
    long as the previous one would overrun, so that a run never exceeds its budget (a fast-mode promise such
    as "10 CPU-minutes" holds, and a suite job leaves the next job its time). ``clock`` defaults to this
    process's CPU time, :func:`time.process_time`.
    """
    clock = clock or time.process_time
    start = clock()
    last = 0.0

    def check(trainer: Trainer, iteration: int, record: dict[str, Any]) -> None:
        nonlocal last
        spent = clock() - start
        stretch, last = spent - last, spent
        if spent + stretch > seconds:
            raise StopTraining(f"time budget of {seconds:g} s reached at iteration {iteration}")

    return check
