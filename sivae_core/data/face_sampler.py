"""Mini-batches of prepared faces (:mod:`sivae_core.data.faces`) for progressive, data-parallel training.

The sampler memory-maps the array of the current resolution and reads only the rows of each batch, so
the data set never has to fit in memory (the operating system caches the file pages it reads and may drop
them again). Batches are drawn by *global* indices: every process holds the same random generator state,
draws the same permutation and the same flip coins for the whole global batch, and keeps its own slice
``rank * b .. (rank + 1) * b`` (``b = B / world``), the same rows the model's random draws assign it
(:mod:`sivae_core.models.style.randomness`). One process with batch ``B`` and ``world`` processes with
``B / world`` each therefore train on the same images, flipped the same way.

Like :class:`~sivae_core.trainer.TensorSampler` it is exactly resumable: ``state_dict`` holds the epoch's
permutation, the position in it and the resolution; the trainer's generator state does the rest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .faces import read_manifest

__all__ = ["FaceSampler"]


class FaceSampler:
    """Shuffled epochs of horizontally flipped faces in ``[-1, 1]`` (the range the paper's ``beta_rec`` and
    ``s`` were chosen for), at the resolution set by :meth:`set_resolution`.

    ``__call__(batch_size, generator, rows=None)`` takes the *global* batch size and returns this rank's
    ``batch_size / world`` images, or the rows ``rows`` of the global batch when the trainer names them (the
    :class:`~sivae_core.training.samplers.Sampler` protocol); the last incomplete batch of an epoch is dropped.
    ``count`` trains on the first ``count`` images only, so the rest of the array can be held out.
    """

    def __init__(self, root: str | os.PathLike[str], resolution: int, *, rank: int = 0, world: int = 1,
                 flip: bool = True, device: str | torch.device = "cpu", count: int | None = None):
        self.root = Path(root).expanduser()
        manifest = read_manifest(self.root)
        if manifest is None or not manifest.get("complete"):
            raise FileNotFoundError(f"{self.root} holds no complete prepared data set (no complete manifest.json); "
                                    "run python -m sivae_core.style.prepare --src FOLDER --out "
                                    f"{self.root} --resolution R first, or rerun it to finish")
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, world), got rank={rank}, world={world}")
        self.manifest, self.rank, self.world, self.flip = manifest, rank, world, flip
        self.device = torch.device(device)
        self.count = int(manifest["count"]) if count is None else int(count)
        if not 0 < self.count <= int(manifest["count"]):
            raise ValueError(f"count must be in [1, {manifest['count']}] (the prepared images), got {count}")
        self.perm: Tensor | None = None
        self.pos = 0
        self.epoch = 0
        self.set_resolution(resolution)

    def __len__(self) -> int:
        return self.count

    def set_resolution(self, resolution: int) -> None:
        """Switch to the array of ``resolution`` (the epoch's permutation and position carry on)."""
        entry = self.manifest["arrays"].get(str(resolution))
        if entry is None:
            raise ValueError(f"{self.root} was prepared up to {self.manifest['resolution']}x"
                             f"{self.manifest['resolution']}; no {resolution}x{resolution} array")
        images = np.load(self.root / entry["file"], mmap_mode="r")
        if list(images.shape) != entry["shape"] or images.dtype != np.uint8:
            raise ValueError(f"{self.root / entry['file']} has shape {images.shape}, {images.dtype}; the manifest "
                             f"says {entry['shape']}, uint8: prepare the data again")
        self.resolution, self.images = resolution, images

    def __call__(self, batch_size: int, generator: torch.Generator, rows: slice | None = None) -> Tensor:
        if rows is None and batch_size % self.world:
            raise ValueError(f"the global batch {batch_size} does not split into {self.world} equal parts")
        if batch_size > self.count:
            raise ValueError(f"batch size {batch_size} is larger than the data set ({self.count} images)")
        if self.perm is None or self.pos + batch_size > self.count:
            if self.perm is not None:
                self.epoch += 1
            self.perm = torch.randperm(self.count, generator=generator, device=generator.device)
            self.pos = 0
        index = self.perm[self.pos:self.pos + batch_size]
        self.pos += batch_size
        flips = torch.rand(batch_size, generator=generator, device=generator.device) < 0.5
        b = batch_size // self.world
        mine = rows if rows is not None else slice(self.rank * b, (self.rank + 1) * b)
        x = self.read(index[mine].cpu().numpy()).to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        if self.flip:
            x = torch.where(flips[mine].to(self.device)[:, None, None, None], x.flip(-1), x)
        return x

    def read(self, rows: np.ndarray) -> Tensor:
        """The uint8 images at ``rows``, read from the memory map in file order (faster on disks)."""
        order = np.argsort(rows)
        out = np.empty((len(rows), *self.images.shape[1:]), dtype=np.uint8)
        out[order] = self.images[rows[order]]
        return torch.from_numpy(out)

    def state_dict(self) -> dict[str, Any]:
        return {"perm": None if self.perm is None else self.perm.cpu(), "pos": self.pos, "epoch": self.epoch,
                "resolution": self.resolution}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.perm = state["perm"]
        self.pos, self.epoch = int(state["pos"]), int(state["epoch"])
        self.set_resolution(int(state["resolution"]))
