"""Entry points of the 2D experiments: ``python -m sivae_core.toy2d`` (one run) and
``python -m sivae_core.toy2d.table2``; the code lives in :mod:`sivae_core.experiments.toy2d`."""
