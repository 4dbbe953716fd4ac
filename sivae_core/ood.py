"""Module form of ``python -m sivae_core ood`` (same flags), kept for the commands the book documents."""

from sivae_core.cli import run_command

if __name__ == "__main__":
    raise SystemExit(run_command("ood"))
