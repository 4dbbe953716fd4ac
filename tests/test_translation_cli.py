"""The translation command end to end on the real Cars3D files (tiny budgets): metrics.json holds the
required numbers and names its loss, a rerun resumes from the checkpoint (and a finished run is not
retrained), and the options whose weights are missing offline fail before training with what to download."""

import json

import pytest
import torch

from sivae_core import Trainer
from sivae_core.cli import run_command
from sivae_core.translation import FAST, TranslationSettings, settings

from .conftest import require_data

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--fast", "--batch-size", "8", "--n-pairs", "40", "--log-every", "1", "--no-progress", "--threads", "1"]


def cli(data, out, *extra):
    assert run_command("translation", ["--data", str(data), "--out", str(out), *TINY, *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_metrics_hold_the_required_numbers_and_the_loss(tmp_path):
    data = require_data("cars3d/cars64")
    m = cli(data, tmp_path / "ae", "--method", "ae", "--iterations", "2", "--results", str(tmp_path / "r.json"))
    for key in ("transfer_mse", "transfer_ssim", "baseline_class_image_mse", "baseline_content_image_mse",
                "kl_class_test", "kl_content_test"):
        assert isinstance(m[key], float), key
    assert m["loss"].startswith("pixel loss")
    assert m["budget"]["fraction_of_paper"] == pytest.approx(2 * 8 / 15648 / 400, rel=1e-5)
    assert 0 <= m["probe"]["posterior_mean"]["class_code_predicts_car"] <= 1 and "posterior_sample" not in m["probe"]
    stored = json.loads((tmp_path / "r.json").read_text())
    assert stored["provenance"]["command"].startswith("python -m sivae_core.translation")
    assert (tmp_path / "r_matrix.png").stat().st_size > 0 and (tmp_path / "ae" / "transfer_matrix.png").exists()


def test_rerun_resumes_and_a_finished_run_is_not_retrained(tmp_path, monkeypatch):
    data = require_data("cars3d/cars64")
    command = ("--iterations", "4", "--checkpoint-every", "2", "--vae-warmup", "1")  # 1 beta-VAE, 3 S-IntroVAE steps
    whole = cli(data, tmp_path / "whole", *command)
    step = Trainer.step

    def crash_at_the_third_step(self):
        if self.iteration == 2:
            raise KeyboardInterrupt
        return step(self)

    monkeypatch.setattr(Trainer, "step", crash_at_the_third_step)
    with pytest.raises(KeyboardInterrupt):
        cli(data, tmp_path / "split", *command)  # interrupted after the checkpoint at iteration 2
    monkeypatch.setattr(Trainer, "step", step)
    resumed = cli(data, tmp_path / "split", *command)  # the same command continues from the checkpoint
    assert [r["iteration"] for r in resumed["kl_curve"]] == [1, 2, 3, 4]
    state = {p: torch.load(tmp_path / p / "model.pt", weights_only=False)["model"] for p in ("whole", "split")}
    for key, value in state["whole"].items():
        torch.testing.assert_close(state["split"][key], value, msg=key, rtol=0, atol=0)
    assert resumed["transfer_mse"] == whole["transfer_mse"]
    again = cli(data, tmp_path / "split", *command)  # finished: evaluated again, not retrained
    assert again["budget"]["cpu_seconds"] < 1.0 and again["budget"]["iterations"] == 4
    state_again = torch.load(tmp_path / "split" / "model.pt", weights_only=False)["model"]
    assert all(torch.equal(state_again[k], v) for k, v in state["split"].items())


@pytest.mark.parametrize("flag, message", [("--perceptual", "vgg16-397923af.pth"),
                                           ("--lpips", "alexnet-owt|torchvision")])
def test_missing_weights_fail_before_training_and_say_what_to_download(tmp_path, monkeypatch, flag, message):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(RuntimeError, match=message):
        cli(tmp_path / "no-data-needed", tmp_path / "out", flag)
    assert not (tmp_path / "out").exists()


def test_fast_budget_names_real_fields_and_overrides_win():
    assert set(FAST) <= set(TranslationSettings.__dataclass_fields__)
    fast = settings("sivae", fast=True, lr=None)
    assert (fast.iterations, fast.lr) == (FAST["iterations"], FAST["lr"])
    assert settings("vae", fast=True, iterations=7).iterations == 7
    paper = settings("sivae")
    assert (paper.epochs, paper.batch_size, paper.lr) == (400, 64, 1e-4)
    assert (paper.beta_rec, paper.beta_kl, paper.beta_neg_content, paper.beta_neg_class) == (0.5, 1.0, 2048, 1024)
    with pytest.raises(ValueError, match="method"):
        settings("gan")
