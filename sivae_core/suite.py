"""Module form of ``python -m sivae_core suite`` (same flags): the prepared GPU suite."""

from sivae_core.cli import run_command

if __name__ == "__main__":
    raise SystemExit(run_command("suite"))
