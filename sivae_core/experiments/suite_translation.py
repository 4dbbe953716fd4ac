"""The suite's translation job: the paper's Cars3D model and settings (Daniel & Tamar 2021, Appendix 9.3: two
encoders, AdaIN decoder, batch 64, Adam 1e-4, beta_rec 0.5, beta_kl 1, beta_neg 1024 / 2048) with the pixel loss,
for the job's share of a GPU, and the two baselines on the same model at the same number of iterations.

Soft-IntroVAE trains first, for about half of the job's time; the beta-VAE and the autoencoder then train for as
many iterations as it reached (each stopped earlier if its share of the time runs out, which the record says), so
the three are compared at equal images seen. Every run is scored on the 20 held-out cars exactly as
``python -m sivae_core.translation`` scores it and written as ``translation_gpu_<method>.json`` with its 4x4
content-transfer matrix beside it. The data, ``cars3d/cars64`` (29 MB of ``.mat`` files), is carried to the machine
alone: with the other jobs' data it would pass the 64 MiB a GPU call can carry (``scripts/gpu_run.sh prepare
translation``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..data.cars3d import find_cars3d, load_cars3d
from ..translation import FAST, run_record, settings, train_translation, write_matrix

if TYPE_CHECKING:
    from .suite import JobContext

__all__ = ["run_translation"]

#: Share of the job's time left (after the scoring reserve) that each run trains for, in order: Soft-IntroVAE half,
#: the beta-VAE half of the rest, the autoencoder all that remains; and the time kept back for scoring three runs.
SHARES, SCORING_RESERVE_S = {"sivae": 0.5, "vae": 0.5, "ae": 1.0}, 45.0


def run_translation(ctx: JobContext) -> dict[str, Any]:
    dev, smoke = ctx.device, ctx.smoke
    root = find_cars3d()
    train, test = load_cars3d(root, "train"), load_cars3d(root, "test")
    if smoke:  # 8 training cars: the probes and the per-view mean read every training image
        train = replace(train, images=train.images[:8], names=train.names[:8])
    tiny = {**{k: FAST[k] for k in ("enc_channels", "enc_hidden", "dec_channels", "dec_hidden")}, "batch_size": 8}
    n_pairs, log_every = (32, 2) if smoke else (2000, 50)
    report: dict[str, Any] = {}
    target: int | None = None  # the baselines train as many iterations as Soft-IntroVAE reached
    for method, share in SHARES.items():
        left = ctx.seconds_left() - (0 if smoke else SCORING_RESERVE_S)
        budget = ctx.budget_callback(reserve_s=left * (1 - share) + (0 if smoke else SCORING_RESERVE_S))
        iterations = (4 if smoke else 10**7) if target is None else target
        s = settings(method, fast=False, iterations=iterations, **(tiny if smoke else {}))
        model, trainer, info = train_translation(s, train, None, dev, test, progress=False, log_every=log_every,
                                                 callbacks=[budget])
        if target is None:
            target, info["stopped_by"] = trainer.iteration, "smoke run" if smoke else "time budget"
        else:
            info["stopped_by"] = "time budget" if trainer.iteration < target else "Soft-IntroVAE's iterations"
        info["description"] += f"; stopped by the {info['stopped_by']}" if info["stopped_by"] == "time budget" else ""
        record = run_record(s, model, trainer, info, train, test, n_pairs, dev, fast=smoke)
        ctx.write(f"translation_gpu_{method}", record)
        write_matrix(model, test, ctx.out / f"translation_gpu_{method}_matrix.png")
        report[method] = {"iterations": trainer.iteration, "epochs": info["epochs"],
                          "transfer_mse": record["transfer_mse"], "transfer_ssim": record["transfer_ssim"],
                          "wall_seconds": info["wall_seconds"]}
    return report
