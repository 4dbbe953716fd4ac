"""Evaluating a style-based run: held-out faces, a Frechet distance in a fixed offline feature space, and the
chapter's pictures (samples after each resolution, reconstructions, the 4-face interpolation, style mixing).

**Which Frechet distance.** No face feature network can be had offline (the paper's FID uses Inception-v3 on
50,000 samples at 256x256). The book's shipped :class:`~sivae_core.metrics.FeatureNet`, trained on MNIST and
Fashion-MNIST, is a *fixed* extractor: faces and samples are turned into grey 28x28 images (ITU-R 601 luma,
antialiased resize) and compared in its 64-d feature space. Its numbers ("FD-MNISTnet") are on their own scale,
comparable between runs of the book, never with FID; the distance between training and held-out faces gives
the floor a perfect model would reach with the same number of images.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.faces import read_manifest
from ..metrics.frechet import frechet_distance, load_feature_net
from ..models.style import StyleVAE
from ..models.style.decoder import StyleDecoder
from ..results import budget_block, write_results
from ..training.trainer import Trainer
from ..viz.grids import read_grid, save_grid
from ..viz.style import faces_figure, fixed_noise, progress_figure
from .style import PAPER_IMAGES, StyleRun, StyleSettings, build_model, settings_dict

__all__ = ["faces_at", "held_out_faces", "grey28", "face_fd", "ema_samples", "ema_model", "reconstruct",
           "input_dependence", "picture_spread_ratio", "mean_face", "reconstruction_dependence", "fd_summary", "throughput",
           "phase_end_writer", "finish_run", "FD_EXTRACTOR"]

FD_EXTRACTOR = ("FeatureNet (sivae_core.metrics.load_feature_net: MNIST + Fashion-MNIST classifier, 64-d features) "
                "on grey 28x28 versions (ITU-R 601 luma, antialiased bilinear resize) of images in [0, 1]")
#: Seeds of the fixed codes and noise of every picture and Frechet distance (the same in every run).
PICTURE_SEED, FD_SEED = 1234, 99


def faces_at(data: str | os.PathLike[str], resolution: int, rows: slice) -> Tensor:
    """Prepared faces ``rows`` at ``resolution`` in [-1, 1], read from the memory map."""
    entry = read_manifest(Path(data))["arrays"][str(resolution)]
    images = np.load(Path(data) / entry["file"], mmap_mode="r")
    return torch.from_numpy(np.array(images[rows])).float().div_(127.5).sub_(1.0)


def held_out_faces(data: str | os.PathLike[str], resolution: int, holdout: int, n: int | None = None) -> Tensor:
    """The first ``n`` (default: all) of the last ``holdout`` prepared faces, never trained on."""
    count = int(read_manifest(Path(data))["count"])
    first = count - holdout
    return faces_at(data, resolution, slice(first, first + (n if n is not None else holdout)))


def grey28(x: Tensor) -> Tensor:
    """Images in [-1, 1] -> grey 28x28 in [0, 1], the input of the offline feature network."""
    unit = ((x.float() + 1) / 2).clamp(0, 1)
    grey = (0.299 * unit[:, 0] + 0.587 * unit[:, 1] + 0.114 * unit[:, 2])[:, None]
    return F.interpolate(grey, size=(28, 28), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def face_fd(real: Tensor, fake: Tensor) -> float:
    """Frechet distance between two sets of images in [-1, 1] in :data:`FD_EXTRACTOR`'s feature space."""
    return frechet_distance(grey28(real), grey28(fake), load_feature_net().float())


@torch.no_grad()
def ema_samples(decoder: StyleDecoder, n: int, z_dim: int, seed: int, batch: int = 250) -> Tensor:
    """``n`` samples of ``decoder`` (not mixed, noise on) from fixed codes and noise: the same for every run."""
    g = torch.Generator(device=decoder.const.device).manual_seed(seed)
    out = []
    with decoder.random.using(g):  # codes and noise from one generator
        for k in range(0, n, batch):
            z = torch.randn(min(batch, n - k), z_dim, generator=g, device=decoder.const.device, dtype=decoder.const.dtype)
            out.append(decoder(z).float().cpu())
    return torch.cat(out)


def ema_model(model: StyleVAE, trainer: Trainer) -> StyleVAE:
    """A copy of the model with the EMA decoder (the encoder is the trained one), in eval mode, outside any step."""
    copied = copy.deepcopy(model).eval()
    copied.end_step()
    if trainer.ema is not None:
        copied.decoder.load_state_dict(trainer.ema.module.state_dict())
    return copied


