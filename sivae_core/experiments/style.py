"""Style-based Soft-IntroVAE, grown progressively on the book's one trainer (Daniel & Tamar 2021, Sec. 6.3 and
Appendix 9.2.2; progressive growing after Karras et al. 2018, the decoder after Karras et al. 2019, the encoder
after Pidhorskyi et al. 2020).

Nothing here trains differently from the other chapters: :class:`~sivae_core.training.Trainer` runs Algorithm 2
with the unchanged :class:`~sivae_core.objectives.SoftIntroVAE` (the first ``vae_epochs`` as a plain VAE). One step
hook, :class:`ProgressiveHook`, moves the run along its :class:`~sivae_core.training.progressive.ProgressiveSchedule`
before every step, from the number of images seen alone, so a resumed run, a one-process run and an N-process run
stand at the same place. ``python -m sivae_core.style`` (or ``python -m sivae_core style``) is the command,
the same under ``torchrun --standalone --nproc-per-node N -m sivae_core.style ...``.

:func:`settings` holds the presets: ``cpu32`` (the CPU fast mode, 4 -> 32 on the 10k CelebA faces in minutes),
``gpu64`` (one GPU, 64x64, minutes) and ``paper`` (256x256, the authors' schedule and batches). The losses are the
authors' CelebA-HQ settings: beta_kl 0.2, beta_rec 0.05 (0.1 for FFHQ: the appendix; the authors' README swaps
the two), beta_neg per resolution, and a fixed scale ``s = 5e-6`` instead of ``1 / input_dim`` (their code), so
the balance of the terms does not change as the images grow.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.optim.swa_utils import get_ema_multi_avg_fn

from ..cli import device_of
from ..data.face_sampler import FaceSampler
from ..models.base import seeded
from ..models.style import PRESETS, StyleConfig, StyleVAE, fade_real, resolutions_up_to
from ..models.style.model import ADAM_BETAS
from ..objectives import SoftIntroVAE
from ..training.callbacks import Callback
from ..training.distributed import Shard, init_distributed
from ..training.precision import autocast_dtype
from ..training.progressive import FAST_PRESETS, PAPER_BATCH, PAPER_BETA_NEG, ProgressiveSchedule, uniform_schedule
from ..training.trainer import TrainConfig, Trainer

__all__ = ["StyleSettings", "settings", "model_config", "build_model", "schedule_of", "ProgressiveFaces",
           "ProgressiveHook", "StyleRun", "train_style", "add_arguments", "run"]

#: The paper's budget (Appendix 9.2.2): 230 epochs of CelebA-HQ, counted here as all 30,000 of its images per epoch,
#: about 3% more than the 29,000 the paper trains on (1,000 are its test split); fractions of it are thus slightly
#: below fractions of 230 x 29,000. Kept as it is: the stored records computed their fractions with it.
PAPER_IMAGES = 230 * 30_000


@dataclass
class StyleSettings:
    """Everything that defines one progressive run (model preset, schedule, losses, EMA, split)."""

    preset: str = "cpu32"
    #: Final resolution (at most the preset model's).
    resolution: int = 32
    epochs_per_resolution: float = 0.5
    #: Epochs at the final resolution (the paper: 50 of CelebA-HQ's 230 at 256x256).
    final_epochs: float = 1.0
    #: Global batch per resolution 4, 8, ... (the last value repeats).
    batches: tuple[int, ...] = (32, 32, 16, 16)
    lr: float = 1.5e-3
    beta_neg: tuple[float, ...] = PAPER_BETA_NEG
    vae_epochs: float = 0.0
    #: The reconstruction weight; with ``rec_per_image`` the weight at the final resolution.
    beta_rec: float = 0.05
    #: Scale ``beta_rec`` at each resolution ``R`` below the final one by ``(resolution / R)^2``. The error is summed
    #: over the pixels, so one ``beta_rec`` for every resolution (the authors' runs, and every preset) weighs an
    #: image's reconstruction 4x less against the KL terms at each halving of the resolution; with this the balance
    #: per image is the same at every resolution (see :func:`settings`; at 32x32 it made the samples worse).
    rec_per_image: bool = False
    beta_kl: float = 0.2
    s: float = 5e-6
    gamma_r: float = 1e-8
    #: Half-life of the decoder's EMA in training images: decay ``0.5 ** (batch / half_life)`` per step (StyleGAN
    #: and the authors: 10,000 images; the fast presets shorten it with their budget).
    ema_half_life: float = 10_000.0
    #: The last ``holdout`` prepared images are never trained on (reconstructions, Frechet distances).
    holdout: int = 1000
    #: "auto": bf16 autocast and channels-last on a GPU, fp32 on a CPU.
    amp: str = "auto"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def settings(preset: str = "cpu32", world: int = 1, **overrides: Any) -> StyleSettings:
    """The preset's settings, then ``overrides`` (``None`` values are ignored).

    * ``cpu32``: the CPU config, :data:`~sivae_core.training.progressive.FAST_PRESETS` ``cpu32`` with 1 epoch per
      resolution and 2 at 32x32 (about 12 CPU-minutes on the 9,000 training faces), EMA half-life 1,000 images.
    * ``gpu64``: the one-GPU config at 64x64 and ``FAST_PRESETS["gpu64"]``, EMA half-life 2,000 images.
    * ``paper``: the paper's model, 30 epochs per resolution, 50 at 256x256, the authors' batches for 1 GPU (4 with
      ``world >= 4``), one plain-VAE epoch, EMA half-life 10,000 images.

    **The fast presets' one change of loss weights.** The reconstruction error is summed over the pixels, so at a
    final resolution ``R`` the authors' ``beta_rec = 0.05`` weighs an image ``(256 / R)^2`` times less against the
    KL terms than at 256x256, and a run of minutes then learns to separate fakes by their KL (hundreds of nats)
    instead of reconstructing. The fast presets keep the authors' balance per image, ``beta_rec = 0.05 (256 / R)^2``
    (3.2 at 32x32), and train their first epoch (the 4x4 phase) as a plain VAE. Measured during development on
    3,000 faces, 4 -> 16 in 100 CPU-s, FD-MNISTnet of EMA samples at 16x16 (233 untrained, floor 3.3): the
    authors' weights 222 (258 with the VAE epoch; reconstructions ignore the input), the per-image ``beta_rec`` 215,
    with the VAE epoch 194 (face-like blobs that follow the input's light); ``s = 1 / (3 R^2)`` instead (the rule
    5e-6 follows at 256) collapses the posterior (real KL ~1 nat; 199, 204 with the VAE epoch).

    The same rule applied at every resolution of a run, not only at its final one, is ``rec_per_image=True``
    (e.g. ``gpu64``: 204.8 at 4x4 down to 0.8 at 64x64). No preset sets it: measured in chapter 12, it matched the
    preset at 16x16 but doubled the CPU run's Frechet distance at 32x32 (162 against 76).
    """
    fast = preset in ("cpu32", "gpu64")
    if preset == "cpu32":
        _, _, batches, _ = FAST_PRESETS["cpu32"]
        s = StyleSettings("cpu32", 32, 1.0, 2.0, batches, ema_half_life=1_000.0, vae_epochs=1.0)
    elif preset == "gpu64":
        _, epochs, batches, final = FAST_PRESETS["gpu64"]
        s = StyleSettings("gpu64", 64, epochs, final, batches, ema_half_life=2_000.0, vae_epochs=1.0)
    elif preset == "paper":
        s = StyleSettings("paper", 256, 30.0, 50.0, PAPER_BATCH[4 if world >= 4 else 1], vae_epochs=1.0)
    else:
        raise ValueError(f"unknown preset {preset!r}; choose cpu32, gpu64 or paper")
    for k, v in overrides.items():
        if v is not None:
            setattr(s, k, tuple(v) if k in ("batches", "beta_neg") else v)
    if fast and overrides.get("beta_rec") is None:
        s.beta_rec = 0.05 * (256 / s.resolution) ** 2
    model_config(s)  # validates the resolution
    return s


def model_config(s: StyleSettings) -> StyleConfig:
    """The preset's model, cut at ``s.resolution`` (the blocks above it are never built)."""
    cfg = PRESETS[s.preset]()
    if s.resolution > cfg.resolution:
        raise ValueError(f"the {s.preset} model grows up to {cfg.resolution}x{cfg.resolution}, not {s.resolution}")
    levels = len(resolutions_up_to(s.resolution))
    return replace(cfg, resolution=s.resolution, channels=cfg.channels[:levels])


