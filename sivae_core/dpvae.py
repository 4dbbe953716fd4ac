"""dpVAE (seed 004): regularized VAEs with and without a decoupled prior, and their training loop.

* :class:`DPVAEModel` is an :class:`~sivae_core.models.base.IntroVAEModel` whose *decoder side* also
  holds the flow ``g: z -> z0`` (``model.decoder.flow``): the prior is part of the generative model, so
  a two-optimizer trainer steps it with the decoder. Sampling draws ``z0 ~ N(0, I)``, maps it to the
  representation space with ``z = g^-1(z0)`` and decodes.
* :func:`prior_log_prob` / :func:`prior_rsample` work for both model kinds (N(0, I) when there is no
  flow), so every regularizer below is written once and is "dp" exactly when the model has a flow.
* :func:`dp_kl` is the dpVAE KL of Eq. 5 as a Monte Carlo estimate ``log q(z|x) - log p(z)`` at the
  reparameterized sample, with the entropy of q in closed form (``-1/2 log |Sigma|`` in Eq. 5).
* The regularizers act on the *representation space* z: beta-VAE-H, beta-VAE-B (capacity annealing),
  beta-TCVAE (minibatch-weighted sampling), FactorVAE (discriminator on permuted codes), InfoVAE-MMD.
  They are joint objectives (one loss for encoder, decoder and flow), registered for ``--method``.
* :func:`train_regularized` is the small loop they use: one Adam on the whole model plus, for
  FactorVAE, the discriminator's own Adam. (The shared :class:`~sivae_core.trainer.Trainer` would train
  all of them except FactorVAE's discriminator, which it does not know about.)
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .elbo import batch_mean, gaussian_log_prob, kl_to_standard_normal, reconstruction_error, reparameterize
from .flows import CouplingFlow, standard_normal_log_prob
from .models.base import IntroVAEModel
from .models.mlp import make_mlp
from .objectives import HParams, Noise, Objective, SoftIntroVAE, StepOutput, register_objective

__all__ = [
    "FlowDecoder", "DPVAEModel", "ToyDPVAE", "has_flow", "prior_log_prob", "prior_rsample", "dp_kl",
    "log_q_pairs", "tc_decomposition", "mmd_imq", "capacity", "RegularizedVAE", "BetaVAEH", "BetaVAEB",
    "BetaTCVAE", "FactorVAE", "InfoVAE", "DPSoftIntroVAE", "make_regularizer", "train_regularized",
]


# ------------------------------------------------------------------------------------------------ models
class FlowDecoder(nn.Module):
    """The generative side of a dpVAE: the decoder network ``net`` and the prior's flow ``flow``."""

    def __init__(self, net: nn.Module, flow: CouplingFlow):
        super().__init__()
        self.net = net
        self.flow = flow

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class DPVAEModel(IntroVAEModel):
    """A VAE with the decoupled prior ``p(z) = N(g(z); 0, I) |det dg/dz|`` (Fig. 2b)."""

    def __init__(self, encoder: nn.Module, decoder_net: nn.Module, flow: CouplingFlow,
                 data_shape: tuple[int, ...], z_dim: int):
        super().__init__(encoder, FlowDecoder(decoder_net, flow), data_shape, z_dim)

    @property
    def flow(self) -> CouplingFlow:
        return self.decoder.flow

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Generation (Fig. 2a): z0 ~ N(0, I), z = g^-1(z0), x = D(z)."""
        device = next(self.parameters()).device
        z0 = torch.randn(n, self.z_dim, generator=generator, device=device)
        return self.decode(self.flow.inverse(z0))


class ToyDPVAE(DPVAEModel):
    """The 2D model of :class:`~sivae_core.models.ToyVAE` plus a coupling flow on its latent space."""

    def __init__(self, x_dim: int = 2, z_dim: int = 2, hidden: int = 256, n_hidden_layers: int = 3,
                 flow_layers: int = 6, flow_hidden: int = 64):
        super().__init__(make_mlp(x_dim, 2 * z_dim, hidden, n_hidden_layers), make_mlp(z_dim, x_dim, hidden, n_hidden_layers),
                         CouplingFlow(z_dim, flow_layers, flow_hidden), (x_dim,), z_dim)


def has_flow(model: IntroVAEModel) -> bool:
    """True for a model with a decoupled prior."""
    return isinstance(getattr(model, "decoder", None), FlowDecoder)


def prior_log_prob(model: IntroVAEModel, z: Tensor, frozen: bool = False) -> Tensor:
    """log p(z): the decoupled prior for a dpVAE, log N(z; 0, I) otherwise.

    ``frozen`` evaluates the flow with detached parameters: gradients reach ``z`` but not the prior
    (used when a player must not move the prior, see :class:`DPSoftIntroVAE`).
    """
    if not has_flow(model):
        return standard_normal_log_prob(z)
    flow = model.decoder.flow
    if frozen:
        params = {k: v.detach() for k, v in flow.named_parameters()}
        z0, logdet = functional_call(flow, params, (z,))
    else:
        z0, logdet = flow(z)
    return standard_normal_log_prob(z0) + logdet


def prior_rsample(model: IntroVAEModel, eps: Tensor) -> Tensor:
    """A differentiable prior sample in the representation space: g^-1(eps) for a dpVAE, eps otherwise."""
    return model.decoder.flow.inverse(eps) if has_flow(model) else eps


# ------------------------------------------------------------------------------------------------ KLs
def dp_kl(mu: Tensor, logvar: Tensor, z: Tensor, log_prior: Tensor) -> Tensor:
    """Eq. 5: KL(q(z|x) || p(z)) ~ log q(z|x) - log p(z) at ``z ~ q(z|x)``, entropy of q in closed form.

    ``-H(q) = -1/2 sum_l (log 2 pi e + logvar_l)`` is exact; only the cross-entropy ``-log p(z)`` is a
    one-sample estimate. With the identity flow its expectation is the closed-form KL to N(0, I).
    """
    neg_entropy = -0.5 * (logvar + math.log(2 * math.pi * math.e)).sum(dim=-1)
    return neg_entropy - log_prior


def latent_kl(model: IntroVAEModel, mu: Tensor, logvar: Tensor, z: Tensor, frozen: bool = False) -> Tensor:
    """Per-sample KL(q(z|x) || p(z)): closed form for N(0, I), :func:`dp_kl` for a decoupled prior."""
    if not has_flow(model):
        return kl_to_standard_normal(mu, logvar)
    return dp_kl(mu, logvar, z, prior_log_prob(model, z, frozen))


def log_q_pairs(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log q(z_i | x_j) per dimension for all pairs, shape (B, B, L) (i: sample, j: posterior)."""
    zi, mj, lj = z.unsqueeze(-2), mu.unsqueeze(-3), logvar.unsqueeze(-3)
    return -0.5 * ((zi - mj).pow(2) / lj.exp() + lj + math.log(2 * math.pi))


