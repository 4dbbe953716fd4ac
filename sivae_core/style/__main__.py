"""``python -m sivae_core.style ...``: progressive training of the style-based Soft-IntroVAE (the ``style`` command),
as one process or under ``torchrun --standalone --nproc-per-node N -m sivae_core.style ...``.

See :mod:`sivae_core.experiments.style`.
"""

from sivae_core.cli import run_command

if __name__ == "__main__":
    raise SystemExit(run_command("style"))
