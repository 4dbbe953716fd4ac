"""Evaluation of a trained translation model on the held-out cars: content transfer against the ground truth
and the baselines, the KL of each code, reconstructions, linear probes of the codes, the 4x4 matrix."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..data.cars3d import N_VIEWS, Cars3D
from ..metrics.transfer import (
    code_kl,
    content_transfer,
    image_scores,
    linear_probe,
    transfer_matrix,
    transfer_pairs,
)
from ..models.two_code import TwoCodeVAE

if TYPE_CHECKING:
    from . import TranslationSettings

__all__ = ["code_probes", "evaluate_translation", "matrix_layout", "matrix_spread", "write_matrix"]


@torch.no_grad()
def _posteriors(model: TwoCodeVAE, images: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(mu, logvar)`` of uint8 ``images`` on the CPU."""
    parts = [model.encode(images[i:i + 256].to(device).float().div(255)) for i in range(0, len(images), 256)]
    return torch.cat([p[0].float().cpu() for p in parts]), torch.cat([p[1].float().cpu() for p in parts])


def _probe_table(z_ref: Tensor, z_test: Tensor, class_dim: int, n_test_cars: int) -> dict[str, float]:
    view_ref = torch.arange(N_VIEWS).repeat(len(z_ref) // N_VIEWS)
    view_test = torch.arange(N_VIEWS).repeat(n_test_cars)
    car_test = torch.arange(n_test_cars).repeat_interleave(N_VIEWS)
    even = view_test % 2 == 0
    result = {}
    for code, part in (("class", slice(0, class_dim)), ("content", slice(class_dim, None))):
        result[f"{code}_code_predicts_view"] = linear_probe(z_ref[:, part], view_ref, z_test[:, part], view_test,
                                                            N_VIEWS)
        result[f"{code}_code_predicts_car"] = linear_probe(z_test[even, part], car_test[even], z_test[~even, part],
                                                           car_test[~even], n_test_cars)
    return result


def code_probes(model: TwoCodeVAE, train: Cars3D, test: Cars3D, stochastic: bool, seed: int = 0,
                n_train_cars: int = 40, device: str | torch.device = "cpu") -> dict[str, Any]:
    """What each code predicts, by linear probes (:func:`~sivae_core.metrics.transfer.linear_probe`).

    *View* probes are fitted on ``n_train_cars`` training cars (evenly spaced) and tested on the held-out
    cars; *car* probes are fitted on the even views of the held-out cars and tested on their odd views.
    A disentangled model has a class code that predicts the car but not the view, and a content code
    that predicts the view but not the car. The probes read the posterior mean (what the encoder
    extracts) and, for a stochastic encoder, a posterior sample ``mu + sigma * eps`` (what the decoder is
    trained on): a collapsed code may keep some signal in its mean that its noise drowns.
    """
    dev = torch.device(device)
    pick = torch.linspace(0, train.n_cars - 1, min(n_train_cars, train.n_cars)).round().long()
    mu_ref, logvar_ref = _posteriors(model, train.images[pick].reshape(-1, *train.images.shape[2:]), dev)
    mu_test, logvar_test = _posteriors(model, test.images.reshape(-1, *test.images.shape[2:]), dev)
    result: dict[str, Any] = {"posterior_mean": _probe_table(mu_ref, mu_test, model.class_dim, test.n_cars)}
    if stochastic:
        g = torch.Generator().manual_seed(seed)
        z_ref = mu_ref + torch.randn(mu_ref.shape, generator=g) * torch.exp(0.5 * logvar_ref)
        z_test = mu_test + torch.randn(mu_test.shape, generator=g) * torch.exp(0.5 * logvar_test)
        result["posterior_sample"] = _probe_table(z_ref, z_test, model.class_dim, test.n_cars)
    result.update({"chance_view": 1 / N_VIEWS, "chance_car": 1 / test.n_cars})
    return result


@torch.no_grad()
def _reconstruction(model: TwoCodeVAE, test: Cars3D, device: torch.device) -> dict[str, float]:
    x = test.images[:, ::4].reshape(-1, *test.images.shape[2:]).float().div(255)
    rec = torch.cat([model(x[i:i + 256].to(device))[2].float().cpu() for i in range(0, len(x), 256)])
    return {k: float(v.mean()) for k, v in image_scores(rec, x).items()}


def evaluate_translation(model: TwoCodeVAE, s: TranslationSettings, train: Cars3D, test: Cars3D,
                         n_pairs: int = 2000, device: str | torch.device = "cpu",
                         lpips: Callable[[Tensor, Tensor], Tensor] | None = None, seed: int = 0) -> dict[str, Any]:
    """Every number of ``metrics.json`` for a trained model (held-out cars only; ``train`` gives the
    per-view mean image of the reference and the cars of the view probes)."""
    model.eval()
    dev = torch.device(device)
    pairs = transfer_pairs(test.n_cars, N_VIEWS, n_pairs, seed)
    view_mean = train.images.float().mean(dim=0).div(255)
    scores = content_transfer(model.transfer, test.images, pairs, view_mean, lpips, device=dev)
    kl = code_kl(model, test.images.reshape(-1, *test.images.shape[2:]))
    return {
        **{k: round(v, 6) if v is not None else None for k, v in scores.items()},
        "kl_class_test": round(kl["kl_class"], 4), "kl_content_test": round(kl["kl_content"], 4),
        "reconstruction_test": {k: round(v, 6) for k, v in _reconstruction(model, test, dev).items()},
        "probe": code_probes(model, train, test, stochastic=s.method != "ae", seed=seed, device=dev),
        "pairs": {"n": n_pairs, "seed": seed, "cars": "held-out", "rule": "car A != car B, view u != view v",
                  "test_models": list(test.names)},
    }


def matrix_layout() -> tuple[list[int], list[tuple[int, int]], int]:
    """The held-out cars and views of the 4x4 matrix: class cars (rows, shown at the class view) and
    (car, view) content images (columns) spread over azimuths and all four elevations."""
    return [0, 5, 10, 15], [(2, 3), (7, 30), (12, 57), (17, 84)], 6


def write_matrix(model: TwoCodeVAE, test: Cars3D, path: str | Path) -> Path:
    """Save the 4x4 content-transfer matrix (with its class column and content row) as a PNG."""
    from ..viz.grids import save_grid  # matplotlib only where a picture is written

    rows, cols, class_view = matrix_layout()
    return save_grid(transfer_matrix(model, test.images, rows, cols, class_view), path, nrow=len(cols) + 1)


def matrix_spread(grid: Tensor) -> tuple[float, float]:
    """Mean absolute pixel difference between the 4x4 transfers of a matrix (25 tiles in :func:`write_matrix`'s
    order, the first row and column holding the content and class images): along a row, where only the content
    code changes, and down a column, where only the class code changes.

    A decoder that ignores one of its codes draws the same image wherever only that code changes, so the
    matching spread is near 0: the number behind "this decoder ignores its content code" in a matrix picture.
    """
    n = math.isqrt(len(grid))
    t = grid.reshape(n, n, *grid.shape[1:])[1:, 1:]
    pairs = list(combinations(range(n - 1), 2))
    along_row = sum(float((t[:, i] - t[:, j]).abs().mean()) for i, j in pairs) / len(pairs)
    down_column = sum(float((t[i] - t[j]).abs().mean()) for i, j in pairs) / len(pairs)
    return along_row, down_column
