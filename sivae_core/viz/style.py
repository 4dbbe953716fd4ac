"""Figures of the style-based model: its architecture drawn from the real modules, and the faces figure
(reconstructions, the 4-face interpolation of Daniel & Tamar 2021, Fig. 18, and a style-mixing grid after
Karras et al. 2019, Fig. 3).

The architecture figure reads every number it prints (channels, parameters, mapping depths, lr multipliers,
equalized-lr scales) from the model it is given, so it cannot drift from the code.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyBboxPatch
from torch import Tensor

from ..models.style import StyleVAE
from ..models.style.decoder import StyleDecoder
from ..models.style.mixing import mix_styles
from .grids import make_grid
from .interpolation import interpolate_grid

__all__ = ["architecture_figure", "mixing_grid", "faces_figure", "fixed_noise", "progress_figure"]

ENC, DEC, MAP = "#dbe9f6", "#fde2c8", "#e4f2dc"


def _params(module: torch.nn.Module) -> str:
    n = sum(p.numel() for p in module.parameters())
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def _box(ax: Any, x: float, y: float, w: float, h: float, text: str, color: str, size: float = 7.5) -> None:
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02", fc=color, ec="0.3", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def _arrow(ax: Any, a: tuple[float, float], b: tuple[float, float], color: str = "0.25", style: str = "-|>",
           ls: str = "-") -> None:
    ax.annotate("", xy=b, xytext=a, arrowprops={"arrowstyle": style, "color": color, "lw": 0.9, "ls": ls,
                                                 "shrinkA": 2, "shrinkB": 2})


def _encoder_column(ax: Any, model: StyleVAE, ys: list[float]) -> None:
    for i, y in enumerate(ys):
        b = model.encoder.blocks[i]
        c_in, c_out, r = b.conv.weight.shape[1], b.down.weight.shape[0], 4 << i
        _box(ax, 0.0, y, 2.6, 0.78, f"{r}x{r}  conv3x3 {c_in}->{c_in}  [IN style C1]\n"
             f"blur, conv3x3 down {c_in}->{c_out}  [IN style C2]\nparams {_params(b)}", ENC)
        _arrow(ax, (1.3, y), (2.3, 0.0), color="C0", ls="--")
        if i:
            _arrow(ax, (0.0, y - 0.39), (0.0, ys[i - 1] + 0.39))
    top = ys[-1] + 1.0
    _box(ax, 0.0, top, 2.0, 0.45, f"x ({model.config.image_channels}x{4 << (len(ys) - 1)}^2), FromRGB 1x1", ENC)
    _arrow(ax, (0.0, top - 0.23), (0.0, ys[-1] + 0.39))
    ax.text(0.0, ys[0] - 0.8, "ENCODER (ALAE)\nblock style = mean and std that\nInstance Norm removes", ha="center",
            va="top", fontsize=8, weight="bold", color="C0")


def _decoder_column(ax: Any, model: StyleVAE, ys: list[float]) -> None:
    for i, y in enumerate(ys):
        b = model.decoder.blocks[i]
        c, r = b.conv.weight.shape[0], 4 << i
        first = "learned 4x4 constant" if b.up is None else f"up, conv3x3 {b.up[0].weight.shape[1]}->{c}, blur"
        _box(ax, 7.0, y, 2.6, 0.78, f"{r}x{r}  {first}\n+noise, AdaIN(w);  conv3x3 {c}->{c}\n+noise, AdaIN(w)  "
             f"params {_params(b)}", DEC)
        _arrow(ax, (4.7, 0.0), (5.7, y), color="C1", ls="--")
        if i:
            _arrow(ax, (7.0, ys[i - 1] + 0.39), (7.0, y - 0.39))
    top = ys[-1] + 1.0
    _box(ax, 7.0, top, 2.0, 0.45, f"ToRGB 1x1 -> image {4 << (len(ys) - 1)}^2", DEC)
    _arrow(ax, (7.0, ys[-1] + 0.39), (7.0, top - 0.23))
    ax.text(7.0, ys[0] - 0.8, "DECODER (StyleGAN)\nw drives every layer by AdaIN:\nx * (1 + s(w)) + b(w)",
            ha="center", va="top", fontsize=8, weight="bold", color="C1")


def _mapping_column(ax: Any, model: StyleVAE) -> None:
    enc, dec = model.encoder.mapping.layers, model.decoder.mapping.layers
    _box(ax, 3.5, 1.6, 2.2, 0.55, "w = sum_i C_i [mu(y_i), sigma(y_i)]", MAP)
    _box(ax, 3.5, 0.6, 2.2, 0.6, f"encoder mapping: {len(enc)} layers\n{enc[0].weight.shape[1]} -> "
         f"(mu, logvar) {enc[-1].weight.shape[0]}, lr x{enc[0].lr_mul:g}", MAP)
    _box(ax, 3.5, -0.45, 1.3, 0.4, f"z ~ q(z|x)  ({model.z_dim})", MAP)
    _box(ax, 3.5, -1.5, 2.2, 0.6, f"decoder mapping: {len(dec)} layers\npixel norm, {dec[0].weight.shape[1]} -> "
         f"w {dec[-1].weight.shape[0]}, lr x{dec[0].lr_mul:g}", MAP)
    _arrow(ax, (3.5, 1.32), (3.5, 0.9))
    _arrow(ax, (3.5, 0.3), (3.5, -0.25))
    _arrow(ax, (3.5, -0.65), (3.5, -1.2))
    _arrow(ax, (2.3, 0.0), (2.5, 1.35), color="C0")
    _arrow(ax, (4.5, -1.5), (4.7, 0.0), color="C1")


def architecture_figure(model: StyleVAE, ax: Any = None) -> Any:
    """The encoder and decoder side by side, one box per resolution (4x4 at the bottom), the two mapping networks
    between them; every label read from ``model``. Returns the axes."""
    levels = len(model.decoder.blocks)
    ax = ax if ax is not None else plt.subplots(figsize=(11, 0.95 * levels + 2.6))[1]
    ys = [-2.4 + 1.05 * i - 1.05 * (levels - 1) / 2 + 2.4 for i in range(levels)]
    _encoder_column(ax, model, ys)
    _decoder_column(ax, model, ys)
    _mapping_column(ax, model)
    conv = model.decoder.blocks[-1].conv
    ax.text(3.5, ys[-1] + 1.0, f"equalized lr: weights stored N(0, 1), used x gain / sqrt(fan_in)\n(e.g. the last "
            f"3x3 conv: x{conv.scale:.3g});  {model.num_parameters() / 1e6:.2f}M parameters", ha="center",
            va="center", fontsize=8, style="italic")
    ax.set_xlim(-1.6, 8.6)
    ax.set_ylim(min(ys) - 1.9, max(ys) + 1.35)
    ax.axis("off")
    return ax


@contextmanager
def fixed_noise(decoder: StyleDecoder, seed: int):
    """Draw the decoder's per-pixel noise from a generator seeded with ``seed`` (reproducible pictures)."""
    with decoder.random.using(torch.Generator(device=decoder.const.device).manual_seed(seed)):
        yield


