"""Small helpers the chapters share: where data and checkpoints live, and showing the core's code.

The chapters never copy library code into a cell: they show the real function with
:func:`show_source`, so what the reader sees is what runs.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

__all__ = ["show_source", "data_root", "checkpoint_root", "results_dir", "on_colab"]

_REPO = Path(__file__).resolve().parents[1]


def show_source(obj: Any, lines: tuple[int, int] | None = None) -> Any:
    """Display the source of a function or class from :mod:`sivae_core` as a highlighted code block.

    ``lines`` = (first, last), 1-based and inclusive, shows part of a long object.
    """
    from IPython.display import Markdown

    src = inspect.getsource(obj)
    if lines is not None:
        src = "\n".join(src.splitlines()[lines[0] - 1 : lines[1]])
    module = inspect.getmodule(obj)
    where = f"`{module.__name__}`" if module is not None else ""
    return Markdown(f"From {where}:\n\n```python\n{src.rstrip()}\n```")


def on_colab() -> bool:
    """True inside Google Colab (the chapters then install the package and may download data)."""
    try:
        import google.colab  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def data_root() -> Path:
    """Dataset root: ``$SIVAE_DATA`` if set, else ``../shared/data`` next to the repository, else ``./data``."""
    if os.environ.get("SIVAE_DATA"):
        return Path(os.environ["SIVAE_DATA"]).expanduser()
    shared = _REPO.parent / "shared" / "data"
    return shared if shared.exists() else Path("data").resolve()


def checkpoint_root() -> Path:
    """Where chapters keep checkpoints: ``$SIVAE_CKPT`` if set, else ``<repo>/checkpoints``."""
    root = Path(os.environ.get("SIVAE_CKPT", _REPO / "checkpoints")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def results_dir() -> Path:
    """``book/results``: committed full-mode result files (each records command, commit and hardware)."""
    return _REPO / "book" / "results"
