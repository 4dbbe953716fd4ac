"""Stored results: every number the book shows from a run says what produced it and on what budget.

A result file is JSON with a ``provenance`` block (command, commit, hardware, date, versions) and the
numbers. The stored results of the book live in the repository's ``book/results/`` and ship with the package
as ``sivae_core.stored_results``, so any install, the non-editable one of Colab included, reads them:
:func:`load` returns one record, :func:`available` lists what can be loaded, :func:`resource` opens the
non-JSON files beside them (figures, arrays). ``$SIVAE_RESULTS`` points the book at another folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import warnings
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import torch

__all__ = ["RESULTS_PACKAGE", "results_root", "available", "load", "resource", "budget_block", "budget_line",
           "command_line", "provenance", "write_results"]

#: The package that holds the stored results (the folder ``book/results`` of the repository).
RESULTS_PACKAGE = "sivae_core.stored_results"


def results_root() -> Traversable:
    """``$SIVAE_RESULTS`` if set, else the stored results installed with the package, else (a source tree put on
    ``sys.path`` without installing it) ``book/results`` in the working directory or a folder above it."""
    if os.environ.get("SIVAE_RESULTS"):
        return Path(os.environ["SIVAE_RESULTS"]).expanduser()
    try:
        return resources.files(RESULTS_PACKAGE)
    except ModuleNotFoundError:
        cwd = Path.cwd()
        found = next((d / "book" / "results" for d in (cwd, *cwd.parents) if (d / "book" / "results").is_dir()), None)
        if found is None:
            raise FileNotFoundError(f"no stored results: {RESULTS_PACKAGE} is not installed and no book/results folder "
                                    f"is in {cwd} or above; install the package or set $SIVAE_RESULTS") from None
        return found


def available(prefix: str = "") -> list[str]:
    """The names of the stored result records (file names without ``.json``) that start with ``prefix``, sorted."""
    return sorted(p.name[:-5] for p in results_root().iterdir() if p.name.endswith(".json") and p.name.startswith(prefix))


def resource(name: str) -> Traversable:
    """A stored file by name (e.g. ``"ood_hist_fmnist_mnist.png"``); a clear error when it is missing."""
    root = results_root()
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(f"stored result {name!r} not found in {root} (set $SIVAE_RESULTS to another folder, "
                                f"or produce it with the command its chapter gives); available: {available()}")
    return path


def load(name: str) -> dict[str, Any]:
    """The stored result record ``name`` (with or without ``.json``) as a dict."""
    return json.loads(resource(name if name.endswith(".json") else name + ".json").read_text())


def budget_block(description: str, fraction_of_paper: float | None, **facts: Any) -> dict[str, Any]:
    """The ``budget`` entry every stored result carries: what the run cost in words (``description``), as a
    fraction of the paper's budget for the same result (compute: iterations or images seen, times seeds; ``None``
    for what is not a training run, e.g. a benchmark), and any facts worth keeping (CPU seconds, ...)."""
    if fraction_of_paper is not None and not 0 < fraction_of_paper:
        raise ValueError(f"fraction_of_paper must be positive, got {fraction_of_paper}")
    return {"description": description, "fraction_of_paper": fraction_of_paper, **facts}


def budget_line(record: dict[str, Any]) -> str:
    """The label the book prints beside every stored number: budget, its fraction of the paper's, hardware and
    commit, e.g. ``"2,000 of 30,000 iterations, 3 of 5 seeds (4.0% of the paper's budget); CPU x86_64 ...;
    commit 83d8699"``. A record without a budget block is an error: the book shows no number without its cost."""
    budget = record.get("budget")
    if not isinstance(budget, dict) or "description" not in budget:
        raise KeyError("this stored result has no budget block (budget.description, budget.fraction_of_paper); "
                       "regenerate it with the command in its provenance")
    fraction = budget.get("fraction_of_paper")
    share = "" if fraction is None else (" (the paper's full budget)" if fraction >= 1 else
                                         f" ({_percent(fraction)} of the paper's budget)")
    prov = record.get("provenance", {})
    return f"{budget['description']}{share}; {prov.get('hardware', 'unknown hardware')}; commit {prov.get('commit', '?')[:7]}"


def _percent(fraction: float) -> str:
    digits = max(0, min(3, -int(math.floor(math.log10(fraction * 100))) + 1)) if fraction < 0.1 else 0
    return f"{fraction * 100:.{digits}f}%"


def _commit() -> str:
    # A copy of the tree without .git (a remote GPU machine) is told its commit through $SIVAE_COMMIT. Otherwise
    # the commit is that of the repository the running package was imported from: the code that produced the run.
    if os.environ.get("SIVAE_COMMIT"):
        return os.environ["SIVAE_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=here)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=here).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    if dirty:
        warnings.warn("the working tree has uncommitted changes: the result records a '+dirty' commit, which the "
                      "book does not accept for stored results; commit first", stacklevel=3)
    return out.stdout.strip() + ("+dirty" if dirty else "")


def _hardware(device: str | torch.device | None) -> str:
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def command_line(argv: list[str] | None = None) -> str:
    """This process's command as a reader can rerun it: ``python -m ...`` with paths under the working
    directory made relative (never the absolute paths of the machine that ran it)."""
    argv = list(sys.argv if argv is None else argv)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    head = ["python", "-m", spec.name.removesuffix(".__main__")] if spec is not None and spec.name else ["python"]
    cwd = Path.cwd()

    def relative(arg: str) -> str:
        prefix, sep, value = arg.partition("=") if arg.startswith("--") and "=" in arg else ("", "", arg)
        path = Path(value)
        if path.is_absolute():
            try:
                value = os.path.relpath(path, cwd)
            except ValueError:  # another drive (Windows)
                pass
        return prefix + sep + value

    rest = argv[1:] if spec is not None else argv
    return " ".join(shlex.quote(a) for a in head + [relative(a) for a in rest])


def provenance(device: str | torch.device | None = None, command: str | None = None) -> dict[str, str]:
    """Command line, git commit, hardware, date and versions of the current process."""
    return {
        "command": command or command_line(),
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
