"""Content transfer with ground truth (Soft-IntroVAE, Daniel & Tamar 2021, Sec. 6.4 and Table 4; LORD,
Gabbay & Hoshen 2020), baselines a transfer must beat, and probes of what each code carries.

Cars3D renders every car at every view, so a transfer has an answer: for car A at view u (the *class
image*) and car B at view v (the *content image*), the model should produce car A at view v, which the
data set holds. Two baselines cost nothing and tell whether the model transfers anything: return the
class image unchanged (right car, wrong view) or the content image unchanged (right view, wrong car). A
third reference, the mean training car at view v, is what a model that gets the view right and ignores
the class code would approach; beating it needs the class code.

Scores are per image and averaged over pairs: MSE over pixels, PSNR (data range 1) and SSIM (11x11
Gaussian window, torchmetrics), all on images in ``[0, 1]``. LPIPS, the paper's measure, needs ImageNet
weights that are not available offline; :func:`lpips_scorer` says what to download.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

__all__ = [
    "LPIPS_WEIGHTS",
    "beats_baselines",
    "code_kl",
    "content_transfer",
    "image_scores",
    "linear_probe",
    "lpips_scorer",
    "transfer_matrix",
    "transfer_pairs",
]

#: The torchvision AlexNet weights that torchmetrics' LPIPS loads (file name in ``torch.hub``'s checkpoint folder).
LPIPS_WEIGHTS = "alexnet-owt-7be5be79.pth"


def transfer_pairs(n_cars: int, n_views: int, n: int, seed: int = 0) -> Tensor:
    """``n`` random rows ``(car A, view u, car B, view v)`` with ``A != B`` and ``u != v`` (a pair with
    ``u == v`` would make the class image itself the answer). Deterministic for a ``seed``."""
    if n_cars < 2 or n_views < 2:
        raise ValueError(f"content transfer needs at least 2 cars and 2 views, got {n_cars} and {n_views}")
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(n_cars, (n,), generator=g)
    b = (a + torch.randint(1, n_cars, (n,), generator=g)) % n_cars  # uniform over the other cars
    u = torch.randint(n_views, (n,), generator=g)
    v = (u + torch.randint(1, n_views, (n,), generator=g)) % n_views
    return torch.stack([a, u, b, v], dim=1)


@torch.no_grad()
def image_scores(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-image ``mse``, ``psnr`` (dB) and ``ssim`` of ``pred`` against ``target``, both ``(N, C, H, W)``
    in ``[0, 1]`` (clamped first)."""
    pred, target = pred.float().clamp(0, 1), target.float().clamp(0, 1)
    return {
        "mse": (pred - target).pow(2).mean(dim=(1, 2, 3)),
        "psnr": peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3)),
        "ssim": structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none"),
    }


def _as_float(images: Tensor) -> Tensor:
    return images.float().div(255.0) if images.dtype == torch.uint8 else images.float()


@torch.no_grad()
def content_transfer(transfer: Callable[[Tensor, Tensor], Tensor], images: Tensor, pairs: Tensor,
                     view_mean: Tensor | None = None, lpips: Callable[[Tensor, Tensor], Tensor] | None = None,
                     batch_size: int = 256, device: str | torch.device = "cpu") -> dict[str, float | None]:
    """Score ``transfer(class images, content images)`` against the ground truth on ``pairs``.

    ``images``: ``(n_cars, n_views, C, H, W)`` (uint8 or floats in ``[0, 1]``) on the CPU; ``view_mean``:
    optional ``(n_views, C, H, W)`` mean image per view (of the *training* cars); ``device``: where
    ``transfer`` runs. Returns means over pairs of
    ``transfer_*``, ``baseline_class_image_*``, ``baseline_content_image_*`` and ``reference_view_mean_*``
    for ``mse``, ``psnr``, ``ssim`` (and ``lpips`` when a scorer is given).
    """
    sums: dict[str, float] = {}
    for start in range(0, len(pairs), batch_size):
        a, u, b, v = pairs[start:start + batch_size].unbind(dim=1)
        x_class, x_content, target = (_as_float(images[c, w]) for c, w in ((a, u), (b, v), (a, v)))
        out = transfer(x_class.to(device), x_content.to(device)).float().cpu()
        candidates = {"transfer": out, "baseline_class_image": x_class, "baseline_content_image": x_content}
        if view_mean is not None:
            candidates["reference_view_mean"] = _as_float(view_mean[v])
        for name, pred in candidates.items():
            scores = image_scores(pred, target)
            if lpips is not None:
                scores["lpips"] = lpips(pred, target).flatten().cpu()
            for metric, values in scores.items():
                key = f"{name}_{metric}"
                sums[key] = sums.get(key, 0.0) + float(values.double().sum())
    result: dict[str, float | None] = {k: v / len(pairs) for k, v in sums.items()}
    for name in {key.rsplit("_", 1)[0] for key in sums}:  # no scorer: LPIPS is reported as missing, not as 0
        result.setdefault(f"{name}_lpips", None)
    return result


