"""The GPU suite: a prioritized plan of jobs that turns a few minutes of one GPU into the book's stored results.

    python -m sivae_core suite --out suite_out [--budget-s 540] [--only fig3 ...] [--list] [--smoke]

GPU time comes in short slots (at most 10 minutes a command, about 15 minutes a session), so the suite is
prepared to run without any preparation on the machine: every job names the data it needs (copied next to the
working tree by ``scripts/gpu_run.sh prepare``), gets a share of ``--budget-s``, stops itself before its deadline,
and writes what it finished (result files with provenance: command, commit, hardware, wall time, and the budget
as a fraction of the paper's) into ``OUT/<job>/``. A job that fails or runs out of time says so in the summary; the
next job still runs, and time a job does not use passes on. At the end everything is packed into
``OUT/suite_results.tar.gz`` plus ``OUT/summary.json``: what can come back from a GPU machine (a few files of at
most 16 MiB). ``--smoke`` runs every job at a tiny size on a CPU in a few minutes (a test does).
"""

from __future__ import annotations

import argparse
import json
import tarfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import results
from ..cli import device_of
from ..results import budget_block, provenance, write_results
from ..training.callbacks import Callback, time_budget
from .paper import AS_READINGS
from .suite_2d import AS_DATASETS, figure_job, run_table2, run_table2_tf32
from .suite_bench import run_bench
from .suite_cifar import run_cifar10
from .suite_style import RECORD, run_style
from .suite_translation import run_translation

__all__ = ["Job", "JobContext", "JOBS", "run_suite", "pack", "add_arguments", "run"]


@dataclass
class JobContext:
    """What a job gets: its folder, its deadline on ``clock``, the device, whether this is a smoke run, and whether
    the 2D jobs step their ensembles side by side on CUDA streams (``--streams``)."""

    name: str
    out: Path
    deadline: float
    device: torch.device
    smoke: bool
    clock: Callable[[], float] = time.monotonic
    prov: dict[str, str] = field(default_factory=dict)
    streams: bool = False

    def seconds_left(self) -> float:
        return self.deadline - self.clock()

    def budget_callback(self, reserve_s: float = 0.0) -> Callback:
        """A trainer callback that stops training ``reserve_s`` before the deadline (time to evaluate and write)."""
        return time_budget(max(self.seconds_left() - reserve_s, 0.0), clock=self.clock)

    def write(self, name: str, record: dict[str, Any]) -> Path:
        """``OUT/<job>/<name>.json`` with the suite's provenance."""
        return write_results(self.out / f"{name}.json", record, provenance_override=self.prov)


@dataclass(frozen=True)
class Job:
    """One unit of the plan: ``run(ctx)`` writes its files into ``ctx.out`` and returns a short summary."""

    name: str
    share: float
    needs: tuple[str, ...]
    run: Callable[[JobContext], dict[str, Any]]
    about: str
    #: The stored record it produces (``book/results/<record>.json``), if not ``suite_<name>``.
    result: str = ""

    @property
    def record(self) -> str:
        return self.result or f"suite_{self.name}"


#: The plan, in priority order.
JOBS: list[Job] = [
    Job("table2", 0.5, (), run_table2, "Table 2 alone at the paper's budget (4 datasets x VAE/IntroVAE/S-IntroVAE x 5 "
        "seeds, 30,000 iterations, three ensembles with recorded steps): per-seed metrics and samples"),
    Job("table2_tf32", 0.3, (), run_table2_tf32, "Table 2 again with TF32 matrix products, also evaluated at the "
        "stored float32 Table 2's iterations: whether TF32 moves the metrics (then the 2D jobs may use it)"),
    Job("fig3", 0.5, (), figure_job("fig3"), "Fig. 3: IntroVAE on 8 Gaussians over the margins m = 1..10 and "
        "S-IntroVAE with the same betas, 5 seeds each"),
    Job("fig21", 0.25, (), figure_job("fig21"), "Fig. 21: posterior collapse, VAE and S-IntroVAE with beta_kl 1, "
        "beta_rec 0.5, 5 seeds each"),
    Job("readings", 0.4, (), figure_job("readings"), "S-IntroVAE under the two other readings of its encoder "
        "gradient (detached, printed) on Table 2's datasets and seeds"),
    *(Job(f"as_table_{reading}_{dataset}", 0.5, (), figure_job("as_table", reading, dataset), f"the AS-IntroVAE "
          f"2D tables (Lu et al. 2022: VAE, IntroVAE, S-IntroVAE, AS-IntroVAE under C1-C3, 5 seeds) on {dataset}, "
          f"reading {reading!r} of C1-C3") for reading in AS_READINGS for dataset in AS_DATASETS),
    Job("cifar10", 0.35, ("cifar10/cifar10_exact_subset.npz",), run_cifar10, "CIFAR-10 S-IntroVAE (unconditional "
        "and class-conditional) for the job's budget: Frechet-distance curve, samples and reconstructions"),
    Job("style", 0.4, ("celeba/img_align_celeba_10k",), run_style, "the style-based Soft-IntroVAE grown 4 -> 64 on "
        "the 10k CelebA faces (prepared on the machine) for at most 8 minutes, batch 32 and beta_rec 3.2 at every "
        "resolution as the CPU run that grew faces (the first run, suite_style, had 128 and 0.8): FD of EMA samples, "
        "whether reconstructions follow the input at each resolution, grids; --only style --budget-s 540 gives it "
        "all of them", result=RECORD),
    Job("translation", 0.4, ("cars3d/cars64",), run_translation, "Cars3D content transfer at the paper's settings "
        "(pixel loss): Soft-IntroVAE for half the job's time, the beta-VAE and the autoencoder to the same "
        "iterations; scores on the 20 held-out cars and transfer matrices. Its data does not fit one call's carry "
        "with the others': prepare and run it alone", result="translation_gpu_sivae"),
    Job("bench", 0.15, ("cifar10/cifar10_exact_subset.npz",), run_bench, "the benchmark scripts: 2D ensembles "
        "against sequential runs, the Table 2 protocol's time, our CIFAR-10 step against the authors'"),
]


