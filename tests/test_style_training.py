"""Progressive training of the style model on the one trainer, through its command (``python -m sivae_core.style``):
two gloo processes under torchrun equal one process, a run resumed before and exactly at a change of resolution is
bit-identical to an uninterrupted one, and ``log.jsonl`` holds what the issue asks for. A tiny data set (48 random
8x8 images, 16 held out) and the CPU config cut at 8x8 keep each run to seconds: 20 steps, 2 of them the plain-VAE
warm-up, 4 at 4x4, then 8x8 with a 2-step fade-in (batch 8 of 32 training images)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sivae_core.cli import main
from sivae_core.data.faces import prepare_faces

pytestmark = pytest.mark.usefixtures("one_thread")

RUN = ["--preset", "cpu32", "--resolution", "8", "--batch", "8", "--epochs-per-resolution", "1", "--final-epochs",
       "4", "--vae-epochs", "0.5", "--holdout", "16", "--log-every", "1", "--device", "cpu", "--threads", "1",
       "--no-progress", "--seed", "3"]
STEPS = 20


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for i in range(48):
        pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)  # not square: the crop is exercised too
        (root / "src").mkdir(exist_ok=True)
        Image.fromarray(pixels).save(root / "src" / f"{i:03d}.png")
    prepare_faces(root / "src", root / "prepared", 8, progress=False)
    return root / "prepared"


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", weights_only=True)


def launch(faces: Path, out: Path, nproc: int, *extra: str) -> None:
    """The command as a user runs it: ``python -m sivae_core.style`` or under ``torchrun``."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd = (torchrun if nproc > 1 else [sys.executable]) + ["-m", "sivae_core.style", "--data", str(faces), "--out",
                                                           str(out), "--steps", str(STEPS), *RUN, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path), "SIVAE_PROGRESS": "0"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_gloo_processes_equal_one_process(faces, tmp_path):
    """Same global batch and seed, style mixing and per-pixel noise on: the same losses over 20 steps (relative
    difference <= 1e-4) and the same parameters (<= 1e-5) and EMA after them.

    In float64: in float32 two runs part at the rounding level within a few steps whatever splits the work (one
    process with 2 threads against 1 does it as much as two processes: 1e-4 relative by step 8), because Adam with
    betas (0, 0.99) takes a full step in the sign of every gradient element, rounding noise included. In float64 the
    same computation keeps 1e-9 relative, so a wrong row, noise draw or reduction shows far above it."""
    launch(faces, tmp_path / "one", 1, "--dtype", "float64")
    launch(faces, tmp_path / "two", 2, "--dtype", "float64")
    one, two = read_log(tmp_path / "one"), read_log(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, STEPS + 1))
    worst = 0.0
    for a, b in zip(one, two):
        assert (a["resolution"], a["alpha"], a["objective"]) == (b["resolution"], b["alpha"], b["objective"])
        for key in ("enc_loss", "dec_loss"):
            rel = abs(a[key] - b[key]) / abs(a[key])
            worst = max(worst, rel)
            assert rel <= 1e-4, (a["step"], key, a[key], b[key])
    print(f"largest relative loss difference over {STEPS} steps: {worst:.2e}")
    c1, c2 = checkpoint(tmp_path / "one"), checkpoint(tmp_path / "two")
    diffs = {k: (c2["model"][k] - v).abs().max().item() for k, v in c1["model"].items()}
    diffs.update({f"ema.{k}": (c2["ema"][k] - v).abs().max().item() for k, v in c1["ema"].items()
                  if v.is_floating_point()})
    print(f"largest parameter difference: {max(diffs.values()):.2e} ({max(diffs, key=diffs.get)})")
    assert max(diffs.values()) <= 1e-5, diffs
    # not vacuous: the noise weights left zero (noise on) and the 8x8 blocks trained
    assert c1["model"]["decoder.blocks.1.act2.noise.weight"].abs().max() > 1e-3
    assert {r["objective"] for r in one} == {"vae", "sivae"}


def run_cli(faces: Path, out: Path, steps: int) -> None:
    assert main(["style", "--data", str(faces), "--out", str(out), "--steps", str(steps), *RUN]) == 0


