"""Pictures of the latent space of a 2D (dp)VAE: where its samples, pockets and leaks are (the dpVAE chapter)."""

from __future__ import annotations

import numpy as np
import torch

from ..data.toy2d import sample
from ..metrics.latent import aggregate_log_prob, encode_all, high_posterior, low_posterior
from ..models.base import IntroVAEModel

__all__ = ["pockets_and_leaks"]


def pockets_and_leaks(model: IntroVAEModel, title: str, axes: np.ndarray, dataset: str = "moons") -> None:
    """Three panels: samples with the low- and high-posterior samples marked (LP: red x, HP: blue +); the
    aggregate posterior q(z) with the LP and HP codes (on a window that holds them); the encoded data in the
    generation space (g(z) for a decoupled prior, z itself for N(0, I))."""
    data = sample(dataset, 5000, torch.Generator().manual_seed(1))
    mu, logvar = encode_all(model, data)
    gen = torch.Generator().manual_seed(2)
    lp = low_posterior(model, mu, logvar, 5000, 5, gen)
    hp = high_posterior(model, mu, logvar, 5000, 5, gen)
    with torch.no_grad():
        x = model.sample(3000, torch.Generator().manual_seed(3))
        x_lp, x_hp = model.decode(lp), model.decode(hp)
        z0 = model.prior.to_generation(mu)
    axes[0].scatter(*data.T, s=1, c="lightgray")
    axes[0].scatter(*x.T, s=1, c="tab:green")
    axes[0].scatter(*x_lp.T, c="red", marker="x", s=60, label="LP")
    axes[0].scatter(*x_hp.T, c="blue", marker="+", s=60, label="HP")
    axes[0].set_title(f"{title}: samples")
    axes[0].legend(loc="lower left", fontsize=7)
    # q(z) on [-4, 4]^2, or on a window wide enough to hold every marked code (they can lie far out)
    lim = max(4.0, float(np.ceil(torch.cat([lp, hp]).abs().max().item())) + 1)
    side = torch.linspace(-lim, lim, 150)
    dens = aggregate_log_prob(torch.cartesian_prod(side, side), mu, logvar).exp().reshape(150, 150).T
    axes[1].pcolormesh(side, side, dens, cmap="viridis", shading="auto")
    axes[1].scatter(*lp.T, c="red", marker="x", s=60)
    axes[1].scatter(*hp.T, c="cyan", marker="+", s=60)
    axes[1].set_xlim(-lim, lim)
    axes[1].set_ylim(-lim, lim)
    axes[1].set_title("aggregate posterior q(z)" + (f", [-{lim:g}, {lim:g}]$^2$" if lim > 4 else ""))
    axes[2].scatter(*z0[:2000].T, s=1, c="tab:purple")
    axes[2].set_title("encoded data in the generation space")
    axes[2].set_xlim(-4, 4)
    axes[2].set_ylim(-4, 4)
    for ax in axes:
        ax.set_aspect("equal")