@torch.no_grad()
def reconstruct(model: StyleVAE, x: Tensor, seed: int = PICTURE_SEED) -> Tensor:
    """``D(mu(x))`` with fixed noise."""
    with fixed_noise(model.decoder, seed):
        return model(x)[2]


def input_dependence(x: Tensor, rec: Tensor, mean_face: Tensor) -> dict[str, float]:
    """Do reconstructions ``rec`` of faces ``x`` follow their input? Two ratios; for an encoder the decoder ignores
    (the failure of the GPU suite's style run) the error ratio is about 1 and the spread ratio about 0:

    * ``rec_mse_over_mean_face_mse``: the reconstruction error against the error of answering every face with the
      training faces' mean (0: perfect; about 1 or more: no better than a constant);
    * ``rec_spread_over_input_spread``: how much the reconstructions vary between faces (their variance about
      their own mean) against how much the faces do (0: one picture for every input).
    """
    mse = lambda a, b: float((a - b).pow(2).mean())
    spread = lambda a: float((a - a.mean(0, keepdim=True)).pow(2).mean())
    return {"rec_mse_over_mean_face_mse": mse(rec, x) / mse(mean_face.expand_as(x), x),
            "rec_spread_over_input_spread": spread(rec) / spread(x)}


def unit(x: Tensor) -> Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1).cpu()


#: Held-out faces in a reconstructions picture (two rows of eight, their reconstructions below them).
PICTURE_FACES = 16


def write_pictures(model: StyleVAE, trainer: Trainer, data: str, holdout: int, out: Path, tag: str) -> None:
    """Samples of the EMA decoder and reconstructions of held-out faces at the model's current stage."""
    r = model.stage.resolution
    view = ema_model(model, trainer)
    view.set_stage(r, model.stage.alpha)
    save_grid(unit(ema_samples(view.decoder, 32, model.z_dim, PICTURE_SEED)), out / f"samples_{tag}.png")
    x = held_out_faces(data, r, holdout, PICTURE_FACES).to(model.decoder.const)
    save_grid(unit(torch.cat([x, reconstruct(view, x)])), out / f"reconstructions_{tag}.png")


def picture_spread_ratio(path: str | os.PathLike[str], resolution: int) -> float:
    """:func:`input_dependence`'s spread ratio measured on a reconstructions picture of :func:`write_pictures`
    (its held-out faces, then their reconstructions), from the picture's 8-bit colours.

    The GPU runs come back as pictures, not checkpoints: this puts a number (0: one picture for every input) on
    what such a picture shows, on 16 faces instead of the factor study's 500.
    """
    tiles = read_grid(path, resolution)
    faces, recs = tiles[:PICTURE_FACES], tiles[PICTURE_FACES:2 * PICTURE_FACES]
    return input_dependence(faces, recs, faces.mean(0, keepdim=True))["rec_spread_over_input_spread"]


def mean_face(data: str | os.PathLike[str], resolution: int, count: int, chunk: int = 1000) -> Tensor:
    """The mean of the first ``count`` prepared faces at ``resolution``, read in chunks (9,000 faces at 64x64 are
    440 MB as floats)."""
    total = sum(faces_at(data, resolution, slice(k, min(k + chunk, count))).double().sum(0) for k in range(0, count, chunk))
    return (total / count).float()[None]


def reconstruction_dependence(model: StyleVAE, trainer: Trainer, data: str, holdout: int, n: int) -> dict[str, float]:
    """:func:`input_dependence` of the EMA view's reconstructions of ``n`` held-out faces at the model's stage,
    against the mean training face: whether the decoder still listens to the encoder."""
    view = ema_model(model, trainer)
    r = model.stage.resolution
    x = held_out_faces(data, r, holdout, n)
    count = int(read_manifest(Path(data))["count"]) - holdout
    rec = reconstruct(view, x.to(model.decoder.const)).float().cpu()
    return {k: round(v, 4) for k, v in input_dependence(x, rec, mean_face(data, r, count)).items()}


def _fd_now(model: StyleVAE, trainer: Trainer, data: str, holdout: int, n: int) -> float:
    view = ema_model(model, trainer)
    real = held_out_faces(data, model.stage.resolution, holdout, n)
    return round(face_fd(real, ema_samples(view.decoder, n, model.z_dim, FD_SEED)), 3)


