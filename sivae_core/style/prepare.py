"""``python -m sivae_core.style.prepare --src FOLDER --out DIR --resolution R``: the ``style-prepare`` command.

See :mod:`sivae_core.data.faces` for what it writes.
"""

from sivae_core.cli import run_command

if __name__ == "__main__":
    raise SystemExit(run_command("style-prepare"))
