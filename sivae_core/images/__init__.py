"""Entry point ``python -m sivae_core.images``; the code lives in :mod:`sivae_core.experiments.images`."""