def tc_decomposition(z: Tensor, mu: Tensor, logvar: Tensor, log_prior: Tensor, dataset_size: int) -> dict[str, Tensor]:
    """beta-TCVAE's three terms with the minibatch-weighted sampling (MWS) estimator.

    With ``M`` = batch size and ``N`` = dataset size::

        log q(z_i)     ~ logsumexp_j log q(z_i|x_j)   - log(N M)
        log q(z_i,l)   ~ logsumexp_j log q(z_i,l|x_j) - log(N M)
        MI     = E[log q(z|x) - log q(z)]
        TC     = E[log q(z) - sum_l log q(z_l)]
        dimKL  = E[sum_l log q(z_l) - log p(z)]

    MI + TC + dimKL = E[log q(z|x) - log p(z)], the one-sample KL, whatever the estimator of q(z).
    Returns per-sample tensors.
    """
    m = z.shape[-2]
    pairs = log_q_pairs(z, mu, logvar)  # (B, B, L)
    log_norm = math.log(dataset_size * m)
    log_qz = torch.logsumexp(pairs.sum(-1), dim=-1) - log_norm
    log_qz_prod = (torch.logsumexp(pairs, dim=-2) - log_norm).sum(-1)
    log_qzx = gaussian_log_prob(z, mu, logvar)
    return {"mi": log_qzx - log_qz, "tc": log_qz - log_qz_prod, "dimkl": log_qz_prod - log_prior}


