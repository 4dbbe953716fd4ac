"""The training objectives of the book, each a small class with one interface.

Every objective answers two questions for one mini-batch ``x``:

* ``encoder_loss(model, x, noise, hp)``: the loss whose gradient updates the encoder ``phi``;
* ``decoder_loss(model, x, noise, hp, carry)``: the loss whose gradient updates the decoder ``theta``.

Both return a :class:`StepOutput`: the loss (to be *minimized*), the named terms it is made of (for
logging and for naming the term that blew up when a loss turns NaN), and a ``carry`` of tensors the
encoder step hands to the decoder step (Algorithm 2 draws ``Z = E(X)`` and ``Z_f ~ p(z)`` once per
iteration and uses them in both updates).

Design choices that the rest of the package depends on:

* **Losses are written for one run.** The vectorized ensemble (:mod:`sivae_core.ensemble`) maps the very
  same methods over many runs with :func:`torch.func.vmap`, so there is no second implementation.
* **Randomness comes in as ``noise``**, a stack of standard-normal draws of shape (K, B, z_dim) that the
  trainer takes from each run's own generator. ``noise_draws`` says how many each step consumes.
* **Hyperparameters come in as ``hp``** (a dict of floats or 0-d tensors; ``self.hparams`` by default),
  so an ensemble can sweep them (Fig. 3's sweep over the margin ``m``).
* **The trainer decides which parameters a loss updates** (``backward(inputs=...)``); the objectives put
  explicit ``.detach()`` stop-gradients exactly where the papers put them, and nowhere else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from .elbo import batch_mean, beta_elbo_energy, kl_to_standard_normal, reconstruction_error, reparameterize
from .models.base import IntroVAEModel

__all__ = ["StepOutput", "Noise", "Objective", "VAE", "IntroVAE", "SoftIntroVAE", "OBJECTIVES", "register_objective"]

HParams = Mapping[str, float | Tensor]


@dataclass
class StepOutput:
    """What one half-step of an objective produces."""

    loss: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)
    carry: dict[str, Tensor] = field(default_factory=dict)


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

    def __init__(self, **hparams: float):
        self.hparams: dict[str, float] = {k: float(v) for k, v in hparams.items()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"

    def resume_at(self, introspective_iterations: int) -> None:
        """Called by the trainer after it loads a checkpoint, with the number of introspective
        (non-warm-up) iterations already done. Stateless objectives ignore it; scheduled ones
        (AS-IntroVAE's annealing) pick up their schedule where the interrupted run left it."""

    @abstractmethod
    def encoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams) -> StepOutput:
        """Loss for the encoder update (for ``joint`` objectives: for both)."""

    def decoder_loss(
        self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams, carry: Mapping[str, Tensor]
    ) -> StepOutput:
        """Loss for the decoder update; joint objectives have none."""
        raise NotImplementedError(f"{type(self).__name__} is a joint objective: it has no separate decoder loss")


class VAE(Objective):
    """The beta-VAE: minimize ``beta_rec * L_r(x) + beta_kl * KL(q(z|x) || p(z))`` for both networks."""

    name = "vae"
    joint = True
    noise_draws = (1, 0)

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl)

    def encoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams) -> StepOutput:
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, noise.next())
        rec = reconstruction_error(x, model.decode(z), model.event_dims)
        kl = kl_to_standard_normal(mu, logvar)
        loss = batch_mean(beta_elbo_energy(rec, kl, hp["beta_rec"], hp["beta_kl"]))
        return StepOutput(loss, {"rec": batch_mean(rec), "kl": batch_mean(kl)})


