"""The 2D experiments of Daniel & Tamar (2021, Sec. 6.1 and 9.2.1): the paper's settings, and the functions
that train and evaluate any number of 2D runs (as one vectorized ensemble).

Also the ``toy2d`` command (one run, written to a folder)::

    python -m sivae_core toy2d --dataset 8gaussians --method sivae --iters 30000 --seed 0 --out runs/8g

Defaults are the paper's (Table 5 hyperparameters for the dataset and method, the 2D budget of Sec. 9.2.1).
Writes ``metrics.json`` (kl, jsd, jsd_standard, gnelbo), ``samples.npy`` (5,000 generated points) and
``samples_density.png``; ``checkpoint.pt`` makes an interrupted run resumable. ``s = 1/2`` for 2D follows from
``s = 1 / input_dim``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..cli import device_of
from ..data.toy2d import DATASETS, ToySampler
from ..metrics.histogram import N_SAMPLES, evaluate
from ..models.base import IntroVAEModel, seeded
from ..models.mlp import ToyVAE
from ..objectives import OBJECTIVES, Objective, make_objective
from ..results import provenance, write_results
from ..training.callbacks import Callback
from ..training.ensemble import Ensemble
from ..training.trainer import TrainConfig, Trainer
from ..viz.toy2d import plot_model
from .paper import PAPER_HPARAMS, PAPER_TABLE2
from .schedules import PAPER_2D, SHORT, train_config

__all__ = ["PAPER_HPARAMS", "PAPER_TABLE2", "budget", "paper_objective", "train_runs", "evaluate_runs",
           "add_arguments", "run"]

def budget(fast: bool, fast_iterations: int, **overrides: object) -> TrainConfig:
    """The chapters' training budget: the paper's in full mode, ``fast_iterations`` with the :data:`SHORT`
    schedule in fast mode (see :mod:`~sivae_core.experiments.schedules`)."""
    if not fast:
        return train_config(30_000, PAPER_2D, **overrides)
    return train_config(fast_iterations, SHORT, **overrides)


def paper_objective(method: str, dataset: str, iterations: int | None = None, **overrides: float) -> Objective:
    """The objective of ``method`` with Table 5's hyperparameters for ``dataset``, updated by ``overrides``, for a
    run of ``iterations`` (see :func:`~sivae_core.objectives.make_objective`)."""
    if dataset not in PAPER_HPARAMS:
        raise ValueError(f"unknown 2D dataset {dataset!r}; choose one of {sorted(PAPER_HPARAMS)}")
    # Methods without a Table 5 entry (later chapters) start from their own defaults.
    return make_objective(method, iterations, **{**PAPER_HPARAMS[dataset].get(method, {}), **overrides})


def train_runs(runs: Sequence[tuple[str, Objective, int]], config: TrainConfig, device: str | torch.device = "cpu",
               checkpoint_path: str | None = None, callbacks: Sequence[Callback] = (), hidden: int = 256,
               flow_layers: int = 0) -> list[IntroVAEModel]:
    """Train several independent 2D runs, given as ``(dataset, objective, seed)``, as one ensemble.

    Run ``r`` starts from ``seeded(ToyVAE, seed)`` (width ``hidden``, paper: 256; a decoupled prior of
    ``flow_layers`` coupling blocks if > 0) and draws its data and noise from a generator seeded with
    ``seed``, exactly as a single :class:`Trainer` run with that seed would. Returns one ordinary model per run.
    """
    models = [seeded(lambda: ToyVAE(hidden=hidden, flow_layers=flow_layers), seed).to(device) for _, _, seed in runs]
    by_dataset = {ds: ToySampler(ds) for ds, _, _ in runs}  # runs on one dataset share a sampler (batched noise)
    samplers = [by_dataset[ds] for ds, _, _ in runs]
    objectives = [obj for _, obj, _ in runs]
    seeds = [seed for _, _, seed in runs]
    if len(runs) == 1:
        Trainer(models[0], objectives[0], samplers[0], config, seeds=seeds, checkpoint_path=checkpoint_path,
                callbacks=callbacks).fit()
        return [models[0]]
    ensemble = Ensemble(models).to(device)
    Trainer(ensemble, objectives, samplers, config, seeds=seeds, checkpoint_path=checkpoint_path,
            callbacks=callbacks).fit()
    return [ensemble.run_model(r).to(device) for r in range(len(runs))]


def evaluate_runs(models: Sequence[IntroVAEModel], runs: Sequence[tuple[str, Objective, int]],
                  gnelbo: bool = True) -> list[dict[str, float]]:
    """Table 2 metrics of each trained run (evaluation seeded by the run's seed); see :func:`evaluate`."""
    return [evaluate(m.cpu(), ds, seed=seed, gnelbo=gnelbo) for m, (ds, _, seed) in zip(models, runs)]


# ---------------------------------------------------------------------------------------------- command
HPARAM_FLAGS = ("beta-rec", "beta-kl", "beta-neg", "m", "gamma-r")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--method", required=True, choices=sorted(OBJECTIVES))
    p.add_argument("--iters", type=int, default=30_000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--vae-warmup", type=int, default=2_000, help="plain-VAE iterations first (paper: 2,000)")
    for name in HPARAM_FLAGS:
        p.add_argument(f"--{name}", type=float, default=None, help="override the Table 5 value")


def run(args: argparse.Namespace) -> int:
    overrides = {k.replace("-", "_"): getattr(args, k.replace("-", "_")) for k in HPARAM_FLAGS}
    iterations = args.iters - min(args.vae_warmup, args.iters)
    objective = paper_objective(args.method, args.dataset, iterations, **{k: v for k, v in overrides.items() if v is not None})
    config = train_config(args.iters, PAPER_2D, batch_size=args.batch_size, seed=args.seed,
                          vae_warmup=min(args.vae_warmup, args.iters), checkpoint_every=1000)
    out, device = Path(args.out), device_of(args)
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(device)
    (model,) = train_runs([(args.dataset, objective, args.seed)], config, device=device,
                          checkpoint_path=str(out / "checkpoint.pt"))
    model = model.cpu().eval()
    metrics = evaluate(model, args.dataset, seed=args.seed)
    with torch.no_grad():
        samples = model.sample(N_SAMPLES, torch.Generator().manual_seed(args.seed))
    np.save(out / "samples.npy", samples.numpy())
    plot_model(model, args.dataset, title=f"{args.method} on {args.dataset}").savefig(out / "samples_density.png", dpi=120)
    write_results(out / "metrics.json", {**metrics, "dataset": args.dataset, "method": args.method,
                                         "hparams": objective.hparams, "iterations": args.iters, "seed": args.seed},
                  provenance_override=prov)
    print("  ".join(f"{k}: {v:.4f}" for k, v in metrics.items()))
    return 0
