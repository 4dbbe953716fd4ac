"""What a style-based run costs before it runs: the FLOPs of a training step, counted from the real modules and the
real objective, and time estimates per resolution from a measured sustained rate.

:func:`step_flops` builds the model on PyTorch's ``meta`` device (shapes only: the paper's 54M-parameter model at
256x256 costs no memory and no time) and counts the multiply-adds of one Soft-IntroVAE step, both updates with
their backward passes, with PyTorch's own FLOP formulas (:data:`torch.utils.flop_counter.flop_registry`). Time
estimates divide by a *sustained* rate measured on a real step of the book (:func:`sustained_tflops`), never by a
GPU's peak: small models keep a GPU far from its peak, so an estimate from the peak would be several times too
optimistic.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode  # the base of torch's own FlopCounterMode
from torch.utils.flop_counter import flop_registry

from ..models.base import IntroVAEModel
from ..models.style import StyleConfig, StyleVAE
from ..objectives import Noise, Objective, SoftIntroVAE
from ..training.progressive import ProgressiveSchedule

__all__ = ["count_flops", "step_flops", "style_step_flops", "sustained_tflops", "phase_estimates"]


class _CountFlops(TorchDispatchMode):
    """Adds up the FLOPs of every operator torch has a formula for (convolutions, matrix products: the bulk).
    (torch's FlopCounterMode would do, but its module tracker fails on a parameter used under ``no_grad``.)"""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's signature
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def count_flops(fn) -> int:  # noqa: ANN001 - any callable
    """FLOPs of ``fn()`` (a multiply-add counts 2)."""
    with _CountFlops() as counter:
        fn()
    return counter.total


def step_flops(model: IntroVAEModel, objective: Objective, x: torch.Tensor) -> int:
    """FLOPs of one training step of ``objective`` on batch ``x`` (encoder update, then decoder update)."""
    n_e, n_d = objective.noise_draws
    eps_e = torch.randn(n_e, x.shape[0], model.z_dim, device=x.device, dtype=x.dtype)
    eps_d = torch.randn(n_d, x.shape[0], model.z_dim, device=x.device, dtype=x.dtype)

    def step() -> None:
        out_e = objective.encoder_loss(model, x, Noise(eps_e), objective.hparams)
        out_e.loss.backward(inputs=list(model.encoder.parameters()))
        if not objective.joint:
            out_d = objective.decoder_loss(model, x, Noise(eps_d), objective.hparams, out_e.carry)
            out_d.loss.backward(inputs=list(model.decoder.parameters()))

    return count_flops(step)


def style_step_flops(config: StyleConfig, resolutions: tuple[int, ...] | None = None) -> dict[int, int]:
    """FLOPs per training image of one Soft-IntroVAE step of the style model at each resolution (fully faded in),
    on the ``meta`` device."""
    with torch.device("meta"):
        model = StyleVAE(config)
    objective = SoftIntroVAE(0.05, 0.2, 512.0, s=5e-6)
    out = {}
    for r in resolutions or config.resolutions:
        model.set_stage(r)
        out[r] = step_flops(model, objective, torch.empty(1, config.image_channels, r, r, device="meta"))
    return out


def sustained_tflops(images_per_s: float, flops_per_image: float) -> float:
    """The rate a measured step actually sustained, in TFLOP/s."""
    return images_per_s * flops_per_image / 1e12


def phase_estimates(schedule: ProgressiveSchedule, flops: dict[int, int], tflops: float) -> list[dict[str, Any]]:
    """Per phase: images, FLOPs per image, and hours at a sustained ``tflops``."""
    rows = []
    for ph in schedule.phases:
        images = ph.epochs * schedule.dataset_size
        rows.append({"resolution": ph.resolution, "epochs": ph.epochs, "batch": ph.batch, "images": round(images),
                     "gflop_per_image": flops[ph.resolution] / 1e9,
                     "hours": images * flops[ph.resolution] / (tflops * 1e12) / 3600})
    return rows
