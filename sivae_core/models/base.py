"""The model interface every objective and the trainer rely on.

An introspective VAE is an encoder ``E: x -> (mu, logvar)``, a decoder ``D: z -> x`` and a prior ``p(z)``,
trained by *two* optimizers. Keeping them as sub-modules named ``encoder``, ``decoder`` and ``prior`` is the
whole contract: :data:`PLAYERS` says which sub-modules each optimizer steps (the prior belongs to the
generative side, with the decoder), and the vectorized ensemble splits stacked parameters by these names.
Image models (residual, class-conditional, style-based) plug in by subclassing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor, nn

from ..flows import CouplingFlow
from ..priors import DecoupledPrior, Prior, StandardNormal

__all__ = ["IntroVAEModel", "PLAYERS", "seeded", "make_prior"]

#: The two players of the introspective game and the sub-modules each one's optimizer updates.
PLAYERS: dict[str, tuple[str, ...]] = {"encoder": ("encoder",), "decoder": ("decoder", "prior")}

M = TypeVar("M", bound=nn.Module)


def seeded(factory: Callable[[], M], seed: int) -> M:
    """Build a model whose initial weights depend on ``seed`` alone (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def make_prior(z_dim: int, flow_layers: int = 0, flow_hidden: int = 64) -> Prior:
    """N(0, I), or with ``flow_layers`` > 0 the decoupled prior of a ``flow_layers``-block coupling flow.

    Models take these two numbers rather than a prior object so that their constructor arguments, stored in
    checkpoints as plain values, rebuild them exactly.
    """
    if flow_layers <= 0:
        return StandardNormal(z_dim)
    return DecoupledPrior(CouplingFlow(z_dim, flow_layers, flow_hidden))


class IntroVAEModel(nn.Module):
    """Encoder/decoder pair with a diagonal-Gaussian posterior and a prior (N(0, I) unless given).

    Subclasses set ``encoder`` (output: ``2 * z_dim`` features, mean then log-variance) and
    ``decoder``, and pass the shape of one data sample.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, data_shape: tuple[int, ...], z_dim: int,
                 prior: Prior | None = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior if prior is not None else StandardNormal(z_dim)
        if self.prior.dim != z_dim:
            raise ValueError(f"the prior is over {self.prior.dim} dimensions, the latent space has {z_dim}")
        self.data_shape = tuple(int(d) for d in data_shape)
        self.z_dim = int(z_dim)

    def player_parameters(self, player: str) -> list[nn.Parameter]:
        """The parameters the ``player``'s optimizer updates (see :data:`PLAYERS`)."""
        return [p for part in PLAYERS[player] for p in getattr(self, part).parameters()]

    @property
    def event_dims(self) -> int:
        """How many trailing dimensions form one data sample (1 for vectors, 3 for images)."""
        return len(self.data_shape)

    @property
    def input_dim(self) -> int:
        """Number of scalars in one sample; Soft-IntroVAE's scale is ``s = 1 / input_dim``."""
        return math.prod(self.data_shape)

    def check_input(self, x: Tensor) -> None:
        """Fail loudly on data of the wrong shape instead of training on garbage."""
        if tuple(x.shape[-self.event_dims:]) != self.data_shape or x.dim() <= self.event_dims:
            raise ValueError(
                f"{type(self).__name__} expects a batch of samples of shape {self.data_shape} "
                f"(tensor shape (B, {', '.join(map(str, self.data_shape))})), got {tuple(x.shape)}. "
                "Resize or reshape the data, or build the model for this data shape."
            )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior parameters ``(mu, logvar)`` of q(z|x), each of shape (B, z_dim)."""
        self.check_input(x)
        h = self.encoder(x)
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Decoder mean D(z), shape (B, *data_shape)."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Deterministic reconstruction through the posterior mean: ``(mu, logvar, D(mu))``."""
        mu, logvar = self.encode(x)
        return mu, logvar, self.decode(mu)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples D(z), z ~ p(z) (for a decoupled prior: z = g^-1(z0), z0 ~ N(0, I))."""
        device = next(self.parameters()).device
        return self.decode(self.prior.sample(n, generator, device))
