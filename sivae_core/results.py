"""Result files with provenance: every full-mode number in the book says what produced it."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

__all__ = ["provenance", "write_results", "read_results"]


def _commit() -> str:
    # A copy of the tree without .git (a remote GPU machine) is told its commit through $SIVAE_COMMIT.
    if os.environ.get("SIVAE_COMMIT"):
        return os.environ["SIVAE_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _hardware(device: str | torch.device | None) -> str:
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def provenance(device: str | torch.device | None = None, command: str | None = None) -> dict[str, str]:
    """Command line, git commit, hardware, date and versions of the current process."""
    return {
        "command": command or " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable), *sys.argv]),
        "commit": _commit(),
        "hardware": _hardware(device),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def write_results(path: str | os.PathLike[str], results: dict[str, Any], device: str | torch.device | None = None,
                  command: str | None = None, provenance_override: dict[str, str] | None = None) -> Path:
    """Write ``results`` plus a ``provenance`` block as pretty JSON.

    Long runs should take :func:`provenance` when they start and pass it as ``provenance_override``, so
    the file names the commit that actually trained.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"provenance": provenance_override or provenance(device, command), **results}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a result file; a clear error when it is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"result file {path} not found; it is produced by the command in the chapter")
    return json.loads(path.read_text())