def phase_end_writer(out: Path, data: str, s: StyleSettings, fd: int, evaluation: dict[str, Any]):
    """The ``on_phase_end`` of the command: grids (and with ``fd`` > 0 the Frechet distance) at the end of each
    resolution, kept in ``out/eval.json`` so that a resumed run still reports every resolution."""
    path = out / "eval.json"
    if path.exists():
        evaluation.update(json.loads(path.read_text()))

    def write(trainer: Trainer, phase: int) -> None:
        model: StyleVAE = trainer.model  # type: ignore[assignment]
        model.end_step()
        r = model.stage.resolution
        write_pictures(model, trainer, data, s.holdout, out, f"{r}x{r}")
        if fd:
            entry = {"resolution": r, "step": trainer.iteration, "images_seen": trainer.images_seen,
                     "fd": _fd_now(model, trainer, data, s.holdout, fd),
                     "input_dependence": reconstruction_dependence(model, trainer, data, s.holdout, fd)}
            evaluation.setdefault("fd_by_resolution", {})[str(r)] = entry
            path.write_text(json.dumps(evaluation, indent=1))

    return write


def throughput(log: Path) -> dict[str, dict[str, float]]:
    """Training images per second of wall time at each resolution, from ``log.jsonl`` (one session's lines)."""
    lines = [json.loads(ln) for ln in log.read_text().splitlines() if ln]
    out: dict[str, dict[str, float]] = {}
    for a, b in zip(lines, lines[1:]):
        if a["resolution"] == b["resolution"] and b["wall_s"] > a["wall_s"]:
            e = out.setdefault(str(b["resolution"]), {"images": 0.0, "seconds": 0.0})
            e["images"] += b["images_seen"] - a["images_seen"]
            e["seconds"] += b["wall_s"] - a["wall_s"]
    return {r: {**e, "images_per_s": round(e["images"] / e["seconds"], 1)} for r, e in out.items()}


def fd_summary(run: StyleRun, data: str, n: int) -> dict[str, Any]:
    """Frechet distances at the final stage: the untrained model (the EMA at step 0), the EMA now, and the floor
    (``n`` training faces against the held-out ones)."""
    s, r = run.settings, run.model.stage.resolution
    start = build_model(s)
    start.set_stage(r)
    real = held_out_faces(data, r, s.holdout, n)
    return {"resolution": r, "n_samples": n, "n_held_out": len(real), "extractor": FD_EXTRACTOR,
            "start": round(face_fd(real, ema_samples(start.decoder, n, start.z_dim, FD_SEED)), 3),
            "end": _fd_now(run.model, run.trainer, data, s.holdout, n),
            "floor_train_vs_held_out": round(face_fd(real, faces_at(data, r, slice(0, n))), 3)}


def style_budget(info: dict[str, Any], resolution: int) -> dict[str, Any]:
    """The run's budget block: images seen against the paper's 230 epochs of CelebA-HQ at 256x256, counted as
    :data:`~sivae_core.experiments.style.PAPER_IMAGES` (30,000 images per epoch; the paper trains on 29,000 of them,
    so the fraction is about 3% below one of 230 x 29,000). A run that stops at a lower resolution costs less per
    image, which the description says rather than hides."""
    images = info["images_seen"]
    return budget_block(f"{images:,} images ({info['epochs']:.1f} epochs of {info['train_images']:,} faces), "
                        f"grown 4 -> {resolution}x{resolution} (the paper: 256x256)",
                        round(images / PAPER_IMAGES, 6), images_seen=images, paper_images=PAPER_IMAGES,
                        final_resolution=resolution, paper_final_resolution=256,
                        paper="230 epochs of 30,000 CelebA-HQ images (29,000 trained on), 256x256, 4 GPUs")


def finish_run(run: StyleRun, out: Path, data: str, fd: int, evaluation: dict[str, Any], prov: dict[str, str],
               record: str | None) -> dict[str, Any]:
    """Final pictures, Frechet distances, ``out/train.json`` and (``record``) the run's record with provenance."""
    t0 = time.process_time()
    model, trainer, s = run.model, run.trainer, run.settings
    r = model.stage.resolution
    write_pictures(model, trainer, data, s.holdout, out, "final")
    view = ema_model(model, trainer)
    view.set_stage(r)
    faces_figure(view, held_out_faces(data, r, s.holdout, 64).to(model.decoder.const), out / "faces.png")
    progress_figure(out, out / "progress.png")
    if fd:
        evaluation["fd"] = fd_summary(run, data, fd)
        evaluation["input_dependence"] = reconstruction_dependence(model, trainer, data, s.holdout, fd)
    result = {"settings": settings_dict(s), "info": run.info, "evaluation": evaluation,
              "budget": style_budget(run.info, r),
              "throughput_images_per_s": throughput(out / "log.jsonl") if (out / "log.jsonl").exists() else {},
              "schedule": [dict(vars(ph)) for ph in run.schedule.phases],
              "evaluation_cpu_seconds": round(time.process_time() - t0, 1)}
    (out / "train.json").write_text(json.dumps(result, indent=1))
    if record:
        write_results(record, result, provenance_override=prov)
    return result
