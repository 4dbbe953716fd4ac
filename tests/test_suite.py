"""The GPU suite: the whole plan runs at a tiny size on a CPU and packs what a GPU machine can send back, and every
job keeps to its share of the budget (fake clock)."""

import json
import math
import tarfile

import numpy as np
import pytest
import torch

from sivae_core import SoftIntroVAE, TrainConfig, Trainer, seeded
from sivae_core.cli import main
from sivae_core.data.toy2d import ToySampler
from sivae_core.experiments.paper import PAPER_TABLE2
from sivae_core.experiments.suite import JOBS, Job, run_suite
from sivae_core.experiments.suite_2d import plan_2d
from sivae_core.experiments.table2 import cells_from_records, margin_sweep
from sivae_core.models import ToyVAE
from sivae_core.results import budget_line

from .conftest import require_data


def test_smoke_runs_every_job_and_packs_its_results(tmp_path, one_thread):
    require_data("cifar10/cifar10_exact_subset.npz")
    require_data("cars3d/cars64")
    out = tmp_path / "out"
    assert main(["suite", "--smoke", "--device", "cpu", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["jobs"]) == {j.name for j in JOBS}
    assert all(r["status"] == "done" and r["within_budget"] for r in summary["jobs"].values()), summary
    assert summary["provenance"]["commit"]
    files = [p for p in out.iterdir() if p.is_file()]
    assert len(files) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in files)  # what a GPU machine sends back
    with tarfile.open(out / "suite_results.tar.gz") as tar:
        names = set(tar.getnames())
        assert {"fig3/suite_fig3.json", "fig3/suite_fig3_samples.npz", "cifar10/suite_cifar10.json"} <= names
        assert not any(n.startswith("_scratch") for n in names)  # checkpoints stay behind
        as_jobs = [f"as_table_{r}_{d}" for r in ("rec_kl_neg", "kl_rec_neg") for d in ("8gaussians", "checkerboard")]
        figure = {job: json.load(tar.extractfile(f"{job}/suite_{job}.json"))
                  for job in ("fig3", "fig21", "readings", *as_jobs)}
        table2 = json.load(tar.extractfile("table2/suite_table2.json"))
        tf32 = json.load(tar.extractfile("table2_tf32/suite_table2_tf32.json"))
        assert "table2/suite_table2_samples.npz" in names
        translation = {m: json.load(tar.extractfile(f"translation/translation_gpu_{m}.json")) for m in ("sivae", "vae", "ae")}
        assert {f"translation/translation_gpu_{m}_matrix.png" for m in translation} <= names
        style = json.load(tar.extractfile("style/suite_style2.json"))
        assert "style/style64v2_samples_final.png" in names
    # the style job: the CPU run's beta_rec, one batch, and the input check per resolution
    assert style["settings"]["beta_rec"] == 3.2 and style["settings"]["batches"] == [8]
    assert not style["settings"]["rec_per_image"] and [ph["beta_rec"] for ph in style["schedule"]] == [None, None]
    assert set(style["evaluation"]["fd_by_resolution"]) == {"4"} and "input_dependence" in style["evaluation"]
    # the translation baselines train as many iterations as Soft-IntroVAE reached, on the paper's model and losses
    iterations = {m: r["budget"]["iterations"] for m, r in translation.items()}
    assert iterations == {"sivae": 4, "vae": 4, "ae": 4}
    assert translation["sivae"]["settings"]["beta_neg_content"] == 2048 and translation["sivae"]["loss"].startswith("pixel")
    assert all(0 < r["transfer_mse"] < 1 and r["budget"]["fraction_of_paper"] > 0 for r in translation.values())
    assert budget_line(translation["vae"]).startswith("4 iterations x batch 8")
    # the Table 2 job: only Table 2's runs, its three ensembles with the step recorded (on a CPU: run unrecorded)
    assert {r["figure"] for r in table2["runs"]} == {"table2"} and len(table2["runs"]) == 2 * 3
    assert [g["method"] for g in table2["groups"]] == ["vae", "introvae", "sivae"]
    assert table2["recorded_steps"] == [False] * 3 and table2["budget"]["iterations"] == 40
    # TF32 concerns CUDA only: on a CPU the TF32 job trains the same runs, although its chunks end elsewhere (at its
    # snapshot, 15), and the snapshot's evaluation leaves them untouched
    assert (table2["matmul_precision"], tf32["matmul_precision"]) == ("float32", "tf32")
    assert tf32["runs"] == table2["runs"] and tf32["budget"] == table2["budget"]
    assert tf32["snapshot"]["iterations"] == 15 and len(tf32["snapshot"]["runs"]) == 6
    assert all(math.isfinite(r["kl"]) and math.isfinite(r["gnelbo"]) for r in tf32["snapshot"]["runs"])
    # each 2D job trains its own runs of the plan, and together they train all of them
    assert [{r["figure"] for r in rec["runs"]} for rec in figure.values()] == [{"fig3"}, {"fig21"}, {"readings"},
                                                                               *[{"as_table"}] * 4]
    assert [{(r["reading"], r["dataset"]) for r in figure[job]["runs"]} for job in as_jobs] == [
        {("rec_kl_neg", "8gaussians")}, {("rec_kl_neg", "checkerboard")}, {("kl_rec_neg", "8gaussians")},
        {("kl_rec_neg", "checkerboard")}]
    assert [g["method"] for g in figure[as_jobs[0]]["groups"]] == ["vae", "introvae", "sivae", "asivae"]
    smoke_plan = plan_2d((0,), ("8gaussians", "checkerboard"), (1.0, 8.0))
    assert sum(len(rec["runs"]) for rec in (table2, *figure.values())) == sum(len(g.runs) for g in smoke_plan)
    toy = figure["fig3"]
    # 40 iterations of batch 64, 1 seed, against 30,000 of batch 512 and 5 seeds
    assert toy["budget"]["fraction_of_paper"] == pytest.approx(40 * 64 / (30_000 * 512) / 5, rel=0.01)
    assert toy["provenance"]["command"] and toy["provenance"]["hardware"]
    assert budget_line(toy).startswith("40 of 30,000 iterations, 1 of 5 seeds, batch 64 (paper 512), width 16")
    # what the 2D chapter draws from it: Table 2 cells and Fig. 3's margin curve
    cells = cells_from_records(table2["runs"])
    assert set(cells) == {"8gaussians", "checkerboard"} and set(cells["8gaussians"]) == {"vae", "introvae", "sivae"}
    assert cells["8gaussians"]["sivae"]["paper"] == PAPER_TABLE2["8gaussians"]["sivae"]
    margins, intro, soft = margin_sweep(toy["runs"])
    assert margins == [1.0, 8.0] and intro.shape == (2, 2) and soft.shape == (2,) and np.isfinite(soft).all()


