"""Execute the book's notebooks with papermill (fast mode unless --full).

Notebooks are taken from _toc.yml, so only chapters that are in the book run. By default each is
executed in place (its stored outputs are then the fast-mode outputs that ``pytest --nbval`` checks);
``--out DIR`` writes the executed copies to DIR instead and leaves the sources untouched.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import papermill as pm
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Stored outputs must be what nbval re-creates: progress bars would be stored as widgets that a headless
# nbval run (SIVAE_PROGRESS=0 in scripts/test.sh) does not produce, so executed chapters store none.
os.environ.setdefault("SIVAE_PROGRESS", "0")
# One torch thread per kernel, as scripts/test.sh re-executes them: CPU numbers are deterministic for a fixed
# thread count, and the book's small models run no faster on two.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The kernel must draw with matplotlib's inline backend, which IPython picks only when MPLBACKEND is unset: with
# MPLBACKEND=Agg inherited from a shell (scripts/test.sh sets it for pytest) every figure is silently dropped from
# the stored outputs, and the rendered book shows none.
os.environ.pop("MPLBACKEND", None)


def toc_notebooks() -> list[Path]:
    """Every .ipynb named in _toc.yml, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return [ROOT / (f + ".ipynb") for f in files if (ROOT / (f + ".ipynb")).exists()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in _toc.yml")
    parser.add_argument("--out", type=Path, help="write executed copies here instead of in place")
    parser.add_argument("--full", action="store_true", help="run with FAST=False (paper budgets; GPU advised)")
    args = parser.parse_args()
    notebooks = [p.resolve() for p in args.notebooks] or toc_notebooks()
    params = {"FAST": False} if args.full else {}
    for nb in notebooks:
        target = nb if args.out is None else args.out.resolve() / nb.name
        target.parent.mkdir(parents=True, exist_ok=True)
        start = time.time()
        print(f"executing {nb.relative_to(ROOT)} ...", flush=True)
        pm.execute_notebook(str(nb), str(target), parameters=params, cwd=str(nb.parent),
                            kernel_name="python3", progress_bar=False, request_save_on_cell_execute=False,
                            execution_timeout=1800)  # a cell that hangs fails the run instead of blocking it
        print(f"  done in {time.time() - start:.0f} s -> {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
