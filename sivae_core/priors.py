"""The prior p(z), owned by the model: N(0, I) for every VAE of the book, or the decoupled prior of dpVAE.

Objectives, metrics and samplers never ask *which* prior a model has; they ask ``model.prior``:

* ``log_prob(z, frozen=False)``: log p(z) per code (``frozen``: the prior's own parameters get no gradient);
* ``rsample(eps)``: a prior sample from standard-normal noise, differentiable in the prior's parameters;
* ``sample(n, generator)``;
* ``kl(mu, logvar, z, frozen=False)``: the per-sample KL(q(z|x) || p(z)) of diagonal-Gaussian posteriors;
* ``to_generation(z)``: the code in the space where the prior *is* N(0, I) (the identity, or the flow ``g``).

The decoupled prior (Bhalodia, Lee & Elhabian 2020, Sec. 3, Eq. 2-5) is ``p(z) = N(g(z); 0, I) |det dg/dz|``
for a bijection ``g`` (:class:`~sivae_core.flows.CouplingFlow`): the posteriors and any regularizer live in the
*representation space* z, sampling happens in the *generation space* z0 = g(z) and is mapped back with g^-1.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .elbo import kl_to_standard_normal, standard_normal_log_prob
from .flows import CouplingFlow

__all__ = ["Prior", "StandardNormal", "DecoupledPrior", "monte_carlo_kl"]


def monte_carlo_kl(logvar: Tensor, log_prior: Tensor) -> Tensor:
    """Eq. 5 of the dpVAE paper: ``KL(q(z|x) || p(z)) ~ log q(z|x) - log p(z)`` at one ``z ~ q(z|x)``.

    The entropy of q is exact, ``-H(q) = -1/2 sum_l (log 2 pi e + logvar_l)``; only the cross-entropy
    ``-log p(z)`` (``log_prior``, evaluated at the reparameterized sample) is a one-sample estimate. Its
    expectation is the closed-form KL when the prior is N(0, I). (Eq. 5 as printed writes ``E[g(z)^T g(z)]``
    without the 1/2 of ``-log N`` and the log-determinant with the mask ``b`` where Eq. 3 transforms the
    coordinates of ``1 - b``; ``log_prior`` from :meth:`DecoupledPrior.log_prob` is the exact expression.)
    """
    neg_entropy = -0.5 * (logvar + math.log(2 * math.pi * math.e)).sum(dim=-1)
    return neg_entropy - log_prior


class Prior(nn.Module, ABC):
    """p(z) on ``dim``-dimensional codes; a module, so a learnable prior trains and checkpoints with its model."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = int(dim)

    @abstractmethod
    def log_prob(self, z: Tensor, frozen: bool = False) -> Tensor:
        """log p(z), one value per code."""

    @abstractmethod
    def rsample(self, eps: Tensor) -> Tensor:
        """A prior sample from standard-normal ``eps`` of the same shape."""

    @abstractmethod
    def kl(self, mu: Tensor, logvar: Tensor, z: Tensor, frozen: bool = False) -> Tensor:
        """Per-sample KL(N(mu, diag exp(logvar)) || p); ``z`` is a sample of that posterior."""

    @abstractmethod
    def to_generation(self, z: Tensor) -> Tensor:
        """The code in the space where the prior is the standard normal.

        Densities in the two spaces differ by the Jacobian: ``log p(z) = log N(g(z); 0, I) + log |det dg/dz|``.
        A score that compares ``log q(z)`` with ``log N(to_generation(z); 0, I)`` (the leakage score, Eq. 6 of
        the dpVAE paper) therefore carries ``log |det dg/dz|`` for a decoupled prior.
        """

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> Tensor:
        """``n`` prior samples (on ``device``, else the generator's device, else the CPU)."""
        device = device if device is not None else (generator.device if generator is not None else "cpu")
        return self.rsample(torch.randn(n, self.dim, generator=generator, device=device))


class StandardNormal(Prior):
    """p(z) = N(0, I): the prior of the VAE, IntroVAE and Soft-IntroVAE; its KL is in closed form."""

    def log_prob(self, z: Tensor, frozen: bool = False) -> Tensor:
        return standard_normal_log_prob(z)

    def rsample(self, eps: Tensor) -> Tensor:
        return eps

    def kl(self, mu: Tensor, logvar: Tensor, z: Tensor, frozen: bool = False) -> Tensor:
        return kl_to_standard_normal(mu, logvar)

    def to_generation(self, z: Tensor) -> Tensor:
        return z


class DecoupledPrior(Prior):
    """p(z) = N(g(z); 0, I) |det dg/dz| with a coupling flow ``g: z -> z0`` (dpVAE, Eq. 2-4).

    An untrained flow is the identity, so a model with this prior starts as the plain VAE. The KL has no
    closed form and is estimated with :func:`monte_carlo_kl`.
    """

    def __init__(self, flow: CouplingFlow):
        super().__init__(flow.dim)
        self.flow = flow

    def log_prob(self, z: Tensor, frozen: bool = False) -> Tensor:
        """``log N(g(z); 0, I) + log |det dg/dz|``. ``frozen`` evaluates the flow with detached parameters:
        gradients reach ``z`` but not the prior (a player who must not move the prior onto its fakes)."""
        if frozen:
            params = {k: v.detach() for k, v in self.flow.named_parameters()}
            z0, logdet = functional_call(self.flow, params, (z,))
        else:
            z0, logdet = self.flow(z)
        return standard_normal_log_prob(z0) + logdet

    def rsample(self, eps: Tensor) -> Tensor:
        """z = g^-1(eps): generation space -> representation space."""
        return self.flow.inverse(eps)

    def kl(self, mu: Tensor, logvar: Tensor, z: Tensor, frozen: bool = False) -> Tensor:
        return monte_carlo_kl(logvar, self.log_prob(z, frozen))

    def to_generation(self, z: Tensor) -> Tensor:
        return self.flow(z)[0]