def test_jobs_keep_to_their_budget_and_a_failure_does_not_stop_the_plan(tmp_path):
    """A fake clock: a job that trains stops before its deadline (the trainer's time budget), a job that fails is
    reported, the next job still runs, and time a job leaves unused passes on to the next."""
    t = [0.0]
    clock = lambda: t[0]  # noqa: E731

    def trains(ctx):
        cfg = TrainConfig(iterations=10_000, batch_size=16, vae_warmup=0, lr_milestones=(), log_every=5,
                          progress=False)
        trainer = Trainer(seeded(lambda: ToyVAE(hidden=8), 0), SoftIntroVAE(), ToySampler("moons"), cfg,
                          callbacks=[ctx.budget_callback()])
        step = trainer.step

        def timed():
            t[0] += 1.0  # one second a step
            return step()

        trainer.step = timed
        trainer.fit()
        return {"iterations": trainer.iteration}

    def fails(ctx):
        raise RuntimeError("out of memory")

    def quick(ctx):
        t[0] += 2.0
        return {}

    plan = [Job("trains", 1.0, (), trains, ""), Job("fails", 1.0, (), fails, ""), Job("quick", 1.0, (), quick, "")]
    summary = run_suite(plan, 90.0, tmp_path, torch.device("cpu"), clock=clock, prov={"commit": "x"})
    jobs = summary["jobs"]
    assert jobs["trains"]["allotted_s"] == 30.0 and jobs["trains"]["within_budget"]
    assert 25 <= jobs["trains"]["iterations"] <= 30 and jobs["trains"]["wall_s"] <= 30.0
    assert jobs["fails"]["status"].startswith("failed: RuntimeError") and jobs["quick"]["status"] == "done"
    assert jobs["quick"]["allotted_s"] == pytest.approx(90.0 - jobs["trains"]["wall_s"])  # the failed job's time passes on
    assert summary["wall_s"] <= 90.0


