"""AS-IntroVAE (Lu et al. 2022): Soft-IntroVAE with an annealed Adversarial Similarity distance.

The adversarial term of Soft-IntroVAE compares *each* fake's posterior with the prior through
``KL(q(z|x_s) || p(z))``. AS-IntroVAE adds a *batch-level* comparison: the squared L2 distance between
the two mixtures of posteriors

    q_r(z) = 1/B sum_i q(z | x_r^i)   (reconstructions)      q_g(z) = 1/B sum_j q(z | x_g^j)   (samples)

    D(p_r, p_g) = int (q_r(z) - q_g(z))^2 dz
                = mean_ij k(r_i, r_j) + mean_ij k(g_i, g_j) - 2 mean_ij k(r_i, g_j)          (Eq. 7)

with the kernel ``k(a, b) = int q(z|a) q(z|b) dz``. For diagonal Gaussians the integral of a product of
Gaussians is again a Gaussian, evaluated at the other mean (Eq. 8):

    k(a, b) = N(mu_a; mu_b, diag(var_a + var_b))
            = prod_d (2 pi (var_a,d + var_b,d))^(-1/2) exp(-(mu_a,d - mu_b,d)^2 / (2 (var_a,d + var_b,d)))

It is computed from ``(mu, logvar)`` *before* reparameterization (no sampling noise). The paper writes
Eq. 5 with an expectation over ``p(z)``, but Eq. 8 is the plain (Lebesgue) integral; we implement Eq. 8.
Despite the paper's wording ("2-Wasserstein"), D is an L2 / MMD-type distance between two Gaussian
mixtures, not a Wasserstein distance.

The annealed objective (Eq. 9) replaces the fake KL in both players' losses by
``c KL(q(z|x_s) || p(z)) + (1 - c) D(p_r, p_g)`` with ``c = min(5 i / T, 1)``: early in training the
batch distance dominates, after 20% of the iterations AS-IntroVAE *is* Soft-IntroVAE (with the linear ramp; the
code form's tanh only approaches 1).

**Paper form vs code form.** The authors' code (LOUEY233/AS-IntroVAE, ``A_VAE.py`` / ``utils.py``)
differs from the paper in four ways, offered here as ``form="code"`` (``tests/test_asivae.py`` checks its losses
against a transcription of the authors' training step):

* ``c = min(tanh(5 i / T), 1)`` instead of the linear ramp;
* ``mu`` and ``logvar`` of the fakes are squashed by ``tanh`` before the distance (and, in the decoder
  step, before the fake KL too);
* the kernel is computed *per latent dimension* without the ``(2 pi)^(-1/2)`` constant and averaged over
  pairs and dimensions (a mean of 1-D kernels, not the product kernel of Eq. 8);
* the two players reduce and weigh that distance differently (``code_reductions``): the encoder step calls
  ``Gaussian_Distance(..., reduce='none')``, which *sums* the 1-D kernels over pairs and dimensions (``B^2 L``
  times the mean for batches of ``B`` codes of ``L`` dimensions), while the decoder step averages them
  (``reduce='mean'``) and weighs the distance once, ``0.5 beta_kl (c (KL_r + KL_f) + (1 - c) D)``, where the
  paper's Eq. 9 gives each kind of fake its own ``(1 - c) D``.

``form="paper"`` (default) follows Eq. 7-9. Individual switches (``anneal``, ``squash``, ``kernel``,
``code_reductions``) override the form.

**Annealing without touching the trainer.** ``c`` needs the iteration ``i`` and the budget ``T``. The
objective counts its own introspective iterations (``self.i``, +1 per decoder step) and ``T`` is the
constructor's ``total_iters`` (the introspective iterations, i.e. the trainer's ``iterations`` minus its
``vae_warmup``). Inside a vectorized :class:`~sivae_core.ensemble.Ensemble` the trainer calls only the
first run's objective, so all runs share one schedule (they share the iteration count anyway). A fixed
``c`` (the ablations of Appendix A.2) is set with ``c=...``; ``c=-1`` (default) means "annealed".
The counter is part of the objective's state, saved with every checkpoint, so a resumed run continues the schedule.
It is a tensor on the model's device, advanced by the step itself: a step recorded once as a CUDA graph and
replayed (``TrainConfig.cuda_graph``) then advances the schedule too, where a Python ``int`` would stay at the value
it had when the step was recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..elbo import kl_to_standard_normal
from ..models.base import IntroVAEModel
from .base import HParams, Noise, Objective, StepOutput, register_objective
from .soft_introvae import SoftIntroVAE

__all__ = ["as_log_kernel", "as_kernel", "as_distance", "as_distance_per_dim", "ANNEAL_MODES", "annealing_c",
           "ASIntroVAE"]


def as_log_kernel(mu_a: Tensor, logvar_a: Tensor, mu_b: Tensor, logvar_b: Tensor) -> Tensor:
    """log k(a_i, b_j) for all pairs: ``log N(mu_a,i; mu_b,j, diag(var_a,i + var_b,j))``, shape (A, B).

    Eq. 8 of Lu et al. (2022) in log space (the product over latent dimensions becomes a sum, which keeps the
    kernel finite for large latent dimensions).
    """
    var = logvar_a.exp().unsqueeze(-2) + logvar_b.exp().unsqueeze(-3)  # (..., A, B, L)
    diff2 = (mu_a.unsqueeze(-2) - mu_b.unsqueeze(-3)).pow(2)
    return -0.5 * (torch.log(2 * math.pi * var) + diff2 / var).sum(dim=-1)


def as_kernel(mu_a: Tensor, logvar_a: Tensor, mu_b: Tensor, logvar_b: Tensor) -> Tensor:
    """k(a_i, b_j) = int q(z|a_i) q(z|b_j) dz for all pairs (Eq. 8), shape (A, B)."""
    return as_log_kernel(mu_a, logvar_a, mu_b, logvar_b).exp()


def _mean_kernel(mu_a: Tensor, logvar_a: Tensor, mu_b: Tensor, logvar_b: Tensor) -> Tensor:
    """mean_ij k(a_i, b_j), computed with a log-sum-exp."""
    logk = as_log_kernel(mu_a, logvar_a, mu_b, logvar_b)
    n = logk.shape[-1] * logk.shape[-2]
    return torch.exp(torch.logsumexp(logk.flatten(-2), dim=-1) - math.log(n))


def as_distance(mu_r: Tensor, logvar_r: Tensor, mu_g: Tensor, logvar_g: Tensor) -> Tensor:
    """The AS-distance of Eq. 7: ``int (q_r(z) - q_g(z))^2 dz`` between the two batch mixtures.

    ``mean k(r, r) + mean k(g, g) - 2 mean k(r, g)`` over *all* pairs of the batch (diagonal included),
    which is exactly the squared L2 norm of the difference of the mixture densities, hence >= 0.
    """
    return (_mean_kernel(mu_r, logvar_r, mu_r, logvar_r) + _mean_kernel(mu_g, logvar_g, mu_g, logvar_g)
            - 2 * _mean_kernel(mu_r, logvar_r, mu_g, logvar_g))


def as_distance_per_dim(mu_r: Tensor, logvar_r: Tensor, mu_g: Tensor, logvar_g: Tensor,
                        reduce: str = "mean") -> Tensor:
    """The authors' code form: 1-D kernels ``exp(-d^2 / (2 v)) / sqrt(v)`` averaged (``reduce="mean"``) or summed
    (``"sum"``, their encoder step) over pairs *and* dims."""
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")

    def k(ma: Tensor, la: Tensor, mb: Tensor, lb: Tensor) -> Tensor:
        v = la.exp().unsqueeze(-2) + lb.exp().unsqueeze(-3)
        d2 = (ma.unsqueeze(-2) - mb.unsqueeze(-3)).pow(2)
        kernels = torch.exp(-0.5 * d2 / v) / v.sqrt()
        return kernels.mean(dim=(-3, -2, -1)) if reduce == "mean" else kernels.sum(dim=(-3, -2, -1))

    return k(mu_r, logvar_r, mu_r, logvar_r) + k(mu_g, logvar_g, mu_g, logvar_g) - 2 * k(mu_r, logvar_r, mu_g, logvar_g)


#: The schedules of ``c``: the paper's linear ramp and the authors' code's tanh.
ANNEAL_MODES = ("linear", "tanh")


def annealing_c(i: int | Tensor, total: int, mode: str = "linear") -> float | Tensor:
    """The weight of the KL in Eq. 9: ``min(5 i / T, 1)`` ("linear", paper) or ``min(tanh(5 i / T), 1)`` ("tanh", code).

    ``i`` may be a tensor (the objective's counter on the device); ``c`` is then a tensor on that device."""
    if mode not in ANNEAL_MODES:
        raise ValueError(f"unknown annealing mode {mode!r}; use one of {ANNEAL_MODES}")
    if total <= 0:
        return torch.ones_like(i, dtype=torch.float64) if isinstance(i, Tensor) else 1.0
    if isinstance(i, Tensor):
        t = 5.0 * i.double() / total
        return torch.clamp(torch.tanh(t) if mode == "tanh" else t, max=1.0)
    t = 5.0 * i / total
    return min(math.tanh(t) if mode == "tanh" else t, 1.0)


@register_objective
class ASIntroVAE(SoftIntroVAE):
    """AS-IntroVAE, Eq. 9 of Lu et al. (2022), built on Algorithm 2 of Soft-IntroVAE.

    Minimized forms (energies are negative ELBOs, ``s = 1 / input_dim``, ``alpha = 2``)::

        E_s   = beta_rec L_r(x_s) + beta_neg (c KL(q(z|x_s)) + (1 - c) D)          fake energy, s in {r, g}
        L_E   = s (beta_rec L_r(x) + beta_kl KL(x)) + 1/2 sum_s 1/alpha exp(-alpha s E_s)
        L_D   = s (beta_rec L_r(x) + 1/2 sum_s (gamma_r beta_rec L_r(x_s) + beta_kl (c KL(x_s) + (1 - c) D)))

    The encoder *maximizes* D (it lowers exp(-alpha s E_s)); the decoder minimizes it. With c = 1 this
    is exactly :class:`~sivae_core.objectives.soft_introvae.SoftIntroVAE`: the class overrides only the divergence the
    fakes are judged by (:meth:`fake_divergence`), so the rest of Algorithm 2 is literally shared.
    """

    name = "asivae"

    def __init__(self, beta_rec: float = 1.0, beta_kl: float = 1.0, beta_neg: float = 1.0, gamma_r: float = 1e-8,
                 alpha: float = 2.0, s: float | None = None, total_iters: int = 28_000, c: float = -1.0,
                 form: str = "paper", anneal: str | None = None, squash: bool | None = None,
                 kernel: str | None = None, code_reductions: bool | None = None, encoder_grad: str = "authors"):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, beta_neg=beta_neg, gamma_r=gamma_r, alpha=alpha, s=s,
                         encoder_grad=encoder_grad)
        if form not in ("paper", "code"):
            raise ValueError("form must be 'paper' or 'code'")
        code = form == "code"
        self.form = form
        self.anneal = anneal or ("tanh" if code else "linear")
        self.squash = code if squash is None else bool(squash)
        self.kernel = kernel or ("per_dim" if code else "product")
        if self.kernel not in ("product", "per_dim"):
            raise ValueError("kernel must be 'product' (Eq. 8) or 'per_dim' (authors' code)")
        self.code_reductions = code if code_reductions is None else bool(code_reductions)
        if self.code_reductions and self.kernel != "per_dim":
            raise ValueError("code_reductions are the authors' reductions of their per-dimension kernel: use "
                             "kernel='per_dim' with them")
        if self.anneal not in ANNEAL_MODES:
            raise ValueError(f"anneal must be one of {ANNEAL_MODES} (paper: 'linear', authors' code: 'tanh')")
        self.total_iters = int(total_iters)
        self.fixed_c = float(c)
        self._count = torch.zeros((), dtype=torch.float64)  # moved to the model's device by the first step

    def __repr__(self) -> str:
        return (f"ASIntroVAE(beta_rec={self.hparams['beta_rec']:g}, beta_kl={self.hparams['beta_kl']:g}, "
                f"beta_neg={self.hparams['beta_neg']:g}, form={self.form!r}, T={self.total_iters})")

    @classmethod
    def for_run(cls, iterations: int | None = None, dataset_size: int | None = None, **hparams: Any) -> Objective:
        """The annealing runs over the run's ``iterations`` (its introspective iterations, after any warm-up)."""
        return cls(**hparams) if iterations is None else cls(**hparams, total_iters=iterations)

    @property
    def i(self) -> int:
        """The introspective iterations counted so far (reading it waits for the device)."""
        return int(self._count.item())

    def state_dict(self) -> dict[str, Any]:
        return {"i": self.i}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._count.fill_(int(state["i"]))  # in place: a recorded step holds this very tensor

    # ------------------------------------------------------------------ pieces
    def c(self) -> float:
        """The current KL weight: fixed if ``c >= 0`` was given, else annealed from ``self.i``."""
        return float(self._c())

    def _c(self) -> Tensor:
        """:meth:`c` as a float64 tensor on the counter's device, for the losses."""
        if self.fixed_c >= 0:
            return torch.full((), self.fixed_c, dtype=torch.float64, device=self._count.device)
        return annealing_c(self._count, self.total_iters, self.anneal)

    def _prep(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
        return (torch.tanh(mu), torch.tanh(logvar)) if self.squash else (mu, logvar)

    def distance(self, mu_r: Tensor, logvar_r: Tensor, mu_f: Tensor, logvar_f: Tensor, reduce: str = "mean") -> Tensor:
        """D(p_r, p_g) between the posteriors of the reconstructions and of the generated samples (``reduce="sum"``:
        the authors' encoder's sum over pairs and dimensions, per-dimension kernel only)."""
        if reduce not in ("mean", "sum"):
            raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
        if self.kernel == "product" and reduce == "sum":
            raise ValueError("reduce='sum' is the authors' sum of per-dimension kernels; Eq. 8's product kernel has "
                             "only its mean over pairs: use kernel='per_dim' (form='code') to sum")
        mu_r, logvar_r = self._prep(mu_r, logvar_r)
        mu_f, logvar_f = self._prep(mu_f, logvar_f)
        if self.kernel == "product":
            return as_distance(mu_r, logvar_r, mu_f, logvar_f)
        return as_distance_per_dim(mu_r, logvar_r, mu_f, logvar_f, reduce)

    # ------------------------------------------------------------------ the one change to Algorithm 2
    def fake_divergence(self, player: str, kl_r: Tensor, kl_f: Tensor, post_r: tuple[Tensor, Tensor],
                        post_f: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Eq. 9: the fakes are judged by ``c KL + (1 - c) D(p_r, p_g)`` instead of their KL alone.

        The encoder *maximizes* D (it lowers ``exp(-alpha s E)`` of both fakes), the decoder minimizes it;
        D is one number per batch, shared by both kinds of fakes. With ``code_reductions`` the encoder's D is the
        authors' sum and the decoder gives each fake half a D (so that its loss holds D once, as theirs does); the
        logged ``as_dist`` is the D the player used.
        """
        summed = self.code_reductions and player == "encoder"
        dist = self.distance(*post_r, *post_f, reduce="sum" if summed else "mean")
        if self._count.device != dist.device:  # the first step, eager: the counter joins the model
            self._count = self._count.to(dist.device)
        c = self._c()  # float64 and 0-dim: it takes the dtype of the per-sample KLs it weighs
        if player == "decoder" and self.squash:
            # The code form also squashes before the decoder's fake KL (A_VAE.py); the paper does not.
            kl_r, kl_f = kl_to_standard_normal(*self._prep(*post_r)), kl_to_standard_normal(*self._prep(*post_f))
        weight = 0.5 if self.code_reductions and player == "decoder" else 1.0
        adv = weight * (1 - c) * dist.unsqueeze(-1)
        return c * kl_r + adv, c * kl_f + adv, {"as_dist": dist, "c": torch.zeros_like(dist) + c.to(dist.dtype)}

    def decoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams,
                     carry: Mapping[str, Tensor]) -> StepOutput:
        out = super().decoder_loss(model, x, noise, hp, carry)
        self._count.add_(1)  # one introspective iteration done (once per call, also under vmap: the counter is unbatched)
        return out
