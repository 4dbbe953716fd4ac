"""Train S-IntroVAE, AS-IntroVAE or a VAE on images and evaluate it (the ``images`` command).

    python -m sivae_core images --dataset mnist --method sivae --fast --out runs/mnist_sivae
    python -m sivae_core.images --dataset fmnist --method sivae --fast ood --out runs/fmnist_ood  # chapter 8
    python -m sivae_core.images --dataset cifar10 --method sivae --out runs/cifar10   # paper: 220 epochs

Writes ``model.pt``, ``checkpoint.pt`` (resumable: rerun the same command), sample / reconstruction /
interpolation grids and ``metrics.json`` (Frechet distance with the named feature network, test ELBO,
PSNR/SSIM/MSE of test reconstructions, training budget).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..cli import device_of
from ..data import DATASETS, load_dataset, to_float
from ..elbo import decoder_logvar
from ..metrics import (
    elbo_score,
    frechet_distance,
    inception_available,
    load_feature_net,
    recognized_classes,
    reconstruction_metrics,
)
from ..metrics.frechet import inception_extractor
from ..results import command_line, write_results
from ..training.precision import AMP_CHOICES
from ..viz.grids import save_grid
from ..viz.interpolation import interpolate_grid
from .images import FAST_BUDGETS, IMAGE_METHODS, settings, train_images


def evaluate(model, trainer, s, out: Path, root=None, n_fake: int = 2000, n_real: int = 10000,
             device: str | torch.device = "cpu") -> dict:
    """Frechet distance, test ELBO and reconstruction metrics of a trained unconditional/conditional model."""
    model.eval()
    test = load_dataset(s.dataset, "test", root)
    train = load_dataset(s.dataset, "train", root, s.subset)
    xt = to_float(test.images[:1000], device)
    res: dict = {}
    with torch.no_grad():
        if s.conditional:
            model.set_labels(test.labels[:1000].to(device))
        _, _, rec = model(xt)
        res["reconstruction_test_1000"] = reconstruction_metrics(xt, rec)
        if not s.conditional:
            g = torch.Generator(device=device).manual_seed(0)
            res["test_elbo_mean_nats"] = round(float(elbo_score(model, xt, g, decoder_logvar(s.beta_rec)).mean()), 2)
    dec = trainer.sampling_decoder() if trainer is not None else model.decoder
    g = torch.Generator(device=device).manual_seed(1)

    def sampler(n: int):
        z = model.prior.sample(n, g, device)
        if s.conditional:
            y = torch.randint(0, model.n_classes, (n,), generator=g, device=device)
            return dec(z, torch.nn.functional.one_hot(y, model.n_classes).float()).float()
        return dec(z).float()

    real = to_float(train.images[:n_real], device)
    if s.dataset in ("mnist", "fmnist"):
        net = load_feature_net(device=device)
        fd = frechet_distance(real, sampler, net, n_fake=n_fake, device=device)
        res["frechet"] = {"value": round(fd, 3), "feature_net": "FeatureNet (sivae_core/assets, 64-d, eval mode)",
                          "n_fake": n_fake, "n_real": len(real), "real": "training set"}
        with torch.no_grad():
            res["samples_recognized"] = {**recognized_classes(sampler(2000), net, s.dataset), "n": 2000,
                                         "classifier": "FeatureNet, softmax > 0.5 on one of the data set's classes"}
    if inception_available():
        fid = frechet_distance(real, sampler, inception_extractor(), n_fake=n_fake, device=device)
        res["fid_inception"] = {"value": round(fid, 3), "feature_net": "Inception-v3 pool3 2048-d (torchmetrics), eval mode",
                                "n_fake": n_fake, "n_real": len(real), "real": "training set"}
    else:
        res["fid_inception"] = None
    with torch.no_grad():
        if s.conditional:
            model.set_labels(test.labels[:4].to(device))
        save_grid(interpolate_grid(model, xt[:4], 8), out / "interpolation.png", nrow=8)
    return res


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--dataset", required=True, choices=DATASETS)
    ap.add_argument("--method", default="sivae", choices=IMAGE_METHODS)
    ap.add_argument("--fast", nargs="?", const="images", choices=FAST_BUDGETS,
                    help="a chapter's CPU budget instead of the paper's settings: the image chapter's (--fast or "
                         "--fast images) or the OOD chapter's models (--fast ood, MNIST-like data)")
    ap.add_argument("--epochs", type=float)
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--subset", type=int, help="train on the first K training images")
    ap.add_argument("--conditional", action="store_true", help="class-conditional model (one-hot labels)")
    ap.add_argument("--channels", type=int, nargs="+")
    ap.add_argument("--z-dim", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--beta-rec", type=float)
    ap.add_argument("--beta-kl", type=float)
    ap.add_argument("--beta-neg", type=float)
    ap.add_argument("--as-form", choices=["paper", "code"], help="AS-IntroVAE: the paper's Eq. 7-9 or the authors' code")
    ap.add_argument("--ema", type=float, help="decoder EMA decay for sampling (e.g. 0.999)")
    ap.add_argument("--max-cpu-minutes", type=float, help="stop before the process uses this much CPU time")
    ap.add_argument("--amp", choices=AMP_CHOICES, help="training precision (default auto: bf16 autocast on a GPU, fp32 "
                                                    "on a CPU; --fast ood: 'fast', bf16 also on a CPU with native bf16)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--root", help="dataset root (else $SIVAE_DATA, ./data, shared/data, torchvision download)")
    ap.add_argument("--n-fake", type=int, help="generated images for the Frechet distance (default 50,000; fast 2,000)")
    ap.add_argument("--grid-every", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--results", help="also write metrics.json with provenance to this file (book/results/images_*.json)")


def run(a: argparse.Namespace) -> int:
    s = settings(a.dataset, a.method, a.fast or False, epochs=a.epochs, iterations=a.iterations, subset=a.subset,
                 conditional=a.conditional or None, channels=a.channels, z_dim=a.z_dim, batch_size=a.batch_size,
                 lr=a.lr, as_form=a.as_form, beta_rec=a.beta_rec, beta_kl=a.beta_kl, beta_neg=a.beta_neg,
                 ema_decay=a.ema, seed=a.seed, amp=a.amp,
                 max_cpu_seconds=a.max_cpu_minutes * 60 if a.max_cpu_minutes else None)
    out = Path(a.out)
    model, trainer, info = train_images(s, out, str(device_of(a)), a.root, not a.no_progress, a.compile, a.grid_every,
                                        command=command_line())
    dev = next(model.parameters()).device
    n_fake = a.n_fake or (2000 if a.fast else 50000)
    metrics = {"dataset": a.dataset, "method": a.method, "fast": a.fast, "budget": info,
               **evaluate(model, trainer, s, out, a.root, n_fake=n_fake,
                          n_real=10000 if a.fast else 50000, device=dev)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if a.results:
        write_results(a.results, metrics, device=dev)
    print(json.dumps(metrics, indent=2))
    return 0
