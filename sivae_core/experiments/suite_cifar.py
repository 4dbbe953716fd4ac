"""The suite's CIFAR-10 job: the paper's residual S-IntroVAE (Daniel & Tamar 2021, Sec. 9.2.2), unconditional and
class-conditional, trained for the job's share of the GPU, with a Frechet-distance curve, samples and
reconstructions.

The data is the pixel-exact CIFAR-10 subset of this project (6,102 images, ``cifar10_exact_subset.npz``, carried to
the GPU machine), so the numbers measure the code, not the paper's 50,000-image FID. No Inception weights can be
downloaded there: the Frechet distances use a small classifier trained on the same subset at the start of the job
(``FeatureNet`` with three channels, its test accuracy recorded beside every distance). The budget is recorded as
a fraction of the paper's 220 epochs of 50,000 images.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import torch

from ..data.images import load_cifar10, to_float
from ..metrics.frechet import FeatureNet, frechet_distance
from ..metrics.recon import reconstruction_metrics
from ..metrics.train_feature_net import fit_feature_net
from ..results import budget_block
from ..training.callbacks import Callback
from ..training.trainer import Trainer
from .images import settings, train_images

if TYPE_CHECKING:
    from .suite import JobContext

__all__ = ["run_cifar10"]

PAPER_IMAGES = 220 * 50_000  # 220 epochs of CIFAR-10's training set


def _fd_curve(real: torch.Tensor, net: FeatureNet, n_fake: int, every: int, curve: list) -> Callback:
    """A callback that appends (iteration, Frechet distance of ``n_fake`` samples) to ``curve`` every ``every``."""
    def record(trainer: Trainer, it: int, rec: dict) -> None:
        if it % every == 0:
            g = torch.Generator(device=real.device).manual_seed(1)
            dec, prior = trainer.sampling_decoder(), trainer.model.prior
            with torch.no_grad():
                fd = frechet_distance(real, lambda n: dec(prior.sample(n, g)).float(), net, n_fake=n_fake,
                                      device=real.device)
            curve.append((it, round(fd, 2)))
    return record


def run_cifar10(ctx: JobContext) -> dict[str, Any]:
    dev, smoke = ctx.device, ctx.smoke
    train, test = load_cifar10("train", variant="exact_subset"), load_cifar10("test", variant="exact_subset")
    if smoke:
        train, test = train.subset(256), test.subset(128)
    x, xt = to_float(train.images, dev), to_float(test.images, dev)
    net, acc = fit_feature_net(x, train.labels.to(dev), 10, epochs=1 if smoke else 15, device=dev,
                               x_test=xt, y_test=test.labels.to(dev))
    overrides = dict(channels=(8, 16), z_dim=16, batch_size=16) if smoke else {}
    n_fake, every = (64, 10) if smoke else (2000, 500)
    report: dict[str, Any] = {"feature_net_test_accuracy": acc, "train_images": len(train)}
    runs = {}
    for i, conditional in enumerate((False, True)):
        budget = ctx.budget_callback(reserve_s=0.5 * ctx.seconds_left() if i == 0 else 0.15 * ctx.seconds_left())
        s = settings("cifar10", "sivae", iterations=30 if smoke else 10**7, conditional=conditional, **overrides)
        name = "cond" if conditional else "uncond"
        curve: list = []
        callbacks = [budget] if conditional else [budget, _fd_curve(x, net, n_fake, every, curve)]
        scratch = ctx.out.parent / "_scratch" / name
        model, trainer, info = train_images(s, out=scratch, device=str(dev), progress=False, data=train,
                                            callbacks=callbacks)
        with torch.no_grad():
            if conditional:
                model.set_labels(test.labels[:64].to(dev))
            rec = reconstruction_metrics(xt[:64], model(xt[:64])[2].float())
        runs[name] = {"iterations": info["iterations"], "images_seen": info["images_seen"],
                      "fraction_of_paper": round(info["images_seen"] / PAPER_IMAGES, 5), "fd_curve": curve,
                      "reconstruction_test_64": rec, "precision": info["precision"], "wall_seconds": info["wall_seconds"],
                      "settings": {k: v for k, v in vars(s).items() if k != "extra"}}
        for png in ("samples.png", "reconstructions.png"):
            if (scratch / png).exists():
                shutil.copy(scratch / png, ctx.out / f"cifar10_{name}_{png}")
    report["runs"] = runs
    fractions = [r["fraction_of_paper"] for r in runs.values()]
    text = ("unconditional / conditional: " + " / ".join(f"{r['iterations']:,} iterations" for r in runs.values())
            + " x batch 32 of the paper's 220 epochs (pixel-exact CIFAR-10 subset)")
    ctx.write("suite_cifar10", {"budget": budget_block(text, min(fractions), paper_images=PAPER_IMAGES, smoke=smoke),
                                **report})
    return {name: {"iterations": r["iterations"], "fraction_of_paper": r["fraction_of_paper"],
                   "fd_last": r["fd_curve"][-1][1] if r["fd_curve"] else None} for name, r in runs.items()}