def run_suite(plan: list[Job], budget_s: float, out: Path, device: torch.device, smoke: bool = False,
              clock: Callable[[], float] = time.monotonic, prov: dict[str, str] | None = None,
              streams: bool = False) -> dict[str, Any]:
    """Run ``plan`` in order within ``budget_s`` seconds of ``clock``; each job gets its share of what is left."""
    start, prov = clock(), prov or provenance(device)
    summary: dict[str, Any] = {"provenance": prov, "budget_s": budget_s, "device": str(device), "smoke": smoke,
                               "budget": budget_block("the suite's run report; each job's result states its budget", None),
                               "jobs": {}}
    for i, job in enumerate(plan):
        left = budget_s - (clock() - start)
        shares = sum(j.share for j in plan[i:])
        allot = max(left * job.share / shares, 0.0)
        ctx = JobContext(job.name, out / job.name, clock() + allot, device, smoke, clock, prov, streams)
        ctx.out.mkdir(parents=True, exist_ok=True)
        t0 = clock()
        try:
            report = {"status": "done", **job.run(ctx)} if allot > 0 else {"status": "skipped: no time left"}
        except Exception as err:  # a failed job is reported; the next one still runs
            report = {"status": f"failed: {type(err).__name__}: {err}", "traceback": traceback.format_exc()[-2000:]}
        report.update(allotted_s=round(allot, 1), wall_s=round(clock() - t0, 1))
        report["within_budget"] = report["wall_s"] <= report["allotted_s"] + 1.0
        summary["jobs"][job.name] = report
        print(f"[suite] {job.name}: {report['status']} in {report['wall_s']} s of {report['allotted_s']} s", flush=True)
    summary["wall_s"] = round(clock() - start, 1)
    return summary


def pack(out: Path, summary: dict[str, Any]) -> list[Path]:
    """``OUT/suite_results.tar.gz`` (every job folder) and ``OUT/summary.json``: the files that come back."""
    archive = out / "suite_results.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:  # job folders only: _scratch holds checkpoints that stay behind
        for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("_")):
            tar.add(folder, arcname=folder.name)
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return [archive, summary_path]


OUT_REQUIRED = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget-s", type=float, default=540.0, help="total wall-clock budget in seconds (default 540)")
    p.add_argument("--only", nargs="+", help="run only these jobs (in the plan's order)")
    p.add_argument("--list", action="store_true", help="list the jobs, their shares, the data they need and what "
                   "is stored of each")
    p.add_argument("--smoke", action="store_true", help="every job at a tiny size (a CPU check of the whole plan)")
    p.add_argument("--streams", action="store_true", help="the 2D jobs step their ensembles side by side, each on its "
                   "own CUDA stream (the same runs; bench's table2_protocol_graphed_streams_estimated_minutes says "
                   "whether it pays)")


def run(args: argparse.Namespace) -> int:
    plan = list(JOBS)
    if args.list:  # with what is stored of each job, so that the next GPU call can go where results are missing
        for job in plan:
            try:
                stored = results.budget_line(results.load(job.record))
            except FileNotFoundError:
                stored = "nothing yet"
            print(f"{job.name:12s} share {job.share:.2f}  data: {', '.join(job.needs) or '-'}\n    {job.about}\n"
                  f"    stored ({job.record}): {stored}")
        return 0
    if args.only:
        unknown = set(args.only) - {j.name for j in plan}
        if unknown:
            raise SystemExit(f"unknown job(s) {sorted(unknown)}; the plan has {[j.name for j in plan]}")
        plan = [j for j in plan if j.name in args.only]
    out = Path(args.out or "suite_out")
    out.mkdir(parents=True, exist_ok=True)
    summary = run_suite(plan, args.budget_s, out, device_of(args), args.smoke, streams=args.streams)
    for path in pack(out, summary):
        print(f"[suite] wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0 if all(r["status"] == "done" for r in summary["jobs"].values()) else 1
