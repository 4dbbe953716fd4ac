"""Shared test settings: small deterministic CPU runs, and where the real data lives."""

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")

#: The project's offline copies of the real data sets (``../shared/data`` next to the repository), or
#: ``$SIVAE_DATA`` when set.
SHARED_DATA = Path(os.environ.get("SIVAE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def require_data(sub: str) -> Path:
    """``SHARED_DATA / sub``, or stop the test: in CI (``CI`` set) a missing data folder *fails*, so a CI
    machine without the data can never pass with the data pipeline untested; locally it skips with the reason."""
    path = SHARED_DATA / sub
    if not path.exists():
        message = f"{path} is missing (set SIVAE_DATA or place the data next to the repository as ../shared/data)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Tiny models: extra threads only add overhead (and thrash on a loaded 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