def mmd_imq(a: Tensor, b: Tensor, scale: float = 1.0) -> Tensor:
    """Unbiased MMD^2 between samples ``a`` and ``b`` (B, L) with the inverse multiquadric kernel
    ``k(x, y) = C / (C + |x - y|^2)``, ``C = 2 L scale`` (as in InfoVAE / WAE)."""
    n, dim = a.shape[-2], a.shape[-1]
    c = 2.0 * dim * scale

    def k(x: Tensor, y: Tensor) -> Tensor:
        return c / (c + (x.unsqueeze(-2) - y.unsqueeze(-3)).pow(2).sum(-1))

    off = 1.0 - torch.eye(n, dtype=a.dtype, device=a.device)
    kaa = (k(a, a) * off).sum((-2, -1)) / (n * (n - 1))
    kbb = (k(b, b) * off).sum((-2, -1)) / (n * (n - 1))
    kab = k(a, b).mean((-2, -1))
    return kaa + kbb - 2 * kab


def capacity(i: int, c_max: float, c_iters: int) -> float:
    """beta-VAE-B's capacity ``C = min(C_max, C_max i / C_iters)`` (linear annealing from 0)."""
    return float(c_max) if c_iters <= 0 else float(min(c_max, c_max * i / c_iters))


# ------------------------------------------------------------------------------------------------ objectives
class RegularizedVAE(Objective):
    """Base of the regularized VAEs: ``rec + penalty``, one joint loss; "dp" iff the model has a flow.

    Hyperparameters always include ``beta_rec`` and ``beta_kl`` (so the shared trainer's VAE warm-up
    works). ``self.i`` counts steps for the schedules that need one (beta-VAE-B).
    """

    joint = True
    noise_draws = (1, 0)
    #: Mini-batches must be at least this large (the batch estimators need more than one sample).
    needs_batch = False

    def __init__(self, **hparams: float):
        super().__init__(**hparams)
        self.i = 0

    def penalty(self, model: IntroVAEModel, mu: Tensor, logvar: Tensor, z: Tensor, noise: Noise,
                hp: HParams) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample (or batch, broadcastable) latent penalty and its named terms."""
        raise NotImplementedError

    def encoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams) -> StepOutput:
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, noise.next())
        rec = reconstruction_error(x, model.decode(z), model.event_dims)
        pen, terms = self.penalty(model, mu, logvar, z, noise, hp)
        loss = batch_mean(hp["beta_rec"] * rec + pen)
        self.i += 1
        return StepOutput(loss, {"rec": batch_mean(rec), **terms}, carry={"z": z.detach()})


@register_objective
class BetaVAEH(RegularizedVAE):
    """beta-VAE (Higgins et al.): ``rec + beta KL`` (beta = ``beta_kl``; beta = 1 is the plain VAE / dpVAE)."""

    name = "betavae_h"

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 4.0):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl)

    def penalty(self, model, mu, logvar, z, noise, hp):
        kl = latent_kl(model, mu, logvar, z)
        return hp["beta_kl"] * kl, {"kl": batch_mean(kl)}


@register_objective
class BetaVAEB(RegularizedVAE):
    """beta-VAE (Burgess et al.): ``rec + gamma |KL - C|`` with the capacity ``C`` annealed linearly from
    0 to ``c_max`` over ``c_iters`` steps. The KL is the *batch mean* inside the absolute value."""

    name = "betavae_b"

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0, gamma: float = 100.0, c_max: float = 5.0,
                 c_iters: int = 10_000):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, gamma=gamma, c_max=c_max)
        self.c_iters = int(c_iters)

    def penalty(self, model, mu, logvar, z, noise, hp):
        kl = latent_kl(model, mu, logvar, z)
        cap = capacity(self.i, float(self.hparams["c_max"]), self.c_iters)
        pen = hp["gamma"] * (batch_mean(kl) - cap).abs()
        return pen.unsqueeze(-1).expand_as(kl), {"kl": batch_mean(kl), "capacity": torch.full_like(pen, cap)}


@register_objective
class BetaTCVAE(RegularizedVAE):
    """beta-TCVAE (Chen et al.): ``rec + a MI + b TC + g dimKL`` (MWS estimator, :func:`tc_decomposition`).

    With a decoupled prior only ``dimKL`` sees p(z) (seed 004 Sec. 4.3), through log p(z) of the flow.
    """

    name = "betatcvae"
    needs_batch = True

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0, alpha: float = 1.0, beta: float = 6.0,
                 gamma: float = 1.0, dataset_size: int = 60_000):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, alpha=alpha, beta=beta, gamma=gamma)
        self.dataset_size = int(dataset_size)

    def penalty(self, model, mu, logvar, z, noise, hp):
        t = tc_decomposition(z, mu, logvar, prior_log_prob(model, z), self.dataset_size)
        pen = hp["alpha"] * t["mi"] + hp["beta"] * t["tc"] + hp["gamma"] * t["dimkl"]
        return pen, {k: batch_mean(v) for k, v in t.items()}


class Discriminator(nn.Module):
    """FactorVAE's discriminator: an MLP on codes, one logit for "joint" (vs "permuted")."""

    def __init__(self, z_dim: int, hidden: int = 256, n_hidden: int = 3):
        super().__init__()
        self.net = make_mlp(z_dim, 1, hidden, n_hidden - 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(-1)


def permute_dims(z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Shuffle each latent dimension independently across the batch: samples of prod_l q(z_l)."""
    b, dim = z.shape
    idx = torch.stack([torch.randperm(b, generator=generator, device=z.device) for _ in range(dim)], dim=1)
    return torch.gather(z, 0, idx)


@register_objective
class FactorVAE(RegularizedVAE):
    """FactorVAE (Kim & Mnih): ``rec + KL + gamma TC`` with ``TC ~ E_q(z)[logit D(z)]`` (density-ratio trick).

    The discriminator ``D`` lives in the objective (``self.discriminator``, built on first use) and
    is trained by :meth:`discriminator_loss` with its own optimizer in :func:`train_regularized`: logistic
    loss for codes of the batch (label 1) against the same codes with every dimension permuted across
    the batch (label 0). In the VAE loss the discriminator's parameters are frozen (detached).
    """

    name = "factorvae"
    needs_batch = True

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0, gamma: float = 10.0, disc_hidden: int = 256):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, gamma=gamma)
        self.disc_hidden = int(disc_hidden)
        self.discriminator: Discriminator | None = None

    def ensure_discriminator(self, z_dim: int, device: torch.device | str = "cpu") -> Discriminator:
        if self.discriminator is None:
            self.discriminator = Discriminator(z_dim, self.disc_hidden).to(device)
        return self.discriminator

    def penalty(self, model, mu, logvar, z, noise, hp):
        disc = self.ensure_discriminator(z.shape[-1], z.device)
        params = {k: v.detach() for k, v in disc.named_parameters()}
        logits = functional_call(disc, params, (z,))
        kl = latent_kl(model, mu, logvar, z)
        tc = logits.mean(-1)
        return hp["beta_kl"] * kl + hp["gamma"] * tc, {"kl": batch_mean(kl), "tc": tc}

    def discriminator_loss(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Logistic loss: joint codes ``z`` (detached) are class 1, dimension-permuted codes class 0."""
        disc = self.ensure_discriminator(z.shape[-1], z.device)
        z = z.detach()
        zp = permute_dims(z, generator)
        lj, lp = disc(z), disc(zp)
        return 0.5 * (F.binary_cross_entropy_with_logits(lj, torch.ones_like(lj))
                      + F.binary_cross_entropy_with_logits(lp, torch.zeros_like(lp)))


@register_objective
class InfoVAE(RegularizedVAE):
    """InfoVAE-MMD (Zhao et al.): ``rec + (1 - a) KL + (a + lambda - 1) MMD(q(z), p(z))``.

    Prior samples for the MMD are ``g^-1(eps)`` with a decoupled prior (seed 004 Sec. 4.3), so the MMD
    also trains the flow. Defaults ``a = 0, lambda = 1000`` (the usual MMD-VAE choice, with the
    per-sample sum-of-squares reconstruction error).
    """

    name = "infovae"
    noise_draws = (2, 0)
    needs_batch = True

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0, alpha: float = 0.0, lam: float = 1000.0):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, alpha=alpha, lam=lam)

    def penalty(self, model, mu, logvar, z, noise, hp):
        kl = latent_kl(model, mu, logvar, z)
        zp = prior_rsample(model, noise.next())
        mmd = mmd_imq(z, zp)
        pen = (1 - hp["alpha"]) * hp["beta_kl"] * kl + (hp["alpha"] + hp["lam"] - 1) * mmd.unsqueeze(-1)
        return pen, {"kl": batch_mean(kl), "mmd": mmd}


