"""The model interface every objective and the trainer rely on.

An introspective VAE is an encoder ``E: x -> (mu, logvar)`` and a decoder ``D: z -> x`` that are
trained by *two* optimizers. Keeping them as two sub-modules named ``encoder`` and ``decoder`` is the
whole contract: the trainer gives each its own Adam, and the vectorized ensemble splits stacked
parameters by these names. Image models (residual, class-conditional) plug in by subclassing.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["IntroVAEModel"]


class IntroVAEModel(nn.Module):
    """Encoder/decoder pair with a diagonal-Gaussian posterior and a N(0, I) prior.

    Subclasses set ``encoder`` (output: ``2 * z_dim`` features, mean then log-variance) and
    ``decoder``, and pass the shape of one data sample.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, data_shape: tuple[int, ...], z_dim: int):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.data_shape = tuple(int(d) for d in data_shape)
        self.z_dim = int(z_dim)

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
        """Draw ``n`` samples D(z), z ~ N(0, I)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.z_dim, generator=generator, device=device)
        return self.decode(z)
