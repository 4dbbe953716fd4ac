"""The 2D comparison of AS-IntroVAE (Lu et al. 2022, Sec. 5.2, Tables 1 and 4): VAE, IntroVAE, S-IntroVAE
and AS-IntroVAE under the three hyperparameter settings C1-C3, on 8 Gaussians and Checkerboard, over seeds::

    python -m sivae_core as-table --iters 30000 --seeds 0 1 2 --out runs/as2d.json
"""

from __future__ import annotations

import argparse

import numpy as np

from ..cli import device_of
from ..objectives import Objective, make_objective
from ..results import provenance, write_results
from ..training.trainer import NonFiniteLossError, TrainConfig
from .paper import AS_READINGS, PAPER_HPARAMS, as_settings
from .schedules import PAPER_2D, budget_2d, train_config
from .toy2d import evaluate_runs, train_runs

__all__ = ["AS_METHODS", "setting_objective", "as_budget", "run_as_table",
           "summarize", "add_arguments", "run"]

AS_METHODS = ("vae", "introvae", "sivae", "asivae")


def setting_objective(method: str, dataset: str, setting: str, total_iters: int, reading: str = "rec_kl_neg",
                      **as_options: object) -> Objective:
    """The objective of ``method`` under setting C1-C3 on ``dataset``, the printed triple read as ``reading``
    (:data:`~sivae_core.experiments.paper.AS_READINGS`).

    VAE takes (beta_rec, beta_kl) of the setting; IntroVAE additionally its margin ``m`` from Table 5 of
    Daniel & Tamar (2021) (Lu et al. do not give one); S-IntroVAE and AS-IntroVAE take all three betas.
    """
    hp = dict(as_settings(reading)[setting])
    if method == "vae":
        hp.pop("beta_neg")
    if method == "introvae":
        hp["m"] = PAPER_HPARAMS[dataset]["introvae"]["m"]
    if method == "asivae":
        hp.update(as_options)
    return make_objective(method, total_iters, **hp)


def as_budget(iterations: int, batch_size: int = 512) -> TrainConfig:
    """The 2D budget scaled to ``iterations`` with the paper's proportions (:data:`PAPER_2D`)."""
    return train_config(iterations, PAPER_2D, batch_size=batch_size, progress=False, log_every=max(1, iterations // 10))


def run_as_table(datasets=("8gaussians", "checkerboard"), settings=("C1", "C2", "C3"), methods=AS_METHODS,
                 seeds=(0, 1, 2), iterations: int = 30_000, batch_size: int = 512, hidden: int = 256,
                 device: str = "cpu", readings=("rec_kl_neg",), **as_options: object) -> list[dict]:
    """Train every (method, setting, dataset, seed) and return one record per run with its Table 2 metrics.

    Runs of one method on one dataset are trained together as a vectorized ensemble (on a GPU that is
    nearly free; on a CPU it costs what the runs cost one by one). A run whose loss turns NaN is recorded
    with NaN metrics (IntroVAE on Checkerboard diverges in Table 4 of Lu et al. 2022); it stops its shared
    ensemble, whose runs are then retrained one by one. Only the sample metrics of Tables 1 and 4 are
    computed (no grid-normalized ELBO).
    """
    config = as_budget(iterations, batch_size)

    def train_and_evaluate(rs: list) -> list[dict[str, float]]:
        return evaluate_runs(train_runs(rs, config, device, hidden=hidden), rs, gnelbo=False)

    records: list[dict] = []
    for method in methods:
        for ds in datasets:
            runs, keys = [], []
            for reading in readings:
                for st in settings:
                    for seed in seeds:
                        obj = setting_objective(method, ds, st, iterations - config.vae_warmup, reading, **as_options)
                        runs.append((ds, obj, seed))
                        keys.append({"method": method, "dataset": ds, "setting": st, "reading": reading, "seed": seed})
            try:
                metrics = train_and_evaluate(runs)
            except NonFiniteLossError:
                metrics = []
                for one in runs:
                    try:
                        metrics += train_and_evaluate([one])
                    except NonFiniteLossError:
                        metrics.append({k: float("nan") for k in ("kl", "jsd", "jsd_standard")})
            for key, m in zip(keys, metrics):
                records.append({**key, **{k: float(v) for k, v in m.items()}})
    return records


def summarize(records: list[dict], metric: str, reading: str | None = None) -> dict[str, dict[str, dict[str, tuple]]]:
    """(mean, std, n finite) of ``metric`` over seeds, by dataset -> setting -> method (of one ``reading`` of the
    settings when the records hold several)."""
    out: dict = {}
    for r in records:
        if reading is not None and r.get("reading", "rec_kl_neg") != reading:
            continue
        out.setdefault(r["dataset"], {}).setdefault(r["setting"], {}).setdefault(r["method"], []).append(r[metric])
    for ds in out.values():
        for st in ds.values():
            for m, vals in st.items():
                v = np.asarray(vals, dtype=float)
                fin = v[np.isfinite(v)]
                st[m] = (float(fin.mean()) if fin.size else float("nan"),
                         float(fin.std()) if fin.size else float("nan"), int(fin.size))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--iters", type=int, default=30_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--datasets", nargs="+", default=["8gaussians", "checkerboard"])
    p.add_argument("--methods", nargs="+", default=list(AS_METHODS))
    p.add_argument("--form", default="paper", choices=["paper", "code"])
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--hidden", type=int, default=256, help="MLP width (paper: 256)")
    p.add_argument("--readings", nargs="+", default=list(AS_READINGS), choices=list(AS_READINGS),
                   help="how the printed settings C1-C3 map to (beta_rec, beta_kl, beta_neg); default: both")


def run(args: argparse.Namespace) -> int:
    device = device_of(args)
    prov = provenance(device)
    records = run_as_table(datasets=args.datasets, methods=args.methods, seeds=args.seeds, iterations=args.iters,
                           batch_size=args.batch_size, hidden=args.hidden, device=device, readings=args.readings,
                           form=args.form)
    write_results(args.out, {"iterations": args.iters, "paper_iterations": 30_000, "seeds": args.seeds,
                             "form": args.form, "batch_size": args.batch_size, "hidden": args.hidden,
                             "paper_batch_size": 512, "paper_hidden": 256,
                             "budget": budget_2d(args.iters, len(args.seeds), args.batch_size, args.hidden, paper_seeds=None),
                             "settings": {r: as_settings(r) for r in args.readings}, "runs": records,
                             "summary": {r: {m: summarize(records, m, r) for m in ("kl", "jsd", "jsd_standard")}
                                         for r in args.readings}},
                  provenance_override=prov)
    print(f"wrote {args.out}")
    return 0
