"""Render the book to _build/html, after executing every notebook in fast mode (unless --no-execute).

The Sphinx build runs with -n -W --keep-going: a broken reference or any warning fails the build.
Jupyter Book itself never executes notebooks here (execute_notebooks: "off" in _config.yml); papermill
does, so the HTML shows exactly the outputs stored in the notebooks and checked by nbval.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-execute", action="store_true", help="render the stored outputs as they are")
    parser.add_argument("--full", action="store_true", help="execute with FAST=False (paper budgets)")
    args = parser.parse_args()
    if not args.no_execute:
        cmd = [sys.executable, str(ROOT / "scripts" / "execute_notebooks.py")] + (["--full"] if args.full else [])
        subprocess.run(cmd, check=True, cwd=ROOT)
    build = ["jupyter-book", "build", str(ROOT), "-n", "-W", "--keep-going"]
    return subprocess.run(build, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
