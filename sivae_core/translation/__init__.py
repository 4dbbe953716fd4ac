"""Unsupervised image translation on Cars3D: Soft-IntroVAE, the beta-VAE and an autoencoder on LORD's
two-encoder AdaIN model (Daniel & Tamar 2021, Sec. 6.4, Appendix 9.3, Table 4).

    python -m sivae_core.translation --method sivae --fast --data ../shared/data/cars3d/cars64 --out runs/tr_sivae
    python -m sivae_core.translation --method vae --data DIR --out runs/tr_vae --device cuda   # paper: 400 epochs

Trains on the 163 training cars (resumable: rerun the same command; a finished run is not retrained) and
writes ``model.pt``, ``checkpoint.pt``, ``transfer_matrix.png`` and ``metrics.json``: content transfer on
the 20 held-out cars against the ground truth (MSE, PSNR, SSIM; LPIPS with ``--lpips``) beside the two
baselines (class image, content image), the KL of each code on the held-out cars, linear probes of what
each code predicts, and the budget as a fraction of the paper's 400 epochs. Every file names its loss: the
pixel loss (sum of squared errors) unless ``--perceptual`` asks for the VGG perceptual loss of the paper.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .. import VAE, TensorSampler, TrainConfig, Trainer, seeded
from ..data.cars3d import Cars3D, find_cars3d, load_cars3d
from ..models.two_code import TwoCodeVAE
from ..objectives import Objective
from ..training.callbacks import Callback
from ..two_code_objectives import Autoencoder, TwoCodeSoftIntroVAE
from .evaluate import evaluate_translation, write_matrix

__all__ = [
    "FAST",
    "METHODS",
    "PAPER_EPOCHS",
    "PAPER_TABLE4",
    "TranslationSettings",
    "add_arguments",
    "build_model",
    "evaluate_translation",
    "load_run",
    "objective_for",
    "run",
    "run_record",
    "settings",
    "train_translation",
]

METHODS = ("sivae", "vae", "ae")
#: Training length of the paper's Cars3D runs (Appendix 9.3); budgets are reported as a fraction of it.
PAPER_EPOCHS = 400
#: Table 4 of the paper: content-transfer error on Cars3D held-out cars, LPIPS (lower is better); the paper's
#: S-IntroVAE trains with the VGG perceptual loss for 400 epochs, the others are class-supervised.
PAPER_TABLE4: dict[str, float] = {"Szabo et al. (supervised)": 0.137, "ML-VAE (supervised)": 0.132,
                                  "Cycle-VAE (supervised)": 0.141, "DrNet (supervised)": 0.095,
                                  "LORD (supervised)": 0.078, "S-IntroVAE (unsupervised)": 0.084}


@dataclass
class TranslationSettings:
    """Everything that defines one run. Defaults: the paper's Cars3D setting (Appendix 9.3)."""

    method: str = "sivae"
    class_dim: int = 256
    content_dim: int = 128
    enc_channels: tuple[int, ...] = (64, 128, 256, 256, 256)
    enc_hidden: int = 256
    dec_channels: tuple[int, ...] = (256, 256, 256, 256)
    dec_hidden: int = 64
    epochs: float = PAPER_EPOCHS
    iterations: int | None = None
    batch_size: int = 64
    lr: float = 1e-4
    #: Fractions of the run after which the learning rate is multiplied by 0.1 (the paper keeps it constant).
    lr_drops: tuple[float, ...] = ()
    #: S-IntroVAE only: the first iterations train the plain beta-VAE (the authors' code calls it ``num_vae``).
    vae_warmup: int = 0
    beta_rec: float = 0.5
    beta_kl: float = 1.0
    beta_neg_class: float = 1024.0
    beta_neg_content: float = 2048.0
    gamma_r: float = 1e-8
    #: "pixel" (sum of squared errors) or "perceptual" (the paper's VGG loss; needs the VGG16 weights).
    loss: str = "pixel"
    #: Autocast dtype: "auto" is bf16 on a GPU and fp32 on a CPU.
    amp: str = "auto"
    seed: int = 0

    def planned_iterations(self, n_train: int) -> int:
        """``iterations`` if given, else ``epochs`` passes over ``n_train`` images in whole batches."""
        return self.iterations or max(1, round(self.epochs * (n_train // self.batch_size)))


#: The fast budget (``--fast``): about 15 CPU-minutes of S-IntroVAE on one thread, 0.01 of the paper's 400
#: epochs. The narrow model (0.5M parameters instead of 16M) costs 0.2 s a beta-VAE step and 1.0 s an
#: S-IntroVAE step (batch 32), and from scratch the introspective game learns slowly: measured on the held-out
#: cars during development, 400 S-IntroVAE iterations at lr 1e-3 (430 CPU-s) still decoded every code to the
#: blurry mean car (linear probes at chance), and starting the game at lr 1e-3 after 1,000 beta-VAE iterations
#: doubled the reconstruction error within 100 iterations. So the budget spends its first 1,500 iterations on
#: the plain beta-VAE at lr 1e-3 (the authors' code calls this ``num_vae``) and plays the game for the last 500
#: at lr 1e-4, the paper's rate: transfer MSE 0.020 and SSIM 0.77 against baselines of 0.041 / 0.72 or worse.
#: The beta-VAE and the autoencoder get the same iterations and learning rates.
FAST: dict[str, Any] = {
    "enc_channels": (8, 16, 32, 32, 32), "enc_hidden": 128, "dec_channels": (32, 32, 16, 8), "dec_hidden": 8,
    "iterations": 2000, "batch_size": 32, "lr": 1e-3, "lr_drops": (0.75,), "vae_warmup": 1500,
}


def settings(method: str = "sivae", fast: bool = False, **overrides: Any) -> TranslationSettings:
    """The paper's setting, or with ``fast`` the CPU budget :data:`FAST`; ``overrides`` (not None) set fields last."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    s = TranslationSettings(method=method)
    chosen = {k: v for k, v in overrides.items() if v is not None}  # None: keep the preset's value
    for key, value in {**(FAST if fast else {}), **chosen}.items():
        setattr(s, key, tuple(value) if isinstance(value, list) else value)
    if s.loss not in ("pixel", "perceptual"):
        raise ValueError(f"loss must be 'pixel' or 'perceptual', got {s.loss!r}")
    return s


def build_model(s: TranslationSettings) -> TwoCodeVAE:
    """The two-encoder AdaIN model of ``s``, its initial weights fixed by ``s.seed``."""
    return seeded(lambda: TwoCodeVAE(3, 64, s.class_dim, s.content_dim, s.enc_channels, s.enc_hidden,
                                     s.dec_channels, s.dec_hidden), s.seed)


def objective_for(s: TranslationSettings, scale: float | None = None) -> Objective:
    """Soft-IntroVAE with a beta_neg per code, the beta-VAE (``rec + KL_class + KL_content``) or the autoencoder.
    ``scale``: Soft-IntroVAE's ``s`` when the trained model's input is not the image (the perceptual view)."""
    if s.method == "sivae":
        return TwoCodeSoftIntroVAE(s.class_dim, s.beta_rec, s.beta_kl, s.beta_neg_class, s.beta_neg_content, s.gamma_r,
                                   s=scale)
    if s.method == "vae":
        return VAE(s.beta_rec, s.beta_kl)
    return Autoencoder(s.beta_rec)


def _kl_curve(model: TwoCodeVAE, probe: torch.Tensor):
    """A trainer callback adding the KL of each code on held-out images to every log record (so the
    curves travel with the trainer's history into checkpoints and resume with it)."""
    from ..metrics.transfer import code_kl

    def record_kl(trainer: Trainer, iteration: int, record: dict[str, Any]) -> None:
        kl = code_kl(model, probe)
        record["test_kl_class"], record["test_kl_content"] = round(kl["kl_class"], 4), round(kl["kl_content"], 4)

    return record_kl


def _trainer(s: TranslationSettings, model: TwoCodeVAE, images: torch.Tensor, dev: torch.device,
             out: Path | None, callbacks: list, progress: bool, log_every: int, checkpoint_every: int) -> Trainer:
    """The book's trainer for ``s`` on uint8 ``images``. With the perceptual loss it trains a view of the
    model on ``[image, VGG features]`` (:mod:`sivae_core.translation.perceptual`), with ``s = 1 / image_dim``."""
    sampler = TensorSampler(images.to(dev) if dev.type == "cuda" else images, device=dev)
    trained, scale = model, None
    if s.loss == "perceptual":
        from . import perceptual

        vgg = perceptual.VGG16Features().load(perceptual.require_vgg16()).to(dev)
        trained, sampler = perceptual.PerceptualView(model, vgg), perceptual.PerceptualSampler(sampler, vgg)
        scale = 1.0 / model.input_dim
    iterations = s.planned_iterations(len(images))
    cfg = TrainConfig(iterations=iterations, batch_size=s.batch_size, lr_encoder=s.lr, lr_decoder=s.lr,
                      lr_milestones=tuple(round(f * iterations) for f in s.lr_drops),
                      vae_warmup=s.vae_warmup if s.method == "sivae" else 0, seed=s.seed, log_every=log_every,
                      checkpoint_every=checkpoint_every if out else 0, progress=progress, channels_last=True,
                      amp_dtype={"auto": "bf16" if dev.type == "cuda" else None, "fp32": None}.get(s.amp, s.amp))
    return Trainer(trained, objective_for(s, scale), sampler, cfg, callbacks=callbacks,
                   checkpoint_path=out / "checkpoint.pt" if out else None)


def train_translation(s: TranslationSettings, train: Cars3D, out: str | Path | None = None,
                      device: str | torch.device = "cpu", test: Cars3D | None = None, progress: bool = True,
                      log_every: int = 25, checkpoint_every: int = 100,
                      callbacks: Sequence[Callback] = ()) -> tuple[TwoCodeVAE, Trainer, dict[str, Any]]:
    """Train one model on ``train`` with the book's trainer; with ``out``, checkpoint and resume there (a
    finished run loads and trains nothing). ``test`` adds KL curves of both codes to the history, measured
    on every 8th view of its cars; ``callbacks`` are added to the trainer's (e.g. a time budget). Returns
    ``(model, trainer, info)``; ``info`` is the budget spent."""
    dev = torch.device(device)
    model = build_model(s).to(dev)
    images, _, _ = train.flat()
    out = Path(out) if out is not None else None
    curve = [_kl_curve(model, test.images[:, ::8].reshape(-1, *test.images.shape[2:]))] if test else []
    trainer = _trainer(s, model, images, dev, out, curve + list(callbacks), progress, log_every, checkpoint_every)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    trainer.fit()
    prior_cpu = 0.0  # a resumed run adds the CPU time of the runs before it
    if out is not None and (out / "train.json").exists():
        prior_cpu = json.loads((out / "train.json").read_text())["info"]["cpu_seconds_total"]
    cpu = time.process_time() - cpu0
    epochs = trainer.iteration * s.batch_size / len(images)
    info = {"iterations": trainer.iteration, "planned_iterations": trainer.config.iterations,
            "batch_size": s.batch_size, "train_images": len(images), "epochs": float(f"{epochs:.6g}"),
            "paper_epochs": PAPER_EPOCHS, "fraction_of_paper": float(f"{epochs / PAPER_EPOCHS:.6g}"),
            "cpu_seconds": round(cpu, 1), "cpu_seconds_total": round(prior_cpu + cpu, 1),
            "wall_seconds": round(time.perf_counter() - wall0, 1), "torch_threads": torch.get_num_threads(),
            "device": str(dev)}
    info["description"] = budget_description(info)
    model.eval()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        torch.save({"settings": asdict(s), "model_config": model.config, "model": model.state_dict(), "info": info},
                   out / "model.pt")
        (out / "train.json").write_text(json.dumps({"settings": asdict(s), "info": info}, indent=2) + "\n")
    return model, trainer, info


def budget_description(info: dict[str, Any]) -> str:
    """The budget in words, as :func:`sivae_core.results.budget_line` prints it beside every stored number."""
    return (f"{info['iterations']:,} iterations x batch {info['batch_size']} = {info['epochs']:.3g} epochs of "
            f"{info['train_images']:,} Cars3D images (the paper: {info['paper_epochs']} epochs)")


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[TwoCodeVAE, dict[str, Any]]:
    """The trained model of a run folder (eval mode) and its stored record."""
    state = torch.load(Path(run_dir) / "model.pt", map_location=device, weights_only=False)
    model = TwoCodeVAE.from_config(state["model_config"])
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


# ------------------------------------------------------------------------------------------ command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default="sivae", choices=METHODS,
                        help="sivae: Soft-IntroVAE, a beta_neg per code; vae: beta-VAE; ae: autoencoder")
    parser.add_argument("--fast", action="store_true", help="the CPU budget (FAST) instead of the paper's 400 epochs")
    parser.add_argument("--data", help="folder of car_NNN_mesh.mat files (64x64 or the original 128x128; "
                                       "default: $SIVAE_DATA/cars3d/cars64 or ../shared/data/cars3d/cars64)")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--vae-warmup", type=int, help="S-IntroVAE: iterations of the plain beta-VAE first")
    parser.add_argument("--perceptual", action="store_true", help="train with the paper's VGG perceptual loss "
                        "(needs the VGG16 ImageNet weights; fails offline with what to download)")
    parser.add_argument("--lpips", action="store_true", help="also score LPIPS (needs torchvision and AlexNet weights)")
    parser.add_argument("--n-pairs", type=int, default=2000, help="random held-out transfer pairs to score")
    parser.add_argument("--log-every", type=int, default=25, help="iterations between log records and KL-curve points")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="iterations between checkpoints")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--results", help="also write metrics.json with provenance to this file (book/results/...)")


def _settings_from(args: argparse.Namespace) -> TranslationSettings:
    return settings(args.method, args.fast, iterations=args.iterations, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, vae_warmup=args.vae_warmup, seed=args.seed,
                    loss="perceptual" if args.perceptual else None)


def run(args: argparse.Namespace) -> int:
    from ..cli import device_of
    from ..results import provenance, write_results

    command = "python -m sivae_core.translation " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    prov = provenance(device_of(args), command)  # taken before training: the commit that trains
    s = _settings_from(args)
    device = device_of(args)
    data = Path(args.data) if args.data else find_cars3d()
    if s.loss == "perceptual":
        from .perceptual import require_vgg16

        require_vgg16()  # fail before loading data and training when the weights are missing
    lpips = None
    if args.lpips:
        from ..metrics.transfer import lpips_scorer

        lpips = lpips_scorer(device)  # fails before training when the weights are missing
    train, test = load_cars3d(data, "train"), load_cars3d(data, "test")
    out = Path(args.out)
    model, trainer, info = train_translation(s, train, out, device, test, not args.no_progress, args.log_every,
                                             args.checkpoint_every)
    metrics = run_record(s, model, trainer, info, train, test, args.n_pairs, device, lpips, fast=args.fast)
    write_matrix(model, test, out / "transfer_matrix.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if args.results:
        results = Path(args.results)
        write_results(results, metrics, provenance_override=prov)
        write_matrix(model, test, results.with_name(results.stem + "_matrix.png"))
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("kl_curve", "settings")}, indent=2))
    return 0


def run_record(s: TranslationSettings, model: TwoCodeVAE, trainer: Trainer, info: dict[str, Any], train: Cars3D,
               test: Cars3D, n_pairs: int, device: str | torch.device, lpips: Any = None,
               fast: bool = False) -> dict[str, Any]:
    """``metrics.json`` of a trained run: its loss and settings, the budget ``info`` (its ``description`` and
    ``fraction_of_paper`` make it the record's budget block), every held-out score and the KL curves."""
    return {"method": s.method, "fast": fast, "loss": loss_description(s), "settings": asdict(s), "budget": info,
            **evaluate_translation(model, s, train, test, n_pairs, device, lpips),
            "kl_curve": [{k: r[k] for k in ("iteration", "test_kl_class", "test_kl_content") if k in r}
                         for r in trainer.history]}


def loss_description(s: TranslationSettings) -> str:
    """Which reconstruction loss trained a run, in words (every reported number carries it)."""
    if s.loss == "perceptual":
        return f"VGG16 perceptual loss (Johnson et al. 2016), beta_rec {s.beta_rec:g}"
    return f"pixel loss: per-image sum of squared errors, beta_rec {s.beta_rec:g}"