def test_a_benchmark_stopped_at_its_deadline_keeps_the_figures_it_printed(tmp_path, monkeypatch):
    """subprocess hands back a timed-out child's output as bytes even with text=True: the figures printed
    before the deadline are still parsed and kept."""
    import subprocess

    from sivae_core.experiments import suite_bench

    def timeout(cmd, **kw):
        raise subprocess.TimeoutExpired(cmd, kw["timeout"], output=b"steps_per_s: 12.5\nratio_vs_loop: 3.0\n")

    monkeypatch.setattr(suite_bench.subprocess, "run", timeout)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks").mkdir()
    written = {}
    ctx = type("Ctx", (), {"smoke": True, "device": torch.device("cpu"), "seconds_left": lambda self: 60.0,
                           "write": lambda self, name, rec: written.update({name: rec})})()
    suite_bench.run_bench(ctx)
    figures = written["suite_bench"]["figures"]
    assert figures["bench_2d"] == {"stopped_at_deadline": True, "steps_per_s": 12.5, "ratio_vs_loop": 3.0}


def test_list_says_what_is_stored_of_each_job(tmp_path, monkeypatch, capsys):
    """``--list`` shows where results are still missing (what the next GPU call should run): each job's stored record
    with its budget, or that nothing is stored."""
    monkeypatch.setenv("SIVAE_RESULTS", str(tmp_path))
    record = {"budget": {"description": "9,000 of 30,000 iterations", "fraction_of_paper": 0.3},
              "provenance": {"hardware": "NVIDIA H100", "commit": "0123456789"}}
    (tmp_path / "suite_fig3.json").write_text(json.dumps(record))
    assert main(["suite", "--list"]) == 0
    out = capsys.readouterr().out
    assert ("stored (suite_fig3): 9,000 of 30,000 iterations (30% of the paper's budget); NVIDIA H100; commit 0123456"
            in out)
    assert "stored (suite_fig21): nothing yet" in out and "stored (translation_gpu_sivae): nothing yet" in out
    assert out.count("stored (") == len(JOBS)


def test_streams_flag_trains_the_same_table2_runs(tmp_path, one_thread):
    """``--streams`` changes only how the 2D jobs issue their ensembles' steps (in turn, one CUDA stream each): on a
    CPU the smoke Table 2 trained that way has exactly the records of the one trained ensemble after ensemble."""
    table2 = [j for j in JOBS if j.name == "table2"]
    records = {}
    for streams in (False, True):
        out = tmp_path / str(streams)
        summary = run_suite(table2, 60.0, out, torch.device("cpu"), smoke=True, prov={"commit": "x"}, streams=streams)
        assert summary["jobs"]["table2"]["status"] == "done"
        records[streams] = json.loads((out / "table2" / "suite_table2.json").read_text())
    assert records[True]["runs"] == records[False]["runs"] and len(records[True]["runs"]) == 6
    assert records[True]["side_by_side_streams"] is records[False]["side_by_side_streams"] is False  # no CUDA here