def beats_baselines(scores: dict) -> dict[str, bool]:
    """Whether the transfer beats *both* free baselines, per score: lower MSE, higher PSNR and SSIM (and
    lower LPIPS when scored), from a :func:`content_transfer` result."""
    out = {}
    names = ("transfer", "baseline_class_image", "baseline_content_image")
    for metric, better in (("mse", min), ("psnr", max), ("ssim", max), ("lpips", min)):
        values = [scores.get(f"{name}_{metric}") for name in names]
        if None not in values:
            out[metric] = better(values) == values[0] and values[0] not in values[1:]
    return out


@torch.no_grad()
def code_kl(model, x: Tensor, batch_size: int = 256) -> dict[str, float]:
    """Mean ``KL(q(z|x) || N(0, I))`` of the class and of the content code over ``x`` (uint8 or float
    images): the number that vanishes when a code collapses onto the prior."""
    from ..two_code_objectives import code_kls

    total = torch.zeros(2, dtype=torch.float64)
    device = next(model.parameters()).device
    for start in range(0, len(x), batch_size):
        mu, logvar = model.encode(_as_float(x[start:start + batch_size]).to(device))
        kl_class, kl_content = code_kls(mu, logvar, model.class_dim)
        total += torch.stack([kl_class.sum(), kl_content.sum()]).double().cpu()
    kl_class, kl_content = (total / len(x)).tolist()
    return {"kl_class": kl_class, "kl_content": kl_content}


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, n_classes: int,
                 weight_decay: float = 1e-3, steps: int = 200) -> float:
    """Test accuracy of a multinomial logistic regression fitted on ``(train_x, train_y)``.

    A small probe of linearly decodable information. Features are standardized with the training
    statistics; the fit is full-batch L-BFGS, deterministic for given inputs.
    """
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-8)
    xs, xt = (train_x - mean) / std, (test_x - mean) / std
    w = torch.zeros(xs.shape[1], n_classes, requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xs @ w + bias, train_y) + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((xt @ w + bias).argmax(1) == test_y).float().mean())


def lpips_scorer(device: str | torch.device = "cpu") -> Callable[[Tensor, Tensor], Tensor]:
    """LPIPS (Zhang et al. 2018, AlexNet features) as used by LORD and Table 4, via torchmetrics.

    Needs ``torchvision`` and its ImageNet AlexNet weights; neither is downloaded here (no network at run
    time), so a missing piece is a clear error saying what to fetch.
    """
    try:
        import torchvision  # noqa: F401
    except ImportError as err:
        raise RuntimeError("LPIPS needs torchvision (pip install torchvision) and its AlexNet ImageNet weights; "
                           "both are unavailable offline. On a machine with internet (e.g. Colab) install "
                           "torchvision, then rerun with --lpips.") from err
    weights = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_WEIGHTS
    if not weights.is_file():
        raise RuntimeError(f"LPIPS needs the AlexNet ImageNet weights at {weights}: download "
                           f"https://download.pytorch.org/models/{LPIPS_WEIGHTS} there (or run "
                           "torchvision.models.alexnet(weights='IMAGENET1K_V1') once with internet).")
    from torchmetrics.functional.image.lpips import (
        learned_perceptual_image_patch_similarity as lpips,
    )

    def score(pred: Tensor, target: Tensor) -> Tensor:
        return lpips(pred.to(device).clamp(0, 1), target.to(device).clamp(0, 1), net_type="alex",
                     reduction="none", normalize=True)

    return score


@torch.no_grad()
def transfer_matrix(model, images: Tensor, class_cars: list[int], content: list[tuple[int, int]],
                    class_view: int = 0) -> Tensor:
    """The grid of the paper's Fig. 7 / 19: a blank corner, the content images along the top row, the class
    images down the left column, and at (i, j) the car of row i at the view of column j.

    ``class_cars``: car indices (shown at ``class_view``); ``content``: (car, view) pairs. Returns
    ``((len(class_cars) + 1) * (len(content) + 1), C, H, W)`` images in row-major order.
    """
    x_class = _as_float(images[torch.tensor(class_cars), class_view])
    x_content = _as_float(torch.stack([images[c, v] for c, v in content]))
    device = next(model.parameters()).device
    rows = [torch.cat([torch.ones_like(x_class[:1]), x_content])]
    for i in range(len(class_cars)):
        out = model.transfer(x_class[i:i + 1].expand_as(x_content).to(device), x_content.to(device)).float().cpu()
        rows.append(torch.cat([x_class[i:i + 1], out]))
    return torch.cat(rows)
