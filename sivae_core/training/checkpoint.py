"""Checkpoint files that hold tensors and plain values only, written atomically.

Readers share checkpoints (and ask the authors for pretrained weights). ``torch.load`` with
``weights_only=False`` runs whatever a pickle holds, so every checkpoint of the book is loaded with
``weights_only=True``: a file that smuggles in a callable, or any object other than tensors, numbers,
strings, lists, tuples and dicts, is refused with :class:`UnsafeCheckpointError` before anything runs.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

__all__ = ["UnsafeCheckpointError", "save_checkpoint_file", "load_checkpoint_file"]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds objects other than tensors and plain values; it was not loaded."""


def save_checkpoint_file(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` through a temporary file and a rename: a crash mid-write leaves the
    previous checkpoint intact, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint_file(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a clear error for a missing or unsafe file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"{path} was refused: it holds objects other than tensors and plain values (for example a pickled "
            "function or class), and loading it could run code. Only load checkpoints written by sivae_core, or "
            f"re-save the weights alone with torch.save(model.state_dict(), ...). Details: {str(e).splitlines()[0]}"
        ) from e
