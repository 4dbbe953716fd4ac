"""Train and evaluate one 2D experiment without a notebook.

    python -m sivae_core.toy2d --dataset 8gaussians --method sivae --iters 30000 --seed 0 --out runs/8g

Defaults are the paper's (Table 5 hyperparameters for the dataset and method, the 2D budget of
Sec. 9.2.1). Writes ``metrics.json`` (kl, jsd, jsd_standard, gnelbo), ``samples.npy`` (5,000
generated points) and ``samples_density.png``; ``checkpoint.pt`` makes an interrupted run resumable.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import sivae_core  # noqa: E402,F401  (registers every objective, e.g. --method asivae)

from ..objectives import OBJECTIVES  # noqa: E402
from ..results import provenance, write_results  # noqa: E402
from .data import DATASETS  # noqa: E402
from .experiment import make_objective, paper_config, train_runs  # noqa: E402
from .metrics import N_SAMPLES, evaluate  # noqa: E402
from .plots import plot_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sivae_core.toy2d", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--method", required=True, choices=sorted(OBJECTIVES))
    p.add_argument("--iters", type=int, default=30_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--vae-warmup", type=int, default=2_000, help="plain-VAE iterations first (paper: 2,000)")
    for name in ("beta-rec", "beta-kl", "beta-neg", "m", "gamma-r"):
        p.add_argument(f"--{name}", type=float, default=None, help="override the Table 5 value")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)

    overrides = {k.replace("-", "_"): getattr(args, k.replace("-", "_"))
                 for k in ("beta-rec", "beta-kl", "beta-neg", "m", "gamma-r")}
    objective = make_objective(args.method, args.dataset, **{k: v for k, v in overrides.items() if v is not None})
    config = paper_config(iterations=args.iters, batch_size=args.batch_size, seed=args.seed,
                          vae_warmup=min(args.vae_warmup, args.iters), checkpoint_every=1000)
    args.out.mkdir(parents=True, exist_ok=True)
    prov = provenance(args.device)
    (model,) = train_runs([(args.dataset, objective, args.seed)], config, device=args.device,
                          checkpoint_path=str(args.out / "checkpoint.pt"))
    model = model.cpu().eval()
    metrics = evaluate(model, args.dataset, seed=args.seed)
    g = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        samples = model.decode(torch.randn(N_SAMPLES, model.z_dim, generator=g))
    np.save(args.out / "samples.npy", samples.numpy())
    fig = plot_model(model, args.dataset, title=f"{args.method} on {args.dataset}")
    fig.savefig(args.out / "samples_density.png", dpi=120)
    write_results(args.out / "metrics.json", {**metrics, "dataset": args.dataset, "method": args.method,
                                              "hparams": objective.hparams, "iterations": args.iters,
                                              "seed": args.seed}, provenance_override=prov)
    print("  ".join(f"{k}: {v:.4f}" for k, v in metrics.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
