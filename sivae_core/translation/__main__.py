"""``python -m sivae_core.translation ...``: the ``translation`` command of :mod:`sivae_core.cli`."""

from sivae_core.cli import run_command

raise SystemExit(run_command("translation"))
