"""Shared test settings: small deterministic CPU runs."""

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