def test_resume_across_a_change_of_resolution_is_bit_identical(faces, tmp_path):
    """Interrupted mid-phase (3 steps), then exactly at the 4x4 -> 8x8 boundary (4 steps: the next step is the
    first at 8x8, where Adam is reset), then finished: the same log, parameters, EMA, Adam states, generators and
    sampler, bit for bit, as one uninterrupted run."""
    run_cli(faces, tmp_path / "straight", STEPS)
    for steps in (3, 4, STEPS):
        run_cli(faces, tmp_path / "resumed", steps)
    a, b = checkpoint(tmp_path / "straight"), checkpoint(tmp_path / "resumed")
    assert a["iteration"] == b["iteration"] == STEPS and a["images_seen"] == b["images_seen"]
    for part in ("model", "ema"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), (part, k)
    for opt in ("opt_e", "opt_d"):
        for pid, state in a[opt]["state"].items():
            for k, v in state.items():
                assert torch.equal(v, b[opt]["state"][pid][k]), (opt, pid, k)
    assert all(torch.equal(g, h) for g, h in zip(a["generators"], b["generators"]))
    sa, sb = a["samplers"][0], b["samplers"][0]
    assert torch.equal(sa["perm"], sb["perm"]) and (sa["pos"], sa["epoch"]) == (sb["pos"], sb["epoch"])
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert drop_time(read_log(tmp_path / "straight")) == drop_time(read_log(tmp_path / "resumed"))
    assert a["history"] == b["history"]


def test_log_fields_phases_and_pictures(faces, tmp_path):
    """``log.jsonl`` has one line per step with the issue's fields; the schedule's stages, the VAE warm-up, the fade-in
    and the Adam reset at the first 8x8 step show in it; grids are written after each resolution."""
    out = tmp_path / "run"
    run_cli(faces, out, STEPS)
    log = read_log(out)
    assert len(log) == STEPS
    for row in log:
        assert {"step", "resolution", "alpha", "enc_loss", "dec_loss"} <= set(row)
        assert np.isfinite(row["enc_loss"]) and np.isfinite(row["dec_loss"])
    assert [r["objective"] for r in log[:3]] == ["vae", "vae", "sivae"]
    assert [r["resolution"] for r in log] == [4] * 4 + [8] * 16
    alphas = [r["alpha"] for r in log[4:8]]
    assert alphas[0] == 0.0 and 0.0 < alphas[1] < 1.0 and alphas[2:] == [1.0, 1.0]  # a 2-step fade-in
    assert [r["images_seen"] for r in log[:2]] == [8, 16]
    assert {r["beta_neg"] for r in log} == {2048.0}  # the authors' list at 4x4 and 8x8
    # Adam restarted at the first 8x8 step: the parameters trained at 8x8 have been stepped 16 times since, the
    # 4x4 FromRGB only in the 2 fade-in steps that still read it
    for opt in ("opt_e", "opt_d"):
        assert {int(s["step"]) for s in checkpoint(out)[opt]["state"].values()} == {2, 16}, opt
    for name in ("samples_4x4.png", "reconstructions_4x4.png", "samples_final.png", "faces.png", "train.json"):
        assert (out / name).stat().st_size > 0, name


def test_rec_per_image_weighs_each_resolution_by_its_pixels(faces, tmp_path):
    """``--rec-per-image``: beta_rec is the preset's rule at the final 8x8 (0.05 (256/8)^2 = 51.2) and four times
    that at 4x4, logged per step, and the objective uses it: the warm-up's joint loss is beta_rec rec + beta_kl KL
    with 204.8. Without the flag the run keeps 51.2 throughout."""
    from sivae_core.experiments.style import schedule_of, settings

    assert [p.beta_rec for p in schedule_of(settings("gpu64", rec_per_image=True), 9_000).phases] == [
        204.8, 51.2, 12.8, 3.2, 0.8]
    assert {p.beta_rec for p in schedule_of(settings("gpu64"), 9_000).phases} == {None}
    assert main(["style", "--data", str(faces), "--out", str(tmp_path / "per"), "--steps", "6", *RUN,
                 "--rec-per-image"]) == 0
    run_cli(faces, tmp_path / "one", 6)
    per, one = read_log(tmp_path / "per"), read_log(tmp_path / "one")
    assert [(r["resolution"], r["beta_rec"]) for r in per] == [(4, 204.8)] * 4 + [(8, 51.2)] * 2
    assert {r["beta_rec"] for r in one} == {51.2}
    for r in per[:2]:  # the plain-VAE warm-up: its loss is the weighted sum of the logged terms
        assert r["enc_loss"] == pytest.approx(204.8 * r["joint/rec"] + 0.2 * r["joint/kl"], rel=1e-5)