def build_model(s: StyleSettings) -> StyleVAE:
    """The model of ``s``, initialised from ``s.seed`` alone."""
    return seeded(lambda: StyleVAE(model_config(s)), s.seed)


def schedule_of(s: StyleSettings, n_train: int) -> ProgressiveSchedule:
    resolutions = resolutions_up_to(s.resolution)
    n = len(resolutions)
    pad = lambda values: [values[min(i, len(values) - 1)] for i in range(n)]  # the last value repeats
    recs = [s.beta_rec * (s.resolution / r) ** 2 for r in resolutions] if s.rec_per_image else None
    return uniform_schedule(n_train, s.resolution, s.epochs_per_resolution, pad(s.batches), s.lr, pad(s.beta_neg),
                            final_epochs=s.final_epochs, vae_epochs=s.vae_epochs, beta_rec=recs)


class ProgressiveFaces:
    """The face sampler at the schedule's stage: real images at the current resolution, in the model's ``dtype``,
    blended during a fade-in exactly as the networks are (:func:`~sivae_core.models.style.fade_real`)."""

    def __init__(self, faces: FaceSampler, dtype: torch.dtype = torch.float32):
        self.faces, self.alpha, self.dtype = faces, 1.0, dtype

    def set_stage(self, resolution: int, alpha: float) -> None:
        if self.faces.resolution != resolution:
            self.faces.set_resolution(resolution)
        self.alpha = alpha

    def __call__(self, batch_size: int, generator: torch.Generator, rows: slice | None = None) -> torch.Tensor:
        return fade_real(self.faces(batch_size, generator, rows).to(self.dtype), self.alpha)

    def state_dict(self) -> dict[str, Any]:
        return self.faces.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.faces.load_state_dict(state)


