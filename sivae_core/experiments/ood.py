"""Out-of-distribution detection with a trained image model (Daniel & Tamar 2021, Sec. 6.5, 9.7, Table 7).

    python -m sivae_core ood --model runs/mnist_sivae --in-dist mnist --ood fmnist --out runs/ood_mnist_fmnist

Scores every test image of both data sets by its ELBO (Table 7) and by the importance-weighted
log-likelihood with M = 5 (Sec. 6.5; higher = more in-distribution), reports the AUROC of each
(in-distribution test images are the positives) and plots histograms of the scores for the
in-distribution train and test sets and the OOD test set. ``--results`` also writes a result file with
provenance and the model's training budget (``book/results/ood_*.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch

from ..cli import device_of
from ..data import DATASETS, load_dataset, to_float
from ..elbo import decoder_logvar
from ..metrics import auroc, elbo_parts, elbo_score, iw_log_likelihood
from ..metrics.likelihood import LOG_HALF
from ..results import budget_block, write_results
from ..viz.ood import plot_histograms
from .images import load_run

__all__ = ["ood_scores", "aurocs", "score_breakdown", "add_arguments", "run"]


@torch.no_grad()
def ood_scores(model, in_dist: str, ood: str, n: int | None = None, n_samples: int = 5, root: str | None = None,
               seed: int = 0, device: str | torch.device = "cpu",
               decoder_logvar: float = LOG_HALF) -> dict[str, dict[str, np.ndarray]]:
    """``{"elbo"|"iwll": {"in_train", "in_test", "ood_test"}: scores}`` on the first ``n`` images of each.

    ``decoder_logvar`` is the log-variance of the Gaussian decoder the model was trained with,
    ``log(1 / (2 beta_rec))`` (:func:`sivae_core.elbo.decoder_logvar`); the default is beta_rec = 1."""
    sets = {"in_train": load_dataset(in_dist, "train", root, n), "in_test": load_dataset(in_dist, "test", root, n),
            "ood_test": load_dataset(ood, "test", root, n)}
    out: dict[str, dict[str, np.ndarray]] = {"elbo": {}, "iwll": {}}
    for key, d in sets.items():
        if d.shape != tuple(model.data_shape):
            raise ValueError(f"{d.name} images have shape {d.shape}, the model expects {tuple(model.data_shape)}")
        x = to_float(d.images, device)
        g = torch.Generator(device=device).manual_seed(seed)
        out["elbo"][key] = elbo_score(model, x, g, decoder_logvar).cpu().numpy()
        out["iwll"][key] = iw_log_likelihood(model, x, n_samples, g, decoder_logvar).cpu().numpy()
    return out


def aurocs(scores: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
    return {f"auroc_{k}": round(auroc(torch.from_numpy(v["in_test"]), torch.from_numpy(v["ood_test"])), 5)
            for k, v in scores.items()}


@torch.no_grad()
def score_breakdown(model, in_dist: str, ood: str, n: int | None = None, root: str | None = None, seed: int = 0,
                    device: str | torch.device = "cpu", decoder_logvar: float = LOG_HALF) -> dict:
    """Where the ELBO's AUROC comes from: the AUROC of each of its terms alone (``log p(x|z)`` and ``-KL``)
    and the ELBO's AUROC against each OOD class separately (in-distribution test images are the positives).

    An ``auroc_neg_kl`` below 0.5 says the encoder maps OOD images *closer* to the prior than real ones,
    so the KL works against detection; a low per-class AUROC names the OOD images that pass as real.
    """
    sets = {"in": load_dataset(in_dist, "test", root, n), "ood": load_dataset(ood, "test", root, n)}
    parts = {}
    for key, d in sets.items():
        g = torch.Generator(device=device).manual_seed(seed)
        parts[key] = elbo_parts(model, to_float(d.images, device), g, decoder_logvar)
    (rec_in, kl_in), (rec_ood, kl_ood) = parts["in"], parts["ood"]
    elbo_in, elbo_ood = rec_in - kl_in, rec_ood - kl_ood
    labels = sets["ood"].labels.to(elbo_ood.device)
    return {"auroc_log_px_given_z": round(auroc(rec_in, rec_ood), 5), "auroc_neg_kl": round(auroc(-kl_in, -kl_ood), 5),
            "auroc_elbo_by_ood_class": {int(c): round(auroc(elbo_in, elbo_ood[labels == c]), 4)
                                        for c in labels.unique().tolist()},
            "ood_class_counts": {int(c): int((labels == c).sum()) for c in labels.unique().tolist()},
            "mean_kl": {"in": round(float(kl_in.mean()), 2), "ood": round(float(kl_ood.mean()), 2)},
            "mean_log_px_given_z": {"in": round(float(rec_in.mean()), 2), "ood": round(float(rec_ood.mean()), 2)}}


def _budget(info: dict, model_dir: str) -> dict:
    """The scored model's training budget (written by ``python -m sivae_core images``)."""
    if "description" not in info:
        raise KeyError(f"{model_dir}/train.json records no budget (a run folder from an older version): retrain it")
    return budget_block(info["description"], info["fraction_of_paper"])


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--model", required=True, help="run folder written by python -m sivae_core images")
    ap.add_argument("--in-dist", required=True, choices=DATASETS)
    ap.add_argument("--ood", required=True, choices=DATASETS)
    ap.add_argument("--n", type=int, help="use the first N images of each set (default: all test images)")
    ap.add_argument("--samples", type=int, default=5, help="M, importance samples (paper: 5)")
    ap.add_argument("--root")
    ap.add_argument("--results", help="also write this result file with provenance (book/results/ood_*.json)")


def run(a: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    device = device_of(a)
    model, state = load_run(a.model, device)
    logvar = decoder_logvar(state["settings"].get("beta_rec", 1.0))
    scores = ood_scores(model, a.in_dist, a.ood, a.n, a.samples, a.root, device=device, decoder_logvar=logvar)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for k, v in scores.items():
        ax = plot_histograms(v, a.in_dist, a.ood, f"{state['settings']['method']}: {k}")
        ax.figure.tight_layout()
        ax.figure.savefig(out / f"hist_{k}.png", dpi=80)
        plt.close(ax.figure)
    np.savez_compressed(out / "scores.npz", **{f"{s}_{k}": v for s, d in scores.items() for k, v in d.items()})
    metrics = {"in_dist": a.in_dist, "ood": a.ood, "method": state["settings"]["method"], **aurocs(scores),
               "iw_samples": a.samples, "n_per_set": {k: len(v) for k, v in scores["elbo"].items()},
               "decoder_variance": round(math.exp(logvar), 6),
               "breakdown": score_breakdown(model, a.in_dist, a.ood, a.n, a.root, device=device, decoder_logvar=logvar),
               "mean_scores": {s: {k: round(float(v.mean()), 2) for k, v in d.items()} for s, d in scores.items()},
               "training": state["info"], "model_settings": state["settings"], "budget": _budget(state["info"], a.model)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if a.results:  # the ELBO histogram travels with the stored result, as a small PNG beside it
        results = Path(a.results)
        write_results(results, {**metrics, "histogram": results.stem + "_hist_elbo.png"}, device=device)
        shutil.copy(out / "hist_elbo.png", results.with_name(results.stem + "_hist_elbo.png"))
    print(json.dumps({k: v for k, v in metrics.items() if k.startswith("auroc")}, indent=2))
    return 0