@torch.no_grad()
def mixing_grid(decoder: StyleDecoder, z_coarse: Tensor, z_fine: Tensor, cutoff: int, seed: int = 1234) -> Tensor:
    """Style mixing: cell ``(i, j)`` takes its styles below layer ``cutoff`` (coarse: pose, face shape) from
    ``z_coarse[i]`` and the others (fine: colours, texture) from ``z_fine[j]``. Returned row by row, the fine
    sources as the first row and the coarse ones as the first column (a blank corner)."""
    n, m = len(z_coarse), len(z_fine)
    mixed = mix_styles(decoder.styles(z_coarse).repeat_interleave(m, dim=0), decoder.mapping(z_fine).repeat(n, 1),
                       cutoff)
    with fixed_noise(decoder, seed):
        cells = decoder.synthesize(mixed, decoder.random.draws(n * m, z_coarse.device))
        fine, coarse = decoder(z_fine), decoder(z_coarse)
    rows = [torch.cat([torch.ones_like(fine[:1]), fine])]
    rows += [torch.cat([coarse[i:i + 1], cells[i * m:(i + 1) * m]]) for i in range(n)]
    return torch.cat(rows)


def _unit(x: Tensor) -> Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1).cpu()


def _finish(fig: Any, path: str | Path | None, dpi: int) -> Any:
    """Lay ``fig`` out; with ``path``, write it there and close it (a run writes many: open figures pile up)."""
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
    return fig


@torch.no_grad()
def faces_figure(model: StyleVAE, faces: Tensor, path: str | Path | None = None, seed: int = 1234) -> Any:
    """Held-out ``faces`` (at least 13, in [-1, 1]) through ``model``: 8 faces over their reconstructions, the
    8x8 bilinear interpolation between the codes of four faces (the paper's Fig. 18 layout), and style mixing of
    the codes of faces 4-7 (coarse) with faces 8-12 (fine), crossing over after the 8x8 styles."""
    model.eval()
    with fixed_noise(model.decoder, seed):
        rec = model(faces[:8])[2]
        grid = interpolate_grid(model, faces[:4], n=8)
    mu, _ = model.encode(faces[4:13])
    mixing = mixing_grid(model.decoder, mu[:4], mu[4:9], cutoff=min(4, model.decoder.n_active), seed=seed)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2), gridspec_kw={"width_ratios": [1.0, 1.0, 0.75]})
    panels = [(torch.cat([faces[:8], rec]).reshape(2, 8, *faces.shape[1:]).transpose(0, 1).reshape(16, *faces.shape[1:]),
               4, "held-out faces (left) and reconstructions (right)"),
              (grid, 8, "interpolation between 4 held-out faces (corners)"),
              (mixing, 6, "style mixing: coarse styles from the left column,\nfine styles from the top row")]
    for ax, (images, nrow, title) in zip(axes, panels):
        ax.imshow(make_grid(_unit(images), nrow=nrow))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return _finish(fig, path, dpi=90)


def progress_figure(run_dir: str | Path, path: str | Path | None = None) -> Any:
    """The EMA samples a run wrote at the end of each resolution (``samples_RxR.png``) and at its end
    (``samples_final.png``), side by side at the same size: how the faces grow."""
    run_dir = Path(run_dir)
    grids = sorted(run_dir.glob("samples_*x*.png"), key=lambda p: int(p.stem.split("_")[1].split("x")[0]))
    grids.append(run_dir / "samples_final.png")
    fig, axes = plt.subplots(1, len(grids), figsize=(3.6 * len(grids), 2.2))
    for ax, grid in zip(np.atleast_1d(axes), grids):
        ax.imshow(plt.imread(grid), interpolation="nearest")
        ax.set_title("end of training" if grid.stem.endswith("final") else f"end of {grid.stem.split('_')[1]}",
                     fontsize=9)
        ax.axis("off")
    return _finish(fig, path, dpi=100)
