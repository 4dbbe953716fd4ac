"""Why the GPU suite's style run did not learn faces: its settings taken one at a time, on a CPU.

The stored GPU run (``gpu64``, 4 -> 64 on an H200) ended with colour blobs and reconstructions that ignore the
input, while the CPU preset (``cpu32``) grew crude faces from about as many images. The two runs differ in several
settings at once. This command trains the chapter's live run (the CPU model grown 4 -> 16 on the first 3,000 faces,
500 held out, 1 epoch per resolution and 2 at the last, batches 32, 32, 16) as it is, with one of the GPU run's
settings at a time, with all of them together, and with a candidate remedy (the per-image ``beta_rec`` at every
resolution, :attr:`~sivae_core.experiments.style.StyleSettings.rec_per_image`), over seeds, and measures what the
GPU run failed at: whether the reconstructions of held-out faces follow the input
(:func:`~sivae_core.experiments.style_eval.input_dependence`), and the Frechet distance of EMA samples
(:func:`~sivae_core.experiments.style_eval.fd_summary`).

The GPU run's wider model (256 channels, ``z = w = 256``) is not among the factors: at 16x16 it costs a CPU about
twenty times the narrow model's step.

    python -m sivae_core style-factors --src $SIVAE_DATA/celeba/img_align_celeba_10k --workers 2 \\
        --out book/results/style_factors_cpu16.json
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data.faces import link_images, list_images, prepare_faces
from ..results import budget_block, provenance, write_results
from .style import PAPER_IMAGES, settings, settings_dict, train_style

__all__ = ["BASE", "VARIANTS", "run_variant", "study", "add_arguments", "run"]

#: The chapter's live run: the CPU model grown 4 -> 16 (its per-image ``beta_rec`` rule gives 12.8 at 16x16).
BASE: dict[str, Any] = dict(resolution=16, holdout=500, epochs_per_resolution=1.0, final_epochs=2.0,
                            ema_half_life=500.0)
#: The GPU run's settings, each as the override of the base run that takes it.
GPU = {"batch": dict(batches=(128,)), "epochs": dict(epochs_per_resolution=2.0, final_epochs=3.0),
       "beta_rec": dict(beta_rec=0.8), "bf16": dict(amp="bf16")}
#: name -> (what it changes, overrides of :data:`BASE`).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "preset": ("the CPU preset (batches 32, 32, 16; beta_rec 12.8; fp32)", {}),
    "bf16": ("bf16 autocast, the GPU run's precision", GPU["bf16"]),
    "beta_rec_0.8": ("beta_rec 0.8, the GPU run's (the per-image rule for 64x64: 1/16 of the preset's here)",
                     GPU["beta_rec"]),
    "batch_128": ("batch 128, the GPU run's at these resolutions: the same images in 1/4 to 1/8 of the steps",
                  GPU["batch"]),
    "batch_128_gpu_epochs": ("batch 128 and the GPU run's epochs (2 per resolution, 3 at the last)",
                             {**GPU["batch"], **GPU["epochs"]}),
    "batch_128_4x_images": ("batch 128 and 4x the preset's images (4 epochs per resolution, 8 at the last)",
                            dict(batches=(128,), epochs_per_resolution=4.0, final_epochs=8.0)),
    "gpu_all": ("all of the GPU run's settings above together", {k: v for o in GPU.values() for k, v in o.items()}),
    # A candidate remedy for the next GPU run: the per-image beta_rec rule at every resolution, not only the last.
    "rec_per_image": ("beta_rec per image at every resolution (204.8 at 4x4, 51.2 at 8x8, 12.8 at 16x16)",
                      dict(rec_per_image=True)),
    "batch_128_rec_per_image": ("batch 128 (the GPU run's) with beta_rec per image at every resolution",
                                dict(GPU["batch"], rec_per_image=True)),
}


def run_variant(name: str, overrides: dict[str, Any], seed: int, data: str, base: dict[str, Any], fd_samples: int,
                workdir: str) -> dict[str, Any]:
    """Train one variant from scratch on one CPU thread and measure it (a worker process's task)."""
    from .style_eval import fd_summary, reconstruction_dependence

    torch.set_num_threads(1)
    s = settings("cpu32", **{**base, **overrides, "seed": seed})
    run_ = train_style(s, data, Path(workdir) / f"{name}_seed{seed}", progress=False, log_every=25)
    dependence = reconstruction_dependence(run_.model, run_.trainer, data, s.holdout, fd_samples)
    final = run_.trainer.history[-1]
    return {"variant": name, "seed": seed, "settings": settings_dict(s), "steps": run_.info["iterations"],
            "images_seen": run_.info["images_seen"], "precision": run_.info["precision"],
            "cpu_seconds": run_.info["cpu_seconds"], **dependence,
            "fd": fd_summary(run_, data, fd_samples),
            "final_kl_real": round(float(final.get("enc/kl", float("nan"))), 2),
            "final_rec_real": round(float(final.get("enc/rec", float("nan"))), 2)}


def study(data: str, variants: dict[str, tuple[str, dict[str, Any]]], seeds: list[int], out: str | os.PathLike[str],
          base: dict[str, Any] = BASE, fd_samples: int = 500, workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Every variant and seed, ``workers`` at a time (one CPU thread each). The record is rewritten after every
    finished run (``complete`` False until the last), so an interrupted study keeps what it finished."""
    prov = provenance("cpu")
    tasks = [(name, overrides, seed) for name, (_, overrides) in variants.items() for seed in seeds]
    runs: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def record() -> dict[str, Any]:
        images = max((r["images_seen"] for r in runs), default=0)
        budget = budget_block(
            f"{len(variants)} variants x {len(seeds)} seeds of the CPU model grown 4 -> {base['resolution']}, "
            f"{images:,} images at most per run", (images / PAPER_IMAGES) or None, paper_images=PAPER_IMAGES,
            cpu_seconds=round(sum(r["cpu_seconds"] for r in runs), 1))
        return {"variants": {k: {"changes": what, "overrides": o} for k, (what, o) in variants.items()},
                "base": {k: list(v) if isinstance(v, tuple) else v for k, v in base.items()}, "seeds": seeds,
                "fd_samples": fd_samples, "complete": len(runs) == len(tasks), "budget": budget,
                "wall_seconds": round(time.perf_counter() - t0, 1),
                "runs": sorted(runs, key=lambda r: (list(variants).index(r["variant"]), r["seed"]))}

    with tempfile.TemporaryDirectory(prefix="style_factors_") as workdir, \
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_variant, name, overrides, seed, data, base, fd_samples, workdir)
                   for name, overrides, seed in tasks]
        for future in tqdm(as_completed(futures), total=len(futures), desc="style factors", disable=not progress):
            runs.append(future.result())
            write_results(out, record(), provenance_override=prov)
    return record()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", required=True, help="folder of face images; the first --faces of them are used")
    p.add_argument("--faces", type=int, default=3000, help="how many faces (the last 500 are held out)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of every variant (the shared --seed "
                   "is not used)")
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), help="default: all")
    p.add_argument("--workers", type=int, default=1, help="runs trained at once, one CPU thread each")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.device not in (None, "cpu"):
        raise SystemExit("style-factors trains on CPU worker processes, one thread each (--workers): leave out --device")
    chosen = {k: VARIANTS[k] for k in (args.variants or VARIANTS)}
    files = list_images(Path(args.src))[:args.faces]
    if len(files) < args.faces:
        raise SystemExit(f"style-factors: {args.src} holds {len(files)} images, fewer than --faces {args.faces}")
    with tempfile.TemporaryDirectory(prefix="faces_") as tmp:
        prepare_faces(link_images(files, Path(tmp) / "src"), Path(tmp) / "prepared", BASE["resolution"], progress=False)
        study(str(Path(tmp) / "prepared"), chosen, args.seeds, args.out, workers=args.workers,
              progress=not args.no_progress)
    return 0
