"""Small helpers the chapters share: showing the core's code, and where data and checkpoints live.

The chapters never copy library code into a cell: they show the real function with :func:`show_source`, so
what the reader sees is what runs. Locations come from environment variables or the working directory, never
from where the package is installed (a Colab install lives in site-packages).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from .data.images import candidate_roots

__all__ = ["show_source", "data_root", "checkpoint_root", "on_colab"]


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
    """The data root the loaders find first: ``$SIVAE_DATA``, ``./data``, or ``shared/data`` here or above
    (see :func:`sivae_core.data.images.candidate_roots`); ``./data`` when none exists yet (downloads go there)."""
    return next((r for r in candidate_roots() if r.is_dir()), Path("data").resolve())


def checkpoint_root() -> Path:
    """Where long runs keep their checkpoints: ``$SIVAE_CKPT`` (on Colab, a Google Drive folder, so a run
    survives the end of a session), else ``./checkpoints`` under the working directory."""
    root = Path(os.environ.get("SIVAE_CKPT", "checkpoints")).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root
