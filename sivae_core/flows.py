"""Affine coupling flows (RealNVP, Dinh et al. 2017), the bijection of dpVAE's decoupled prior.

Written out here rather than taken from a flow library because the coupling block *is* the lesson of the
dpVAE chapter (Bhalodia, Lee & Elhabian 2020, Sec. 3, Eq. 2-4); :class:`~sivae_core.priors.DecoupledPrior`
turns a flow into a prior.

A flow is a bijection ``g: z -> z0`` between the *representation space* z (where the encoder's
posteriors and any regularizer live) and the *generation space* z0 (standard normal). By the change of
variables formula (Eq. 2) it defines the decoupled prior

    p(z) = N(g(z); 0, I) |det dg/dz|,          log p(z) = log N(g(z); 0, I) + log |det dg/dz|.

Each coupling block (Eq. 3) keeps the coordinates selected by a binary mask ``b`` and transforms the
others with a scale and a translation computed from the kept ones:

    y = b * z + (1 - b) * (z * exp(s(b * z)) + t(b * z)),      log |det dy/dz| = sum_l (1 - b_l) s_l(b * z)

The Jacobian is triangular (the kept coordinates do not depend on the transformed ones), hence the
cheap log-determinant, and the inverse is exact: ``z = b * y + (1 - b) * (y - t(b * y)) * exp(-s(b * y))``
(``b * y = b * z``). The scale is bounded, ``s = s_max tanh(raw)``, so one block can never blow a
coordinate up by more than ``exp(s_max)``: unbounded scales are the usual cause of NaNs when a flow
is trained jointly with a VAE. The output layers start at zero, so an untrained flow is the identity
and a dpVAE starts as the plain VAE.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["make_masks", "AffineCoupling", "CouplingFlow"]


def make_masks(dim: int, n_layers: int, kind: str = "alternating") -> Tensor:
    """Binary masks ``b_k`` (1 = kept), shape (n_layers, dim), flipped from one block to the next.

    ``"alternating"``: 1, 0, 1, 0, ... (checkerboard over coordinates); ``"half"``: first half kept.
    Flipping makes every coordinate transformed by every other block.
    """
    if dim < 2:
        raise ValueError("a coupling flow needs at least 2 dimensions (one to keep, one to transform)")
    if kind == "alternating":
        base = (torch.arange(dim) % 2 == 0).float()
    elif kind == "half":
        base = (torch.arange(dim) < dim // 2).float()
    else:
        raise ValueError(f"unknown mask kind {kind!r}; use 'alternating' or 'half'")
    return torch.stack([base if k % 2 == 0 else 1 - base for k in range(n_layers)])


class AffineCoupling(nn.Module):
    """One RealNVP block (Eq. 3) with a bounded scale network and a translation network."""

    def __init__(self, mask: Tensor, hidden: int = 64, n_hidden: int = 2, scale_bound: float = 2.0):
        super().__init__()
        dim = mask.numel()
        self.register_buffer("mask", mask.clone().float())
        self.scale_bound = float(scale_bound)

        def net(out_act: nn.Module | None = None) -> nn.Sequential:
            layers: list[nn.Module] = [nn.Linear(dim, hidden), nn.LeakyReLU(0.2)]
            for _ in range(n_hidden - 1):
                layers += [nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)]
            last = nn.Linear(hidden, dim)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            layers.append(last)
            return nn.Sequential(*layers)

        self.s_net = net()
        self.t_net = net()

    def _st(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        free = 1 - self.mask
        s = self.scale_bound * torch.tanh(self.s_net(kept)) * free
        t = self.t_net(kept) * free
        return s, t

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        kept = z * self.mask
        s, t = self._st(kept)
        y = kept + (1 - self.mask) * (z * torch.exp(s) + t)
        return y, s.sum(dim=-1)

    def inverse(self, y: Tensor) -> Tensor:
        kept = y * self.mask
        s, t = self._st(kept)
        return kept + (1 - self.mask) * (y - t) * torch.exp(-s)


class CouplingFlow(nn.Module):
    """g: z -> z0, a stack of ``n_layers`` affine couplings with flipped masks (Eq. 4).

    ``forward(z)`` returns ``(z0, log|det dg/dz|)`` (one log-det per sample); ``inverse(z0)`` is exact.
    """

    def __init__(self, dim: int, n_layers: int = 4, hidden: int = 64, mask: str = "alternating",
                 n_hidden: int = 2, scale_bound: float = 2.0):
        super().__init__()
        self.dim = int(dim)
        masks = make_masks(dim, n_layers, mask)
        self.blocks = nn.ModuleList(AffineCoupling(m, hidden, n_hidden, scale_bound) for m in masks)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        logdet = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for block in self.blocks:
            z, ld = block(z)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, z0: Tensor) -> Tensor:
        for block in reversed(self.blocks):
            z0 = block.inverse(z0)
        return z0