class IntroVAE(Objective):
    """IntroVAE with the hard margin ``m`` (seed 001, Sec. 9.1.1, expanded form).

    ``L_E = beta_rec L_r(x) + beta_kl KL(x) + beta_neg * 1/2 sum_{fake in {x_r, x_f}} [m - KL(E(fake))]^+``
    ``L_D = beta_rec L_r(x) + beta_neg * 1/2 sum_{fake in {x_r, x_f}} KL(E(fake))``

    As in IntroVAE, both reconstructions ``x_r = D(E(x))`` and prior samples ``x_f = D(z), z ~ p(z)``
    are fakes, and the hinge acts on the batch-mean KL. Once the encoder pushes the fakes' KL above
    ``m`` the hinge is flat and the encoder receives *no* adversarial gradient: the instability that
    Soft-IntroVAE removes.
    """

    name = "introvae"
    noise_draws = (2, 0)

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0, beta_neg: float = 1.0, m: float = 1.0):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, beta_neg=beta_neg, m=m)

    def encoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams) -> StepOutput:
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, noise.next())
        z_f = noise.next()
        x_r, x_f = decode_both(model, z, z_f)
        rec = batch_mean(reconstruction_error(x, x_r, model.event_dims))
        kl = batch_mean(kl_to_standard_normal(mu, logvar))
        # The fakes are inputs to the encoder here: detach so this loss never reaches the decoder.
        mu_r, logvar_r, mu_f, logvar_f = encode_both(model, x_r.detach(), x_f.detach())
        kl_r = batch_mean(kl_to_standard_normal(mu_r, logvar_r))
        kl_f = batch_mean(kl_to_standard_normal(mu_f, logvar_f))
        margin = 0.5 * (F.relu(hp["m"] - kl_r) + F.relu(hp["m"] - kl_f))
        loss = hp["beta_rec"] * rec + hp["beta_kl"] * kl + hp["beta_neg"] * margin
        terms = {"rec": rec, "kl": kl, "kl_fake_rec": kl_r, "kl_fake_sample": kl_f, "margin": margin}
        return StepOutput(loss, terms, carry={"z": z.detach(), "z_f": z_f})

    def decoder_loss(
        self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams, carry: Mapping[str, Tensor]
    ) -> StepOutput:
        x_r, x_f = decode_both(model, carry["z"], carry["z_f"])
        rec = batch_mean(reconstruction_error(x, x_r, model.event_dims))
        mu_r, logvar_r, mu_f, logvar_f = encode_both(model, x_r, x_f)
        kl_r = batch_mean(kl_to_standard_normal(mu_r, logvar_r))
        kl_f = batch_mean(kl_to_standard_normal(mu_f, logvar_f))
        loss = hp["beta_rec"] * rec + hp["beta_neg"] * 0.5 * (kl_r + kl_f)
        return StepOutput(loss, {"rec": rec, "kl_fake_rec": kl_r, "kl_fake_sample": kl_f})