def test_step_grid_of_a_schedule_whose_batch_changes():
    """By hand, the fast CPU schedule on 9,000 faces: 4,500 images a phase (9,000 at 32x32), batches 32, 32, 16, 16.
    A phase's first step is the first that starts at or after its start; the last step of a phase may run past it."""
    from sivae_core.training.progressive import fast_schedule, uniform_schedule

    s = fast_schedule("cpu32", 9_000)
    assert s.starts == (0, 4_500, 9_000, 13_500)
    assert s.step_starts == (0, 141 * 32, 141 * 32 + 141 * 32, 9_024 + 280 * 16)  # 0, 4512, 9024, 13504
    assert s.iterations == 141 + 141 + 280 + 563 == 1_125  # 13504 + 562 * 16 = 22496 < 22500
    assert s.steps_before(4_500) == 141 and s.steps_before(4_513) == 142 and s.vae_steps == 0
    warm = uniform_schedule(100, 8, 1.0, (8, 8), 1e-3, 1.0, vae_epochs=0.5)
    assert warm.vae_steps == 7  # steps starting at 0, 8, ..., 48 < 50


def test_input_dependence_by_hand():
    """Perfect reconstructions: error 0, spread 1; one picture for every face: spread 0, and answering with the
    training mean itself gives an error ratio of exactly 1."""
    from sivae_core.experiments.style_eval import input_dependence

    x = torch.tensor([[0.0, 2.0], [2.0, 0.0]]).reshape(2, 1, 1, 2)
    mean_face = torch.tensor([1.0, 1.0]).reshape(1, 1, 1, 2)
    assert input_dependence(x, x.clone(), mean_face) == {"rec_mse_over_mean_face_mse": 0.0,
                                                          "rec_spread_over_input_spread": 1.0}
    assert input_dependence(x, mean_face.expand_as(x), mean_face) == {"rec_mse_over_mean_face_mse": 1.0,
                                                                       "rec_spread_over_input_spread": 0.0}
    # half-way to the mean: error (1/2)^2 of the mean face's, spread (1/2)^2 of the input's
    half = input_dependence(x, (x + mean_face) / 2, mean_face)
    assert half == pytest.approx({"rec_mse_over_mean_face_mse": 0.25, "rec_spread_over_input_spread": 0.25})


def test_factor_study_trains_every_variant_and_seed_and_records_them(faces, tmp_path):
    """A tiny study (two variants, two seeds, 8x8): every run is recorded with its measurements, the record names
    its variants and is complete, and a variant with twice the batch takes half the steps."""
    from sivae_core.experiments.style_factors import study

    base = dict(resolution=8, holdout=16, epochs_per_resolution=1.0, final_epochs=1.0, batches=(4,), vae_epochs=0.25,
                ema_half_life=50.0)
    variants = {"small": ("batch 4", {}), "large": ("batch 8", {"batches": (8,)})}
    out = tmp_path / "factors.json"
    rec = study(str(faces), variants, [0, 1], out, base=base, fd_samples=16, workers=1, progress=False)
    assert json.loads(out.read_text())["runs"] == json.loads(json.dumps(rec["runs"])) and rec["complete"]
    assert [(r["variant"], r["seed"]) for r in rec["runs"]] == [("small", 0), ("small", 1), ("large", 0), ("large", 1)]
    steps = {r["variant"]: r["steps"] for r in rec["runs"]}
    assert steps["small"] == 2 * steps["large"]
    for r in rec["runs"]:
        assert r["rec_mse_over_mean_face_mse"] > 0 and 0 <= r["rec_spread_over_input_spread"]
        assert r["fd"]["start"] > 0 and r["fd"]["n_held_out"] == 16
    assert rec["budget"]["fraction_of_paper"] == pytest.approx(max(r["images_seen"] for r in rec["runs"]) / 6_900_000)


def test_mean_face_read_in_chunks_is_the_mean(faces):
    from sivae_core.experiments.style_eval import faces_at, mean_face

    direct = faces_at(faces, 8, slice(0, 30)).mean(0, keepdim=True)
    torch.testing.assert_close(mean_face(faces, 8, 30, chunk=7), direct)


def test_fd_run_reports_whether_reconstructions_follow_the_input_at_every_resolution(faces, tmp_path):
    """With --fd, the end of 4x4 and the end of the run record the factor study's two ratios beside the distance, so a
    GPU run says whether its decoder still listens to the encoder before it grows further."""
    out = tmp_path / "run"
    assert main(["style", "--data", str(faces), "--out", str(out), "--steps", str(STEPS), "--fd", "8", *RUN]) == 0
    evaluation = json.loads((out / "train.json").read_text())["evaluation"]
    keys = {"rec_mse_over_mean_face_mse", "rec_spread_over_input_spread"}
    assert set(evaluation["fd_by_resolution"]) == {"4"} and set(evaluation["fd_by_resolution"]["4"]["input_dependence"]) == keys
    assert set(evaluation["input_dependence"]) == keys and evaluation["fd"]["resolution"] == 8
    assert all(0 < v < 10 for v in evaluation["input_dependence"].values())
