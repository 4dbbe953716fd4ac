"""Data-parallel training (torch.distributed + DistributedDataParallel, launched by torchrun) is the same
computation as one process: two gloo processes on half batches each reproduce the one-process losses and
parameters of 20 steps with the same global batch and seed."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from sivae_core import seeded
from sivae_core.models import ToyVAE

HERE = Path(__file__).resolve().parent


def _run(tmp_path: Path, nproc: int) -> dict:
    out = tmp_path / f"world{nproc}.pt"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd = (launcher if nproc > 1 else [sys.executable]) + [str(HERE / "ddp_worker.py"), str(out), "20"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(cmd, check=True, timeout=300, env=env, capture_output=True)
    return torch.load(out, weights_only=True)


def test_two_gloo_processes_equal_one_process(tmp_path):
    one, two = _run(tmp_path, 1), _run(tmp_path, 2)
    assert one["world"] == 1 and two["world"] == 2
    assert len(one["history"]) == len(two["history"]) == 20
    for a, b in zip(one["history"], two["history"]):
        key = "loss_encoder" if "loss_encoder" in a else "loss_joint"  # the first 3 steps are the VAE warm-up
        assert abs(a[key] - b[key]) <= 1e-4 * abs(a[key]), (a["iteration"], a[key], b[key])
    for name, p in one["params"].items():
        torch.testing.assert_close(two["params"][name], p, atol=1e-5, rtol=0, msg=name)
    # the comparison is not vacuous: the parameters moved from their initial values
    init = seeded(lambda: ToyVAE(hidden=32), 0).state_dict()
    assert max((one["params"][k] - v).abs().max().item() for k, v in init.items()) > 1e-3
