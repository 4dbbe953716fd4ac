"""Table 2 of Daniel & Tamar (2021): every (dataset, method, seed) with the paper's Table 5 hyperparameters,
the runs of one method trained together as one vectorized ensemble, written as a result file::

    python -m sivae_core table2 --datasets 8gaussians spiral --methods sivae vae --seeds 0 1 2 3 4 \\
        --out book/results/table2.json [--iters 30000] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..cli import device_of
from ..results import provenance, write_results
from .paper import PAPER_TABLE2
from .schedules import PAPER_2D, budget_2d, train_config
from .toy2d import evaluate_runs, paper_objective, train_runs

__all__ = ["summarize", "table2_cells", "cells_from_records", "margin_sweep", "table2_markdown", "add_arguments", "run"]


def summarize(per_run: list[dict]) -> dict:
    """mean and std (ddof 0, as numpy's default) of each metric over the runs of one cell."""
    keys = ["kl", "jsd", "jsd_standard", "gnelbo"]
    return {k: {"mean": float(np.mean([r[k] for r in per_run])), "std": float(np.std([r[k] for r in per_run]))}
            for k in keys}


def table2_cells(models: list, runs: list) -> dict:
    """Evaluate trained runs of one method and group them per dataset: per-seed metrics, mean, std, paper."""
    metrics = evaluate_runs(models, runs)
    method = runs[0][1].name
    cells = {}
    for ds in dict.fromkeys(d for d, _, _ in runs):
        per_run = [m for m, (d, _, _) in zip(metrics, runs) if d == ds]
        cells[ds] = {"per_seed": per_run, **summarize(per_run), "paper": PAPER_TABLE2.get(ds, {}).get(method)}
    return cells


def cells_from_records(records: list[dict]) -> dict:
    """Table 2 cells from per-run records (a stored result's ``runs``, e.g. the GPU suite's ``suite_table2``): the
    records tagged ``figure == "table2"``, grouped by dataset and method. A diverged run's NaN stays in its cell."""
    grouped: dict = {}
    for r in records:
        if r.get("figure") == "table2":
            grouped.setdefault(r["dataset"], {}).setdefault(r["method"], []).append(r)
    return {ds: {m: {"per_seed": rs, **summarize(rs), "paper": PAPER_TABLE2.get(ds, {}).get(m)} for m, rs in by.items()}
            for ds, by in grouped.items()}


def margin_sweep(records: list[dict]) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Fig. 3 from per-run records tagged ``figure == "fig3"``: the margins, IntroVAE's seed-mean ``(kl, jsd)``
    per margin (rows), and S-IntroVAE's seed-mean ``(kl, jsd)`` (its records have ``m`` None: it has no margin)."""
    fig3 = [r for r in records if r.get("figure") == "fig3"]
    margins = sorted({r["m"] for r in fig3 if r["m"] is not None})
    intro = np.array([[np.mean([r[k] for r in fig3 if r["m"] == m]) for k in ("kl", "jsd")] for m in margins])
    soft = np.array([np.mean([r[k] for r in fig3 if r["m"] is None]) for k in ("kl", "jsd")])
    return margins, intro, soft


def table2_markdown(cells: dict, metrics: tuple[str, ...] = ("gnelbo", "kl", "jsd"), with_paper: bool = True,
                    show_std: bool = True) -> str:
    """A Markdown table ``dataset x metric`` with ``mean ± std`` per method, the paper's value in brackets
    (``show_std=False`` for a single seed, whose standard deviation of 0 says nothing).

    ``cells`` is ``{dataset: {method: {metric: {"mean", "std"}, "paper": {metric: (mean, std)}}}}``, the
    ``cells`` entry of a result file written by :func:`main`.
    """
    methods = [m for m in ("vae", "introvae", "sivae") if any(m in cells[d] for d in cells)]
    methods += sorted({m for d in cells for m in cells[d]} - set(methods))
    names = {"vae": "VAE", "introvae": "IntroVAE", "sivae": "Soft-IntroVAE"}
    lines = ["| dataset | metric | " + " | ".join(names.get(m, m) for m in methods) + " |",
             "| --- | --- | " + " | ".join("---" for _ in methods) + " |"]
    for ds, by_method in cells.items():
        for metric in metrics:
            row = []
            for m in methods:
                cell = by_method.get(m)
                if cell is None:
                    row.append("")
                    continue
                text = f"{cell[metric]['mean']:.2f}" + (f" ± {cell[metric]['std']:.2f}" if show_std else "")
                paper = (cell.get("paper") or {}).get(metric)
                if with_paper and paper is not None:
                    text += f" ({paper[0]} ± {paper[1]})"
                row.append(text)
            label = "gnELBO (1e-7)" if metric == "gnelbo" else metric
            lines.append(f"| {ds} | {label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets", nargs="+", default=["8gaussians", "spiral", "checkerboard", "rings"])
    p.add_argument("--methods", nargs="+", default=["vae", "introvae", "sivae"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--iters", type=int, default=30_000)
    p.add_argument("--checkpoint-dir", default=None, help="checkpoint each method's ensemble here (resumable)")


def run(args: argparse.Namespace) -> int:
    device = device_of(args)
    prov = provenance(device)  # taken at launch: the commit that trained, not the one at the end
    results: dict = {"iterations": args.iters, "paper_iterations": 30_000, "seeds": args.seeds,
                     "budget": budget_2d(args.iters, len(args.seeds)), "cells": {}}
    start = time.time()
    for method in args.methods:
        runs = [(ds, paper_objective(method, ds), seed) for ds in args.datasets for seed in args.seeds]
        ckpt = f"{args.checkpoint_dir}/table2_{method}.pt" if args.checkpoint_dir else None
        cfg = train_config(args.iters, PAPER_2D, checkpoint_every=1000 if ckpt else 0)
        models = train_runs(runs, cfg, device=device, checkpoint_path=ckpt)
        for ds, cell in table2_cells(models, runs).items():
            results["cells"].setdefault(ds, {})[method] = cell
            print(f"{ds:13s} {method:9s} " + "  ".join(f"{k} {cell[k]['mean']:.3f}±{cell[k]['std']:.3f}"
                                                      for k in ("kl", "jsd", "gnelbo")), flush=True)
    results["wall_seconds"] = round(time.time() - start, 1)
    write_results(args.out, results, provenance_override=prov)
    return 0
