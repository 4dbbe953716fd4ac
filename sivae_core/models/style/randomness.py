"""Random draws of the style model that do not depend on how a batch is split across processes.

The decoder draws per-pixel noise on every call and style-mixes the prior samples. Under data
parallelism a global batch of ``B`` rows is split into ``world`` slices of ``b = B / world``; for a
one-process run and a ``world``-process run to compute the same step, row ``j`` of the global batch must
get the same random numbers whichever process holds it.

The trainer announces each optimisation step with :meth:`RandomSource.begin_step` (``seed``, ``step``,
``rank``, ``world``, ``b``). Every random call of the model then takes the next *call index* ``c`` (all
ranks make the same calls in the same order) and a fresh generator seeded by ``(seed, step, c)``. A call
on ``n = k * b`` rows (``k`` concatenated chunks of ``b``, as ``encode_both`` / ``decode_both`` make) draws
the numbers of the *global* call of ``k * B`` rows and keeps rows ``i * B + rank * b + r``
(``i < k``, ``r < b``): exactly the rows this rank would hold of the one-process call. Numbers shared by
the whole batch (the style-mixing coin and crossover layer) are drawn first from the same generator, so
every rank sees the same. The cost is drawing ``world`` times more numbers than a rank keeps, negligible
next to the convolutions that consume them.

Outside a step (sampling, evaluation) the default context applies: rank 0 of a world of one with
``b = n``, drawing from ``generator`` (set per call by :meth:`RandomSource.using`) or the global random
state, which makes sampling reproducible with ``torch.manual_seed`` as for any other model.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Draws", "RandomSource", "StepContext", "stream_seed"]


def stream_seed(*keys: int) -> int:
    """A 63-bit generator seed from integer keys, identical in every process, machine and Python version
    (SHA-256 of the keys; Python's ``hash`` is not guaranteed to be)."""
    digest = hashlib.sha256(struct.pack(f"<{len(keys)}q", *keys)).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class StepContext:
    """Who draws, in which step: the same ``seed`` and ``step`` on every rank, its own ``rank``."""

    seed: int
    step: int
    rank: int
    world: int
    per_rank_batch: int

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank must be in [0, world), got rank={self.rank}, world={self.world}")
        if self.per_rank_batch < 1:
            raise ValueError(f"per_rank_batch must be positive, got {self.per_rank_batch}")

    @property
    def global_batch(self) -> int:
        return self.world * self.per_rank_batch

    def global_rows(self, n: int) -> Tensor:
        """Indices of this rank's ``n = k * b`` rows in the global call of ``k * B`` rows."""
        b = self.per_rank_batch
        if n % b:
            raise ValueError(
                f"a call on {n} rows in a step with per-rank batch {b}: the model's random draws are defined "
                "for calls on whole per-rank batches (or concatenations of them); call end_step() before "
                "sampling or evaluating outside the training step"
            )
        chunks = torch.arange(n // b)[:, None] * self.global_batch
        return (chunks + self.rank * b + torch.arange(b)[None, :]).flatten()


class Draws:
    """The random numbers of one call on ``n`` rows: per-row normals and batch-wide scalars."""

    def __init__(self, n: int, device: torch.device, generator: torch.Generator | None,
                 rows: Tensor | None = None, global_n: int | None = None):
        self.n, self.device, self.generator = n, device, generator
        self.rows, self.global_n = rows, global_n

    def normal(self, *shape: int) -> Tensor:
        """Standard normals of shape ``(n, *shape)``: this rank's rows of the global call's draw."""
        if self.rows is None:
            return torch.randn(self.n, *shape, generator=self.generator, device=self.device)
        full = torch.randn(self.global_n, *shape, generator=self.generator, device=self.device)
        return full.index_select(0, self.rows)

    def uniform(self) -> float:
        """One U(0, 1) number shared by the whole (global) batch."""
        return float(torch.rand((), generator=self.generator, device=self.device))

    def integer(self, low: int, high: int) -> int:
        """One integer in ``[low, high]`` (both included) shared by the whole batch."""
        return int(torch.randint(low, high + 1, (), generator=self.generator, device=self.device))


class RandomSource:
    """Hands each random call of the model its :class:`Draws` (see the module docstring)."""

    def __init__(self) -> None:
        self.context: StepContext | None = None
        self.calls = 0
        self.generator: torch.Generator | None = None

    def begin_step(self, context: StepContext) -> None:
        self.context = context
        self.calls = 0

    def end_step(self) -> None:
        self.context = None

    @contextmanager
    def using(self, generator: torch.Generator | None) -> Iterator[None]:
        """Draw from ``generator`` in the default context for the duration of the block."""
        previous, self.generator = self.generator, generator
        try:
            yield
        finally:
            self.generator = previous

    def draws(self, n: int, device: torch.device) -> Draws:
        """The draws of the next call on ``n`` rows (counts the call in a step)."""
        ctx = self.context
        if ctx is None:
            return Draws(n, device, self.generator)
        rows = ctx.global_rows(n).to(device)
        generator = torch.Generator(device=device).manual_seed(stream_seed(ctx.seed, ctx.step, self.calls))
        self.calls += 1
        return Draws(n, device, generator, rows, (n // ctx.per_rank_batch) * ctx.global_batch)
