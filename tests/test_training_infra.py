"""The trainer's infrastructure: checkpoints that cannot run code, the time budget, the precision choice, the
one command line."""

import subprocess
import sys

import pytest
import torch

import sivae_core.training.precision as precision
from sivae_core import SoftIntroVAE, TrainConfig, Trainer, seeded
from sivae_core.cli import COMMANDS, build_parser
from sivae_core.data.toy2d import ToySampler
from sivae_core.models import ToyVAE
from sivae_core.training import UnsafeCheckpointError, load_checkpoint_file, time_budget


class _Payload:
    """Unpickling this calls ``print``: what a checkpoint from a stranger could do."""

    def __reduce__(self):
        return (print, ("code ran",))


def _trainer(path=None, iterations=6, callbacks=()):
    cfg = TrainConfig(iterations=iterations, batch_size=32, vae_warmup=2, lr_milestones=(), log_every=1, progress=False)
    return Trainer(seeded(lambda: ToyVAE(hidden=8), 0), SoftIntroVAE(), ToySampler("moons"), cfg,
                   checkpoint_path=path, callbacks=callbacks)


def test_a_checkpoint_carrying_a_pickled_callable_is_refused(tmp_path, capsys):
    good = tmp_path / "good.pt"
    _trainer(good).fit()
    state = load_checkpoint_file(good)  # the trainer's own checkpoints hold tensors and plain values only
    assert state["iteration"] == 6
    state["extra"] = _Payload()
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        load_checkpoint_file(bad)
    with pytest.raises(UnsafeCheckpointError):
        _trainer(bad).fit()  # resuming from it is refused too
    assert "code ran" not in capsys.readouterr().out


def test_time_budget_stops_at_the_last_check_within_budget():
    """Checks every log step; a fake clock advancing 1 s a step and a 4.5 s budget: stop after 4 steps (a fifth
    stretch of 1 s would overrun), never after 5 (what stopping at the first check past the budget gives)."""
    t = [0.0]
    trainer = _trainer(iterations=20, callbacks=[time_budget(4.5, clock=lambda: t[0])])
    step = trainer.step

    def timed():
        t[0] += 1.0
        return step()

    trainer.step = timed
    trainer.fit()
    assert trainer.stopped_early and trainer.iteration == 4 and t[0] <= 4.5


def test_fast_precision_follows_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    assert precision.autocast_dtype("auto", cpu) is None and precision.autocast_dtype("fp32", cpu) is None
    assert precision.autocast_dtype("auto", torch.device("cuda")) == "bf16"
    precision.cpu_bf16_is_fast.cache_clear()
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2", "fma"})  # no native bf16: no probe, fp32
    monkeypatch.setattr(precision, "_probe_seconds", lambda dtype: pytest.fail("probed a CPU without bf16"))
    assert precision.autocast_dtype("fast", cpu) is None
    precision.cpu_bf16_is_fast.cache_clear()
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(precision, "_probe_seconds", lambda dtype: 1.0 if dtype is None else 0.5)  # bf16 2x faster
    assert precision.autocast_dtype("fast", cpu) == "bf16"
    precision.cpu_bf16_is_fast.cache_clear()
    monkeypatch.setattr(precision, "_probe_seconds", lambda dtype: 1.0 if dtype is None else 2.0)  # flags, but slower
    assert precision.autocast_dtype("fast", cpu) is None
    precision.cpu_bf16_is_fast.cache_clear()
    with pytest.raises(ValueError, match="amp must be one of"):
        precision.autocast_dtype("half", cpu)


def test_one_cli_declares_the_shared_flags_once():
    parser = build_parser()
    for name in COMMANDS:
        args = parser.parse_args([name, "--out", "x", "--device", "cpu", "--threads", "1", "--seed", "3"]
                                 + {"toy2d": ["--dataset", "moons", "--method", "vae"],
                                    "images": ["--dataset", "mnist"],
                                    "ood": ["--model", "m", "--in-dist", "mnist", "--ood", "fmnist"],
                                    "style-prepare": ["--src", "faces", "--resolution", "32"],
                                    "style": ["--data", "faces32"],
                                    "style-factors": ["--src", "faces"]}.get(name, []))
        assert (args.device, args.threads, args.seed, args.out) == ("cpu", 1, 3, "x"), name
    out = subprocess.run([sys.executable, "-m", "sivae_core", "--help"], capture_output=True, text=True, check=True)
    assert all(name in out.stdout for name in COMMANDS)
