"""Module form of ``python -m sivae_core toy2d`` (same flags), kept for the commands the book documents."""

from sivae_core.cli import run_command

raise SystemExit(run_command("toy2d"))