class SoftIntroVAE(Objective):
    """Soft-IntroVAE exactly as Algorithm 2 of seed 001 (Eq. 7 with reconstructions as fakes).

    Minimized forms, with ``s = 1 / input_dim`` and ``alpha = 2``
    (so that ``expELBO = 1/alpha * exp(alpha * s * ELBO)``, i.e. ``0.5 exp(2 s ELBO)``)::

        L_E = s (beta_rec L_r(x) + beta_kl KL(x))
              + 1/2 sum_{fake in {x_r, x_f}} 1/alpha exp(-alpha s (beta_rec L_r(fake) + beta_neg KL(fake)))
        L_D = s (beta_rec L_r(x)
              + 1/2 sum_{fake in {x_r, x_f}} (beta_kl KL(E(fake)) + gamma_r beta_rec L_r(fake, sg(D(E(fake))))))

    Stop-gradients follow Algorithm 2: the encoder sees the fakes as detached inputs (line 9), and in the
    decoder step the re-reconstructions ``X_rf, X_ff`` are ``sg(.)`` (line 22), so the decoder is pushed
    only through the fakes it produced. (The authors' 2D code instead detaches the fake and lets the
    gradient flow through the re-reconstruction; with ``gamma_r = 1e-8`` the two are indistinguishable.)
    """

    name = "sivae"
    noise_draws = (4, 2)

    def __init__(
        self,
        beta_rec: float = 1.0,
        beta_kl: float = 1.0,
        beta_neg: float = 1.0,
        gamma_r: float = 1e-8,
        alpha: float = 2.0,
        s: float | None = None,
    ):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, beta_neg=beta_neg, gamma_r=gamma_r, alpha=alpha)
        # s is a property of the data (1 / input_dim); None means "take it from the model".
        self.s = s

    def scale(self, model: IntroVAEModel) -> float:
        """The scaling constant ``s`` (Algorithm 2, line 2)."""
        return self.s if self.s is not None else 1.0 / model.input_dim

    # The three hooks below are Algorithm 2 as written. Later chapters change the game by overriding
    # exactly one of them: AS-IntroVAE (seed 003) the divergence the fakes are judged by, the decoupled
    # prior (seed 004) the prior itself.
    def prior_sample(self, model: IntroVAEModel, eps: Tensor) -> Tensor:
        """``Z_f ~ p(z)`` from standard normal noise ``eps`` (line 6); the prior here is N(0, I) itself."""
        return eps

    def kl(self, model: IntroVAEModel, mu: Tensor, logvar: Tensor, z: Tensor, frozen_prior: bool = False) -> Tensor:
        """Per-sample ``KL(q(z|x) || p(z))`` of posteriors ``(mu, logvar)`` (``z``: a sample from them, for
        priors without a closed form; ``frozen_prior``: the prior gets no gradient). Closed form for N(0, I)."""
        return kl_to_standard_normal(mu, logvar)

    def fake_divergence(self, player: str, kl_r: Tensor, kl_f: Tensor, post_r: tuple[Tensor, Tensor],
                        post_f: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """The per-sample divergence the game judges the fakes by (weighted by ``beta_neg`` in the encoder's
        ``expELBO``, by ``beta_kl`` in the decoder's loss), for reconstructions and for prior samples.
        Soft-IntroVAE: their KLs; ``post_*`` are the fakes' posteriors ``(mu, logvar)`` for overrides."""
        return kl_r, kl_f, {}

    def fake_energy(self, model: IntroVAEModel, fake: Tensor, mu: Tensor, logvar: Tensor, noise: Noise) -> tuple[Tensor, Tensor]:
        """Per-sample ``(L_r(fake, D(z)), KL(q(z|fake)))`` with ``z ~ q(z|fake)``: -ELBO of a fake, split."""
        z = reparameterize(mu, logvar, noise.next())
        rec = reconstruction_error(fake, model.decode(z), model.event_dims)
        return rec, self.kl(model, mu, logvar, z)

    def encoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams) -> StepOutput:
        s, alpha = self.scale(model), hp["alpha"]
        # Lines 5-6: Z = E(X), Z_f ~ p(z).
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, noise.next())
        z_f = self.prior_sample(model, noise.next())
        # Line 8: X_r = D(Z); X_f = D(Z_f) is only an input to the encoder here, so no graph is needed.
        x_r = model.decode(z)
        with torch.no_grad():
            x_f = model.decode(z_f)
        # Line 11: the ELBO of real data.
        rec = reconstruction_error(x, x_r, model.event_dims)
        kl = self.kl(model, mu, logvar, z)
        real = s * batch_mean(beta_elbo_energy(rec, kl, hp["beta_rec"], hp["beta_kl"]))
        # Lines 9-10, 12-15: the ELBO of both kinds of fakes, with beta_neg on the KL.
        x_r_in = x_r.detach()
        mu_r, logvar_r, mu_f, logvar_f = encode_both(model, x_r_in, x_f)
        rec_r, kl_r = self.fake_energy(model, x_r_in, mu_r, logvar_r, noise)
        rec_f, kl_f = self.fake_energy(model, x_f, mu_f, logvar_f, noise)
        div_r, div_f, extra = self.fake_divergence("encoder", kl_r, kl_f, (mu_r, logvar_r), (mu_f, logvar_f))
        exp_elbo_r = batch_mean(torch.exp(-alpha * s * beta_elbo_energy(rec_r, div_r, hp["beta_rec"], hp["beta_neg"]))) / alpha
        exp_elbo_f = batch_mean(torch.exp(-alpha * s * beta_elbo_energy(rec_f, div_f, hp["beta_rec"], hp["beta_neg"]))) / alpha
        # Line 16 (minimized): L_E = -ELBO + 1/2 (expELBO_r + expELBO_f).
        loss = real + 0.5 * (exp_elbo_r + exp_elbo_f)
        terms = {
            "rec": batch_mean(rec),
            "kl": batch_mean(kl),
            "exp_elbo_rec": exp_elbo_r,
            "exp_elbo_fake": exp_elbo_f,
            "kl_fake_rec": batch_mean(kl_r),
            "kl_fake_sample": batch_mean(kl_f),
            **extra,
        }
        return StepOutput(loss, terms, carry={"z": z.detach(), "z_f": z_f})

    def decoder_loss(
        self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams, carry: Mapping[str, Tensor]
    ) -> StepOutput:
        s = self.scale(model)
        # Line 20: decode the same Z and Z_f as the encoder step (Z carries no gradient to the encoder).
        x_r, x_f = decode_both(model, carry["z"], carry["z_f"])
        # Line 21: encode the fakes *with* gradient to their inputs: this is how the decoder learns to fool.
        mu_r, logvar_r, mu_f, logvar_f = encode_both(model, x_r, x_f)
        z_rf = reparameterize(mu_r, logvar_r, noise.next())
        z_ff = reparameterize(mu_f, logvar_f, noise.next())
        # Line 22: X_rf = sg(D(Z_rf)), X_ff = sg(D(Z_ff)).
        with torch.no_grad():
            x_rf, x_ff = decode_both(model, z_rf, z_ff)
        # Lines 23-26 (the prior is frozen: the decoder may move the fakes, not the prior onto them).
        rec = batch_mean(reconstruction_error(x, x_r, model.event_dims))
        kl_r = self.kl(model, mu_r, logvar_r, z_rf, frozen_prior=True)
        kl_f = self.kl(model, mu_f, logvar_f, z_ff, frozen_prior=True)
        div_r, div_f, extra = self.fake_divergence("decoder", kl_r, kl_f, (mu_r, logvar_r), (mu_f, logvar_f))
        rec_r = reconstruction_error(x_r, x_rf, model.event_dims)
        rec_f = reconstruction_error(x_f, x_ff, model.event_dims)
        gamma_beta_rec = hp["gamma_r"] * hp["beta_rec"]
        fake_r = batch_mean(beta_elbo_energy(rec_r, div_r, gamma_beta_rec, hp["beta_kl"]))
        fake_f = batch_mean(beta_elbo_energy(rec_f, div_f, gamma_beta_rec, hp["beta_kl"]))
        loss = s * (hp["beta_rec"] * rec + 0.5 * (fake_r + fake_f))
        terms = {"rec": rec, "kl_fake_rec": batch_mean(kl_r), "kl_fake_sample": batch_mean(kl_f), **extra}
        return StepOutput(loss, terms)


#: Objectives by their CLI name (``--method``). Modules of later chapters add theirs with
#: :func:`register_objective`; importing :mod:`sivae_core` imports them all.
OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Class decorator: make ``cls`` available by ``cls.name`` (e.g. ``--method asivae``)."""
    if cls.name in OBJECTIVES and OBJECTIVES[cls.name] is not cls:
        raise ValueError(f"an objective named {cls.name!r} is already registered")
    OBJECTIVES[cls.name] = cls
    return cls


for _cls in (VAE, IntroVAE, SoftIntroVAE):
    register_objective(_cls)
