"""Reconstruction quality: PSNR, SSIM and MSE (the comparisons of AS-IntroVAE, Lu et al. 2022)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

__all__ = ["reconstruction_metrics"]


@torch.no_grad()
def reconstruction_metrics(x: Tensor, x_rec: Tensor) -> dict[str, float]:
    """PSNR (dB), SSIM and per-pixel MSE of reconstructions, images in ``[0, 1]`` (clamped first).

    PSNR is averaged over images (``reduction`` per image, data range 1), SSIM uses the standard 11x11
    Gaussian window; MSE is the mean over all pixels (not the per-sample *sum* used in training).
    """
    x = x.float().clamp(0, 1)
    x_rec = x_rec.float().clamp(0, 1)
    psnr = peak_signal_noise_ratio(x_rec, x, data_range=1.0, reduction="none", dim=(1, 2, 3)).mean()
    ssim = structural_similarity_index_measure(x_rec, x, data_range=1.0)
    return {"psnr": float(psnr), "ssim": float(ssim), "mse": float((x_rec - x).pow(2).mean())}
