"""The suite's 2D jobs: every 2D result of Part II at the paper's budget, as a handful of vectorized ensembles.

Table 2 (4 datasets x VAE/IntroVAE/S-IntroVAE x 5 seeds), Fig. 3 (IntroVAE on 8 Gaussians over ten margins, with
S-IntroVAE's line), Fig. 21 (posterior collapse: VAE and S-IntroVAE with beta_kl 1, beta_rec 0.5), the 2D tables
of AS-IntroVAE (Lu et al. 2022: four methods, settings C1-C3 under both readings, 8 Gaussians and Checkerboard)
and the three readings of Soft-IntroVAE's encoder gradient (on Table 2's datasets). All runs use the paper's 2D
budget (Daniel & Tamar 2021, Sec. 9.2.1: 30,000 iterations, batch 512, the warm-up and drops of
:data:`~sivae_core.experiments.schedules.PAPER_2D`).

The 345 runs of :func:`plan_2d` take about 40 minutes of an H200, and a GPU comes in calls of at most 10, so they
are split into jobs by what they show (:func:`figure_job`: Table 2, Fig. 3, Fig. 21, the readings, and the
AS-IntroVAE tables one reading and dataset at a time), each writing ``suite_<job>.json`` and its samples. Within a job, runs
that can share an ensemble do (same objective class and settings; hyperparameters and data may differ), each
ensemble drawing its data and noise once per step for all its runs (the trainer's ``ensemble_noise="batched"``:
per-run generators would cost one random-number kernel per run and draw), and each recording its step as a CUDA
graph (``cuda_graph``: one launch per step instead of thousands). They advance together in chunks, so when the
job's time runs out every run has the same number of iterations, which the result file records as a fraction of
the paper's 30,000. A run that diverges (IntroVAE on Checkerboard, as in Lu et al.'s Table 4) is dropped from its
ensemble and reported as NaN.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import results
from ..data.toy2d import METRIC_SCALE, ToySampler
from ..metrics.histogram import N_SAMPLES, evaluate
from ..models.base import seeded
from ..models.mlp import ToyVAE
from ..objectives import make_objective
from ..training.ensemble import Ensemble
from ..training.samplers import Sampler
from ..training.streams import fit_side_by_side
from ..training.trainer import Trainer
from .paper import AS_READINGS, PAPER_HPARAMS, as_settings
from .schedules import PAPER_2D, budget_2d, train_config

if TYPE_CHECKING:
    from .suite import JobContext

__all__ = ["AS_DATASETS", "Run", "plan_2d", "figure_job", "run_table2", "run_table2_tf32"]

TABLE2_DATASETS = ("8gaussians", "spiral", "checkerboard", "rings")
FIG3_MARGINS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
AS_DATASETS = ("8gaussians", "checkerboard")
PAPER_ITERATIONS = 30_000
SMOKE_ITERATIONS = 40
#: Seconds to keep for evaluating and writing: a fixed part and a part per run (on an H200, 60 runs took 4 s).
EVAL_RESERVE_S, EVAL_RESERVE_PER_RUN_S = 15.0, 0.2


@dataclass
class Run:
    """One 2D run: what it belongs to (``tags``), its data, objective hyperparameters and seed."""

    tags: dict[str, Any]
    dataset: str
    hparams: dict[str, float]
    seed: int
    gnelbo: bool = False


@dataclass
class Group:
    """Runs that train as one ensemble: one objective class with the same non-hyperparameter settings."""

    method: str
    options: dict[str, Any] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)


def _as_hparams(method: str, dataset: str, setting: dict[str, float]) -> dict[str, float]:
    hp = dict(setting)
    if method == "vae":
        hp.pop("beta_neg")
    if method == "introvae":
        hp["m"] = PAPER_HPARAMS[dataset]["introvae"]["m"]
    return hp


def plan_2d(seeds: tuple[int, ...], datasets: tuple[str, ...] = TABLE2_DATASETS,
            margins: tuple[float, ...] = FIG3_MARGINS, as_datasets: tuple[str, ...] = AS_DATASETS) -> list[Group]:
    """Every run of the job, grouped into ensembles."""
    groups = {m: Group(m) for m in ("vae", "introvae", "sivae", "asivae")}
    for reading in ("detached", "printed"):
        groups[f"sivae:{reading}"] = Group("sivae", {"encoder_grad": reading})
    for ds in datasets:
        for method in ("vae", "introvae", "sivae"):
            groups[method].runs += [Run({"figure": "table2", "method": method}, ds, PAPER_HPARAMS[ds][method], s, True)
                                    for s in seeds]
        for reading in ("detached", "printed"):
            groups[f"sivae:{reading}"].runs += [Run({"figure": "readings", "reading": reading}, ds,
                                                    PAPER_HPARAMS[ds]["sivae"], s) for s in seeds]
    intro = PAPER_HPARAMS["8gaussians"]["introvae"]
    groups["introvae"].runs += [Run({"figure": "fig3", "m": m}, "8gaussians", {**intro, "m": m}, s)
                                for m in margins for s in seeds]
    shared = {k: intro[k] for k in ("beta_rec", "beta_kl", "beta_neg")}
    groups["sivae"].runs += [Run({"figure": "fig3", "m": None}, "8gaussians", shared, s) for s in seeds]
    collapse = {"beta_rec": 0.5, "beta_kl": 1.0}
    groups["vae"].runs += [Run({"figure": "fig21", "method": "vae"}, "8gaussians", collapse, s) for s in seeds]
    groups["sivae"].runs += [Run({"figure": "fig21", "method": "sivae"}, "8gaussians", {**collapse, "beta_neg": 5.0}, s)
                             for s in seeds]
    for reading in AS_READINGS:
        for name, setting in as_settings(reading).items():
            for ds in as_datasets:
                for method in ("vae", "introvae", "sivae", "asivae"):
                    tags = {"figure": "as_table", "method": method, "reading": reading, "setting": name}
                    groups[method].runs += [Run(tags, ds, _as_hparams(method, ds, setting), s) for s in seeds]
    return [g for g in groups.values() if g.runs]


def _trainer(group: Group, iterations: int, batch: int, hidden: int, device: torch.device, tf32: bool) -> Trainer:
    cfg = train_config(iterations, PAPER_2D, batch_size=batch, progress=False, log_every=max(1, iterations // 20),
                       drop_diverged_runs=True, ensemble_noise="batched", tf32=tf32)
    introspective = iterations - cfg.vae_warmup
    objectives = [make_objective(group.method, introspective, **r.hparams, **group.options) for r in group.runs]
    # Record the step unless the objective keeps a schedule counter on the Python side, which a replayed step would
    # leave behind (beta-VAE-B; AS-IntroVAE keeps its counter on the device).
    cfg = replace(cfg, cuda_graph=objectives[0].recordable)
    models = [seeded(lambda: ToyVAE(hidden=hidden), r.seed) for r in group.runs]
    by_dataset = {r.dataset: ToySampler(r.dataset) for r in group.runs}  # one draw per dataset for all its runs
    samplers: list[Sampler] = [by_dataset[r.dataset] for r in group.runs]
    return Trainer(Ensemble(models).to(device), objectives, samplers, cfg, seeds=[r.seed for r in group.runs])


def _evaluate(group: Group, trainer: Trainer, grid_points: int, samples_too: bool = True
              ) -> tuple[list[dict], dict[str, np.ndarray]]:
    ens: Ensemble = trainer.model  # type: ignore[assignment]
    records, samples = [], {}
    final = trainer.history[-1] if trainer.history else {}
    for r, run in enumerate(group.runs):
        model = ens.run_model(r).eval()
        rec = {**run.tags, "dataset": run.dataset, "seed": run.seed, "hparams": run.hparams,
               "diverged_at": trainer.diverged.get(r)}
        if r in trainer.diverged:
            rec.update(kl=float("nan"), jsd=float("nan"), jsd_standard=float("nan"))
        else:
            rec.update(evaluate(model, run.dataset, seed=run.seed, grid_points=grid_points, gnelbo=run.gnelbo))
        kl_key = "joint/kl" if "joint/kl" in final else "enc/kl"
        if kl_key in final:
            rec["final_kl_real"] = float(final[kl_key][r])
        records.append(rec)
        if samples_too and run.seed == group.runs[0].seed and r not in trainer.diverged:
            key = "__".join(f"{k}={v}" for k, v in {**run.tags, "dataset": run.dataset}.items())
            with torch.no_grad():
                z = torch.randn(N_SAMPLES, model.z_dim, generator=torch.Generator().manual_seed(run.seed))
                samples[key] = model.to(z.device).decode(z).numpy().astype(np.float16)
    return records, samples


def _runs_of(figure: str, reading: str | None = None, dataset: str | None = None) -> Callable[[Run], bool]:
    """Which runs of the plan a job trains: those of ``figure`` (and of ``reading`` and ``dataset``, if given)."""
    def keep(run: Run) -> bool:
        return (run.tags["figure"] == figure and reading in (None, run.tags.get("reading"))
                and dataset in (None, run.dataset))
    return keep


def figure_job(figure: str, reading: str | None = None, dataset: str | None = None
               ) -> Callable[[JobContext], dict[str, Any]]:
    """The job that trains one figure's runs of the plan (for the AS-IntroVAE tables, one reading of C1-C3 on one
    dataset) and writes ``suite_<figure>[_<reading>_<dataset>]``: each small enough for one call of a GPU machine,
    where the whole plan is not."""
    name = "_".join(["suite", figure, *(part for part in (reading, dataset) if part)])

    def run(ctx: JobContext) -> dict[str, Any]:
        return _run_2d(ctx, name, _runs_of(figure, reading, dataset))

    run.__doc__ = f"Train and evaluate the runs of {name} (see :func:`figure_job`)."
    return run


#: Table 2 alone (``suite_table2``): 60 runs in three ensembles, the part of the 2D results the chapters need first.
run_table2 = figure_job("table2")


def run_table2_tf32(ctx: JobContext) -> dict[str, Any]:
    """Table 2 with TF32 matrix products (``suite_table2_tf32``): the check that decides whether the 2D jobs may use
    them. Besides its own end it evaluates every run at the iterations of the stored float32 Table 2 (the same runs,
    seeds, data and noise), so the two tables can be compared at an equal budget. A smoke run takes its snapshot off
    the chunk grid, so that it also shows that where the training chunks end does not change the runs."""
    total = SMOKE_ITERATIONS if ctx.smoke else PAPER_ITERATIONS
    try:
        stored = results.load("suite_table2")["budget"]["iterations"]
    except FileNotFoundError:  # no stored float32 table here (or no results at all): nothing to compare with
        stored = None
    compare_at = 15 if ctx.smoke else stored
    return _run_2d(ctx, "suite_table2_tf32", _runs_of("table2"), tf32=True,
                   snapshot_at=compare_at if compare_at and compare_at < total else None)


def _run_2d(ctx: JobContext, name: str, keep: Callable[[Run], bool], tf32: bool = False,
            snapshot_at: int | None = None) -> dict[str, Any]:
    """Train the plan's runs that ``keep`` accepts, in chunks until the paper's budget or the deadline, then
    evaluate and write ``name.json`` and ``name_samples.npz``; with ``snapshot_at``, also evaluate every run when
    training passes that iteration (``snapshot`` in the record)."""
    smoke = ctx.smoke
    seeds = (0,) if smoke else (0, 1, 2, 3, 4)
    groups = plan_2d(seeds, ("8gaussians", "checkerboard") if smoke else TABLE2_DATASETS,
                     (1.0, 8.0) if smoke else FIG3_MARGINS)
    for g in groups:
        g.runs = [r for r in g.runs if keep(r)]
    groups = [g for g in groups if g.runs]
    total, batch, hidden = (SMOKE_ITERATIONS, 64, 16) if smoke else (PAPER_ITERATIONS, 512, 256)
    grid_points = 64 if smoke else 1024
    trainers = [_trainer(g, total, batch, hidden, ctx.device, tf32) for g in groups]
    chunk, done, t_chunk, t_train = (10 if smoke else 500), 0, 0.0, 0.0
    n_runs = sum(len(g.runs) for g in groups)
    reserve = min(0.25 * ctx.seconds_left(), EVAL_RESERVE_S + EVAL_RESERVE_PER_RUN_S * n_runs)
    snapshot: dict[str, Any] | None = None
    while done < total:
        if ctx.seconds_left() - reserve < 1.2 * t_chunk:
            break
        t0 = time.perf_counter()
        # A chunk ends at the snapshot, so that every run is evaluated at exactly that iteration.
        next_stop = snapshot_at if snapshot_at and snapshot_at > done else total
        done = min(done + chunk, total, next_stop)
        if ctx.streams:  # the same runs, stepped in turn on one CUDA stream each
            fit_side_by_side(trainers, done)
        else:
            for tr in trainers:
                tr.fit(iterations=done)
        t_chunk = time.perf_counter() - t0
        t_train += t_chunk
        if done == snapshot_at:
            snapshot = {"iterations": done, "runs": [rec for group, tr in zip(groups, trainers)
                                                     for rec in _evaluate(group, tr, grid_points, False)[0]]}
    records, samples = [], {}
    for group, tr in zip(groups, trainers):
        rec, smp = _evaluate(group, tr, grid_points)
        records += rec
        samples.update(smp)
    np.savez_compressed(ctx.out / f"{name}_samples.npz", **samples)
    ctx.write(name, {
        "budget": {**budget_2d(done, len(seeds), batch, hidden), "iterations": done, "seeds": list(seeds),
                   "schedule": "PAPER_2D (warm-up 2/30, drops 1/3, 1/2)", "smoke": smoke},
        "metric_scale": METRIC_SCALE, "groups": [{"method": g.method, "options": g.options, "runs": len(g.runs)}
                                                 for g in groups],
        "recorded_steps": [tr.graphs is not None and tr.graphs.capture for tr in trainers],
        "side_by_side_streams": ctx.streams and ctx.device.type == "cuda",
        "matmul_precision": "tf32" if tf32 else "float32", "train_seconds": round(t_train, 1), "runs": records,
        **({"snapshot": snapshot} if snapshot else {})})
    return {"iterations": done, "train_seconds": round(t_train, 1), "paper_iterations": PAPER_ITERATIONS, "runs": len(records),
            "diverged": sum(r["diverged_at"] is not None for r in records), "ensembles": len(groups)}