def make_regularizer(name: str, hparams: Mapping[str, float], iterations: int, dataset_size: int) -> RegularizedVAE:
    """Regularizer ``name`` with ``hparams``. ``"vae"`` is beta-VAE-H (with its ``beta_kl``, 1 for the plain
    VAE); beta-VAE-B anneals its capacity over the first half of ``iterations``; beta-TCVAE's minibatch-weighted
    estimator needs the data set size."""
    classes = {"vae": BetaVAEH, "betavae_h": BetaVAEH, "betavae_b": BetaVAEB, "betatcvae": BetaTCVAE,
               "factorvae": FactorVAE, "infovae": InfoVAE}
    if name not in classes:
        raise ValueError(f"unknown regularizer {name!r}; choose one of {sorted(classes)}")
    cls = classes[name]
    extra = {"betavae_b": {"c_iters": iterations // 2}, "betatcvae": {"dataset_size": dataset_size}}.get(name, {})
    return cls(**hparams, **extra)


# ------------------------------------------------------------------------------------------------ training
def train_regularized(model: IntroVAEModel, objective: RegularizedVAE, sampler: Callable[[int, torch.Generator], Tensor],
                      iterations: int, batch_size: int = 512, lr: float = 1e-3, lr_disc: float = 1e-4,
                      seed: int = 0, log_every: int = 0, lr_milestones: tuple[int, ...] = (),
                      progress: bool = False) -> list[dict[str, float]]:
    """Train a regularized (dp)VAE: one Adam on all of the model (encoder, decoder, flow), plus FactorVAE's
    discriminator Adam. Data and noise come from one generator seeded with ``seed``; returns the log.
    The learning rate (of the model, not the discriminator) is multiplied by 0.1 at each of ``lr_milestones``."""
    from tqdm.auto import trange

    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(lr_milestones), 0.1)
    disc_opt = None
    if isinstance(objective, FactorVAE):
        disc = objective.ensure_discriminator(model.z_dim, device)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=lr_disc, betas=(0.5, 0.9))
    history: list[dict[str, float]] = []
    hp = objective.hparams
    for it in trange(iterations, disable=not progress, desc=type(objective).__name__, leave=False):
        x = sampler(batch_size, g).to(device)
        eps = torch.randn(objective.noise_draws[0], batch_size, model.z_dim, generator=g).to(device)
        out = objective.encoder_loss(model, x, Noise(eps), hp)
        if not bool(torch.isfinite(out.loss)):
            raise FloatingPointError(f"iteration {it}: {type(objective).__name__} loss is not finite: "
                                     f"{ {k: float(v) for k, v in out.terms.items()} }")
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        sched.step()
        rec: dict[str, float] = {}
        if disc_opt is not None:
            d_loss = objective.discriminator_loss(out.carry["z"], g)
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
            rec["disc"] = float(d_loss.detach())
        if log_every and (it + 1) % log_every == 0:
            rec.update({"iteration": it + 1, "loss": float(out.loss.detach()), **{k: float(v.detach()) for k, v in out.terms.items()}})
            history.append(rec)
    return history


