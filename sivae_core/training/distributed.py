"""Data-parallel training with :mod:`torch.distributed` and DistributedDataParallel, launched by ``torchrun``.

One command runs everywhere: a plain ``python -m ...`` is one process (CPU, one GPU, Colab);
``torchrun --standalone --nproc-per-node N -m ...`` starts ``N`` processes that split every global batch.
Each process draws the *same* global batch and noise from the same seeded generators and keeps its own rows
(:meth:`Shard.rows`), so the union of the processes' work is exactly the one-process step; DDP averages the
gradients, and the average of the per-process batch means is the global batch mean. Logs, checkpoints and
samples are written by rank 0 only (:attr:`Shard.is_main`).

The two players are wrapped separately (``DistributedDataParallel(model.encoder)``, ``...(model.decoder)``), and
the wrappers take the players' places in the model only while a loss is computed (:meth:`Shard.step_of`): the
objective's forward passes go through DDP, while checkpoints, the EMA, samplers and a progressive schedule see
the plain model with its plain parameter names and its current attributes. While one player takes its step, the
other's wrapper is in ``no_sync()``: its parameters get no gradient in that step (the trainer calls
``backward(inputs=...)``), and DDP must not wait for one. (DDP decides in the forward pass whether a backward
pass synchronises, so only the forward needs the context.)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from ..models.base import PLAYERS, IntroVAEModel

__all__ = ["Shard", "init_distributed"]


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` data-parallel processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        """The process that logs, checkpoints and draws samples."""
        return self.rank == 0

    def rows(self, global_batch: int) -> slice | None:
        """This process's rows of a global batch (None: all of them)."""
        if self.world == 1:
            return None
        if global_batch % self.world:
            raise ValueError(f"the global batch of {global_batch} does not split evenly over {self.world} processes; "
                             f"choose a batch size divisible by {self.world}")
        b = global_batch // self.world
        return slice(self.rank * b, (self.rank + 1) * b)

    def mean(self, t: Tensor) -> Tensor:
        """The average of ``t`` over the processes (for logging the global batch's losses)."""
        if self.world == 1:
            return t
        t = t.detach().float().clone()
        dist.all_reduce(t)
        return t / self.world

    def all_true(self, flag: bool) -> bool:
        """True only if ``flag`` holds in every process (a NaN on one rank must stop all of them)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def any_true(self, flag: bool) -> bool:
        """True if ``flag`` holds in some process (rank 0's decision to stop, shared with everyone)."""
        return not self.all_true(not flag)

    def _device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def wrap(self, model: IntroVAEModel) -> dict[str, DistributedDataParallel]:
        """DDP wrappers of the model's encoder and decoder (none when not distributed); the parameters are shared."""
        if self.world == 1:
            return {}
        if any(p.requires_grad for p in model.prior.parameters()):
            raise NotImplementedError("data-parallel training of a learnable prior is not supported: its methods are "
                                      "called directly, which DistributedDataParallel cannot synchronise")
        device = next(model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        # find_unused_parameters: a progressive model leaves the blocks of other resolutions unused.
        return {name: DistributedDataParallel(getattr(model, name), device_ids=ids, find_unused_parameters=True)
                for name in ("encoder", "decoder")}

    @contextlib.contextmanager
    def step_of(self, model: IntroVAEModel, wrappers: dict[str, DistributedDataParallel],
                player: str | None) -> Iterator[None]:
        """Compute one player's loss (None: a joint loss) through the DDP wrappers; the other player's wrapper
        skips gradient synchronisation. The plain modules are back in place afterwards."""
        if not wrappers:
            yield
            return
        plain = {name: model._modules[name] for name in wrappers}
        with contextlib.ExitStack() as stack:
            for name, wrapper in wrappers.items():
                model._modules[name] = wrapper
                if player is not None and name not in PLAYERS[player]:
                    stack.enter_context(wrapper.no_sync())
            try:
                yield
            finally:
                model._modules.update(plain)


def init_distributed(device: torch.device) -> Shard:
    """Join the process group that ``torchrun`` describes in the environment (gloo on CPU, NCCL on GPU);
    without ``torchrun`` (``WORLD_SIZE`` unset or 1) this is a single process and nothing is initialised."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Shard()
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Shard(dist.get_rank(), dist.get_world_size())
