"""The interface every training objective of the book implements, and the registry of their names.

Every objective answers two questions for one mini-batch ``x``:

* ``encoder_loss(model, x, noise, hp)``: the loss whose gradient updates the encoder ``phi``;
* ``decoder_loss(model, x, noise, hp, carry)``: the loss whose gradient updates the decoder ``theta``
  (and the prior, when it is learnable).

Both return a :class:`StepOutput`: the loss (to be *minimized*), the named terms it is made of (for
logging and for naming the term that blew up when a loss turns NaN), and a ``carry`` of tensors the
encoder step hands to the decoder step (Algorithm 2 draws ``Z = E(X)`` and ``Z_f ~ p(z)`` once per
iteration and uses them in both updates).

Design choices that the rest of the package depends on:

* **Losses are written for one run.** The vectorized ensemble (:mod:`sivae_core.training.ensemble`) maps the
  very same methods over many runs with :func:`torch.func.vmap`, so there is no second implementation.
* **Randomness comes in as ``noise``**, a stack of standard-normal draws of shape (K, B, z_dim) that the
  trainer takes from each run's own generator. ``noise_draws`` says how many each step consumes.
* **Hyperparameters come in as ``hp``** (a dict of floats or 0-d tensors; ``self.hparams`` by default),
  so an ensemble can sweep them (Fig. 3's sweep over the margin ``m``).
* **The trainer decides which parameters a loss updates** (``backward(inputs=...)``); the objectives put
  explicit ``.detach()`` stop-gradients exactly where the papers put them, and nowhere else.
* **State that a schedule needs** (an annealing counter) lives in the objective and is saved with the
  checkpoint (:meth:`Objective.state_dict`), so a resumed run continues the schedule exactly. Kept as a tensor on
  the device and advanced in place, it also survives a step recorded as a CUDA graph; kept as a Python number, it
  does not, and the objective says so (:attr:`Objective.recordable`).
* **Auxiliary networks** that an objective trains on the side (FactorVAE's discriminator) are declared by
  :meth:`Objective.auxiliary_modules`; the one trainer gives each its own optimizer and checkpoints it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..models.base import IntroVAEModel

__all__ = ["StepOutput", "Noise", "HParams", "Objective", "Auxiliary", "OBJECTIVES", "register_objective",
           "make_objective", "encode_both", "decode_both"]

HParams = Mapping[str, float | Tensor]


@dataclass
class StepOutput:
    """What one half-step of an objective produces."""

    loss: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)
    carry: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Auxiliary:
    """A network an objective trains beside the model, with the settings of its own Adam optimizer."""

    module: nn.Module
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)


class Noise:
    """Hands out the pre-drawn standard-normal tensors of one step, in order."""

    def __init__(self, eps: Tensor):
        self.eps = eps
        self.used = 0

    def next(self) -> Tensor:
        if self.used >= self.eps.shape[0]:
            raise RuntimeError(
                f"objective asked for more than the {self.eps.shape[0]} noise draws it declared in noise_draws"
            )
        out = self.eps[self.used]
        self.used += 1
        return out


def encode_both(model: IntroVAEModel, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Encode two batches in one call (one large matrix product is faster than two small ones).

    Returns ``(mu_a, logvar_a, mu_b, logvar_b)``. Exact because the models have no batch statistics.
    """
    mu, logvar = model.encode(torch.cat([a, b], dim=0))
    n = a.shape[0]
    return mu[:n], logvar[:n], mu[n:], logvar[n:]


def decode_both(model: IntroVAEModel, za: Tensor, zb: Tensor) -> tuple[Tensor, Tensor]:
    """Decode two batches of codes in one call; see :func:`encode_both`."""
    x = model.decode(torch.cat([za, zb], dim=0))
    n = za.shape[0]
    return x[:n], x[n:]


class Objective(ABC):
    """Common interface; subclasses define the two losses and their hyperparameters."""

    name: str = "objective"
    #: True when a single loss updates encoder and decoder together (the plain VAE).
    joint: bool = False
    #: (encoder step, decoder step): how many (B, z_dim) standard-normal draws each step consumes.
    noise_draws: tuple[int, int] = (0, 0)
    #: False when the steps advance state kept on the Python side (a schedule's counter): a step recorded once as a
    #: CUDA graph (``TrainConfig.cuda_graph``) and replayed would leave it where it was when the step was recorded.
    recordable: bool = True

    def __init__(self, **hparams: float):
        self.hparams: dict[str, float] = {k: float(v) for k, v in hparams.items()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def for_run(cls, iterations: int | None = None, dataset_size: int | None = None, **hparams: Any) -> Objective:
        """This objective for a run of ``iterations`` iterations on ``dataset_size`` examples. The hook for the
        objectives whose schedule or estimator depends on them (AS-IntroVAE's annealing length, beta-VAE-B's
        capacity ramp, beta-TCVAE's data-set size); the others ignore both."""
        return cls(**hparams)

    def state_dict(self) -> dict[str, Any]:
        """Plain-valued state a resumed run needs (a schedule's counter); stateless objectives have none."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - a no-op unless overridden
        """Restore :meth:`state_dict` (called by the trainer when it resumes from a checkpoint)."""

    def auxiliary_modules(self, model: IntroVAEModel, seed: int) -> dict[str, Auxiliary]:
        """Networks this objective trains on the side, by name (built once, initialised from ``seed``)."""
        return {}

    def auxiliary_loss(self, name: str, carry: Mapping[str, Tensor], generator: torch.Generator) -> Tensor:
        """The loss of auxiliary network ``name`` after a step, from that step's ``carry``."""
        raise NotImplementedError(f"{type(self).__name__} has no auxiliary network {name!r}")

    @abstractmethod
    def encoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams) -> StepOutput:
        """Loss for the encoder update (for ``joint`` objectives: for both)."""

    def decoder_loss(
        self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams, carry: Mapping[str, Tensor]
    ) -> StepOutput:
        """Loss for the decoder update; joint objectives have none."""
        raise NotImplementedError(f"{type(self).__name__} is a joint objective: it has no separate decoder loss")


#: Objectives by their CLI name (``--method``); importing :mod:`sivae_core.objectives` registers them all.
OBJECTIVES: dict[str, type[Objective]] = {}


def make_objective(name: str, iterations: int | None = None, dataset_size: int | None = None,
                   **hparams: Any) -> Objective:
    """The one way the book builds an objective: ``OBJECTIVES[name]`` with ``hparams``, for a run of ``iterations``
    iterations on ``dataset_size`` examples (see :meth:`Objective.for_run`)."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name].for_run(iterations, dataset_size, **hparams)


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Class decorator: make ``cls`` available by ``cls.name`` (e.g. ``--method asivae``)."""
    if cls.name in OBJECTIVES and OBJECTIVES[cls.name] is not cls:
        raise ValueError(f"an objective named {cls.name!r} is already registered")
    OBJECTIVES[cls.name] = cls
    return cls