# ------------------------------------------------------------------------------------------------ S-IntroVAE + dp
@register_objective
class DPSoftIntroVAE(SoftIntroVAE):
    """Going past the papers: Soft-IntroVAE (Algorithm 2) played in the representation space of a dpVAE.

    Only the prior changes: every KL to N(0, I) becomes the decoupled-prior KL (:func:`dp_kl`), and fakes
    are generated as ``D(g^-1(z0))``. The flow belongs to the decoder's optimizer, but it must not take
    part in the game: otherwise the decoder could "fool" the encoder by moving the prior onto the fakes'
    posteriors. So the fake KLs in the decoder step use a *frozen* flow (gradients reach the fakes, not
    the prior), and the flow is trained only on real data, by the term ``-beta_kl log p(z)`` at the real
    codes (the flow's part of the real ELBO) added to L_D. With the identity flow frozen this is
    Soft-IntroVAE with a Monte Carlo KL.
    """

    name = "dpsivae"

    def prior_sample(self, model: IntroVAEModel, eps: Tensor) -> Tensor:
        return prior_rsample(model, eps).detach()

    def kl(self, model: IntroVAEModel, mu: Tensor, logvar: Tensor, z: Tensor, frozen_prior: bool = False) -> Tensor:
        return latent_kl(model, mu, logvar, z, frozen=frozen_prior)

    def decoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams,
                     carry: Mapping[str, Tensor]) -> StepOutput:
        out = super().decoder_loss(model, x, noise, hp, carry)
        if not has_flow(model):
            return out
        # The flow's share of the real ELBO: fit the prior to the real codes (only the flow sees this term).
        prior_fit = -batch_mean(prior_log_prob(model, carry["z"]))
        return StepOutput(out.loss + self.scale(model) * hp["beta_kl"] * prior_fit, {**out.terms, "prior_nll": prior_fit})