class ProgressiveHook:
    """The trainer's step hook of a progressive run: before every step, in every process, read the schedule at
    ``trainer.images_seen`` and set the stage (model, EMA copy, data), the global batch, both learning rates,
    ``beta_neg`` (and ``beta_rec``, where the schedule has one per resolution) and the EMA's decay; announce the
    step to the model's random source with this process's rank.

    Both Adam states are reset at the *first step of a phase* (the authors reset them when the resolution
    grows), decided from the schedule and the images seen alone: a run resumed mid-phase keeps the Adam state
    of its checkpoint, and a run resumed exactly at a boundary resets as the uninterrupted run does.
    ``on_phase_end(trainer, phase)`` runs just before that reset, while the model still stands at the end of
    the previous phase (the sample grids of each resolution).
    """

    def __init__(self, schedule: ProgressiveSchedule, model: StyleVAE, faces: ProgressiveFaces, seed: int,
                 shard: Shard, ema_half_life: float, on_phase_end: Callable[[Trainer, int], None] | None = None):
        self.schedule, self.model, self.faces, self.seed, self.shard = schedule, model, faces, seed, shard
        self.ema_half_life, self.on_phase_end = ema_half_life, on_phase_end
        self.first_steps = schedule.step_starts

    def __call__(self, trainer: Trainer) -> None:
        seen = trainer.images_seen
        st = self.schedule.state(seen)
        if st.phase > 0 and seen == self.first_steps[st.phase]:
            if self.on_phase_end is not None:
                self.on_phase_end(trainer, st.phase - 1)
            trainer.reset_optimizers()
        stage = self.model.set_stage(st.resolution, st.alpha)
        self.faces.set_stage(st.resolution, st.alpha)
        cfg = trainer.config
        cfg.batch_size, cfg.lr_encoder, cfg.lr_decoder = st.batch, st.lr, st.lr
        for opt in (trainer.opt_e, trainer.opt_d):
            for group in opt.param_groups:
                group["lr"] = st.lr
        trainer.objective.hparams["beta_neg"] = st.beta_neg
        if st.beta_rec is not None:
            trainer.objective.hparams["beta_rec"] = st.beta_rec
        if trainer.ema is not None:
            trainer.ema.module.stage = stage
            cfg.ema_decay = 0.5 ** (st.batch / self.ema_half_life)
            trainer.ema.multi_avg_fn = get_ema_multi_avg_fn(cfg.ema_decay)
        self.model.begin_step(trainer.iteration, self.seed, self.shard.rank, self.shard.world,
                              st.batch // self.shard.world)


def jsonl_log(path: Path, schedule: ProgressiveSchedule, model: StyleVAE) -> Callback:
    """A callback appending one JSON object per log step to ``path``: ``step``, ``images_seen``, ``resolution``,
    ``alpha`` (of the step just taken), ``enc_loss``, ``dec_loss`` (the joint loss twice during the VAE warm-up),
    the loss terms, and the wall time of the run."""
    start = time.perf_counter()

    def log(trainer: Trainer, iteration: int, record: dict[str, Any]) -> None:
        vae = "loss_joint" in record
        st = schedule.state(trainer.images_seen - trainer.config.batch_size)
        line = {"step": iteration, "images_seen": trainer.images_seen, "resolution": model.stage.resolution,
                "alpha": round(model.stage.alpha, 6), "batch": trainer.config.batch_size, "lr": st.lr,
                "beta_neg": st.beta_neg, "beta_rec": trainer.objective.hparams["beta_rec"],
                "objective": "vae" if vae else "sivae",
                "enc_loss": record["loss_joint" if vae else "loss_encoder"],
                "dec_loss": record["loss_joint" if vae else "loss_decoder"],
                **{k: v for k, v in record.items() if "/" in k}, "wall_s": round(time.perf_counter() - start, 2)}
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")

    return log


def truncate_log(path: Path, step: int) -> None:
    """Keep the lines of ``path`` up to ``step``: a run resumed from its checkpoint logs the later steps again."""
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        path.write_text("".join(ln + "\n" for ln in lines))


@dataclass
class StyleRun:
    """A trained (or resumed) run: its model, trainer, schedule, data and what it cost."""

    settings: StyleSettings
    model: StyleVAE
    trainer: Trainer
    schedule: ProgressiveSchedule
    faces: FaceSampler
    info: dict[str, Any]


def train_style(s: StyleSettings, data: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                device: torch.device | str = "cpu", shard: Shard | None = None, steps: int | None = None,
                log_every: int = 50, checkpoint_every: int = 500, progress: bool = True,
                callbacks: Sequence[Callback] = (),
                on_phase_end: Callable[[Trainer, int], None] | None = None) -> StyleRun:
    """Train (or resume from ``out/checkpoint.pt``) the run ``s`` on the prepared faces in ``data`` until the
    schedule ends or ``steps`` steps have been taken in total. With ``out``, the main process writes
    ``log.jsonl`` and the checkpoint; ``on_phase_end`` (main process) runs at the end of every resolution."""
    dev, shard = torch.device(device), shard if shard is not None else Shard()
    prepared = FaceSampler(data, 4, device=dev)
    n_train = len(prepared) - s.holdout
    if n_train < max(s.batches):
        raise ValueError(f"{data} holds {len(prepared)} images; with {s.holdout} held out, too few to train on")
    faces = FaceSampler(data, 4, device=dev, count=n_train)
    schedule, model = schedule_of(s, n_train), build_model(s).to(dev)
    precision = autocast_dtype(s.amp, dev)
    cfg = TrainConfig(iterations=schedule.iterations, batch_size=s.batches[0], lr_encoder=s.lr, lr_decoder=s.lr,
                      adam_betas=ADAM_BETAS, lr_milestones=(), vae_warmup=schedule.vae_steps, seed=s.seed,
                      log_every=log_every, checkpoint_every=checkpoint_every if out else 0, progress=progress,
                      amp_dtype=precision, channels_last=dev.type == "cuda", ema_decay=0.5)
    objective = SoftIntroVAE(beta_rec=s.beta_rec, beta_kl=s.beta_kl, beta_neg=s.beta_neg[0], gamma_r=s.gamma_r, s=s.s)
    sampler = ProgressiveFaces(faces, next(model.parameters()).dtype)
    out_dir = Path(out) if out is not None else None
    callbacks = list(callbacks)
    if out_dir is not None and shard.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        callbacks.insert(0, jsonl_log(out_dir / "log.jsonl", schedule, model))
    hook = ProgressiveHook(schedule, model, sampler, s.seed, shard, s.ema_half_life,
                           on_phase_end if shard.is_main else None)
    trainer = Trainer(model, objective, sampler, cfg, checkpoint_path=out_dir / "checkpoint.pt" if out_dir else None,
                      callbacks=callbacks, step_hooks=[hook], shard=shard)
    if trainer.checkpoint_path is not None and trainer.checkpoint_path.exists():
        trainer.load_checkpoint(trainer.checkpoint_path)
    if out_dir is not None and shard.is_main:
        truncate_log(out_dir / "log.jsonl", trainer.iteration)
    total = schedule.iterations if steps is None else min(steps, schedule.iterations)
    cpu0, wall0, seen0 = time.process_time(), time.perf_counter(), trainer.images_seen
    trainer.fit(iterations=total, resume=False)
    model.end_step()
    info = {"iterations": trainer.iteration, "schedule_iterations": schedule.iterations,
            "images_seen": trainer.images_seen, "epochs": trainer.images_seen / n_train, "train_images": n_train,
            "held_out_images": s.holdout, "finished": trainer.iteration >= schedule.iterations,
            "stage": {"resolution": model.stage.resolution, "alpha": model.stage.alpha},
            "cpu_seconds": round(time.process_time() - cpu0, 1), "wall_seconds": round(time.perf_counter() - wall0, 1),
            "images_this_session": trainer.images_seen - seen0, "torch_threads": torch.get_num_threads(),
            "processes": shard.world, "device": str(dev), "precision": precision or "fp32",
            "fraction_of_paper_images": trainer.images_seen / PAPER_IMAGES}
    return StyleRun(s, model, trainer, schedule, faces, info)


# ---------------------------------------------------------------------------------------------- command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder prepared by python -m sivae_core.style.prepare")
    p.add_argument("--preset", default="cpu32", choices=("cpu32", "gpu64", "paper"), help="model and schedule")
    p.add_argument("--resolution", type=int, help="final resolution (default: the preset's)")
    p.add_argument("--steps", type=int, help="stop after this many optimizer steps in total (resume by rerunning)")
    p.add_argument("--epochs-per-resolution", type=float, help="epochs per resolution (half of them fade in)")
    p.add_argument("--final-epochs", type=float, help="epochs at the final resolution")
    p.add_argument("--batch", type=int, nargs="+", help="global batch per resolution 4, 8, ... (the last repeats)")
    p.add_argument("--vae-epochs", type=float, help="plain-VAE epochs at the start")
    p.add_argument("--beta-rec", type=float, help="0.05 for CelebA-HQ (default), 0.1 for FFHQ")
    p.add_argument("--rec-per-image", action="store_true", help="scale beta_rec by (final / R)^2 at each resolution "
                   "R, keeping an image's reconstruction weight against the KLs the same at every resolution")
    p.add_argument("--holdout", type=int, help="last prepared images never trained on (default 1000)")
    p.add_argument("--log-every", type=int, default=50, help="log.jsonl gets one line every N steps")
    p.add_argument("--checkpoint-every", type=int, default=500, help="checkpoint every N steps (and at the end)")
    p.add_argument("--fd", type=int, default=0, help="Frechet distance of N EMA samples against the held-out faces "
                   "at the start, after each resolution and at the end (0: none)")
    p.add_argument("--record", help="also write the run's record with provenance to this JSON file")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="float64 for equivalence checks: float32 runs part at the rounding level within a few steps "
                   "(another thread count does it too), which this model's Adam(0, 0.99) steps amplify")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..results import provenance
    from .style_eval import finish_run, phase_end_writer

    dev = device_of(args)
    if args.dtype == "float64":
        torch.set_default_dtype(torch.float64)
    shard = init_distributed(dev)
    prov = provenance(dev) if args.record else {}  # taken at the start: the commit that trains
    s = settings(args.preset, shard.world, resolution=args.resolution, epochs_per_resolution=args.epochs_per_resolution,
                 final_epochs=args.final_epochs, batches=args.batch, vae_epochs=args.vae_epochs,
                 beta_rec=args.beta_rec, rec_per_image=args.rec_per_image or None, holdout=args.holdout,
                 seed=args.seed)
    out = Path(args.out)
    evaluation: dict[str, Any] = {}
    on_end = phase_end_writer(out, args.data, s, args.fd, evaluation)
    run_ = train_style(s, args.data, out, dev, shard, args.steps, args.log_every, args.checkpoint_every,
                       progress=not args.no_progress, on_phase_end=on_end)
    if shard.is_main:
        finish_run(run_, out, args.data, args.fd, evaluation, prov, args.record)
    if shard.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


def settings_dict(s: StyleSettings) -> dict[str, Any]:
    """Plain values of ``s`` for records."""
    return {k: v for k, v in asdict(s).items() if k != "extra"}
