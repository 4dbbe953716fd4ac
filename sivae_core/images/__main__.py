"""Module form of ``python -m sivae_core images`` (same flags), kept for the commands the book documents."""

from sivae_core.cli import run_command

raise SystemExit(run_command("images"))
