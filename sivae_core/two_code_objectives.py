"""Objectives for models with two codes (class and content, :mod:`sivae_core.models.two_code`).

* :class:`TwoCodeSoftIntroVAE`: Soft-IntroVAE with one ``beta_neg`` per code (Daniel & Tamar 2021,
  Appendix 9.3: ``beta_neg`` 2048 for the content code, 1024 for the class code on Cars3D). It changes
  Algorithm 2 through one hook, :meth:`~sivae_core.objectives.SoftIntroVAE.fake_divergence`, like
  AS-IntroVAE does: the rest of the algorithm is inherited, not copied.
* :class:`Autoencoder`: the deterministic two-encoder autoencoder, LORD's reference point (Gabbay & Hoshen
  2020 found it better than a beta-VAE on this architecture, whose KL vanishes).
* The beta-VAE is the book's :class:`~sivae_core.objectives.VAE`: with the KL summed over the
  concatenated code it is exactly ``rec + KL_class + KL_content``.
"""

from __future__ import annotations

from torch import Tensor

from .elbo import batch_mean, kl_to_standard_normal, reconstruction_error
from .models.base import IntroVAEModel
from .models.two_code import split_code
from .objectives import (
    HParams,
    Noise,
    Objective,
    SoftIntroVAE,
    StepOutput,
    register_objective,
)

__all__ = ["Autoencoder", "TwoCodeSoftIntroVAE", "code_kls"]


def code_kls(mu: Tensor, logvar: Tensor, class_dim: int) -> tuple[Tensor, Tensor]:
    """Per-sample ``(KL_class, KL_content)`` of a posterior over the code ``[class, content]``; they sum
    to the KL of the whole code, since the posterior and the prior factorize over dimensions."""
    mu_class, mu_content = split_code(mu, class_dim)
    logvar_class, logvar_content = split_code(logvar, class_dim)
    return kl_to_standard_normal(mu_class, logvar_class), kl_to_standard_normal(mu_content, logvar_content)


@register_objective
class TwoCodeSoftIntroVAE(SoftIntroVAE):
    """Soft-IntroVAE (Algorithm 2) with a ``beta_neg`` for each code.

    In the encoder's ``expELBO`` of a fake, ``beta_neg KL(fake)`` becomes
    ``beta_neg_class KL_class(fake) + beta_neg_content KL_content(fake)``. Everything else is Algorithm 2:
    the real ELBO ``beta_rec L_r + beta_kl (KL_class + KL_content)`` and the decoder's loss, which weighs
    the fakes' KL by ``beta_kl``, are those of the parent class. The inherited ``beta_neg`` hyperparameter
    is ``beta_neg_content``; the hook rescales the class part by ``beta_neg_class / beta_neg_content``.
    ``class_dim`` says where the concatenated code splits (the hook sees posteriors, not the model).
    """

    name = "two_code_sivae"

    def __init__(self, class_dim: int, beta_rec: float = 0.5, beta_kl: float = 1.0, beta_neg_class: float = 1024.0,
                 beta_neg_content: float = 2048.0, gamma_r: float = 1e-8, alpha: float = 2.0, s: float | None = None):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, beta_neg=beta_neg_content, gamma_r=gamma_r,
                         alpha=alpha, s=s)
        self.hparams["beta_neg_class"] = float(beta_neg_class)
        self.class_dim = int(class_dim)

    def __repr__(self) -> str:
        hp = self.hparams
        return (f"TwoCodeSoftIntroVAE(class_dim={self.class_dim}, beta_rec={hp['beta_rec']:g}, "
                f"beta_kl={hp['beta_kl']:g}, beta_neg_class={hp['beta_neg_class']:g}, "
                f"beta_neg_content={hp['beta_neg']:g})")

    def fake_divergence(self, player: str, kl_r: Tensor, kl_f: Tensor, post_r: tuple[Tensor, Tensor],
                        post_f: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """The encoder judges a fake by ``KL_content + (beta_neg_class / beta_neg_content) KL_class``, which
        Algorithm 2 multiplies by ``beta_neg = beta_neg_content``; the decoder by the plain KL (``beta_kl``
        is shared). The per-code KLs of both kinds of fakes are logged."""
        cls_r, cnt_r = code_kls(*post_r, self.class_dim)
        cls_f, cnt_f = code_kls(*post_f, self.class_dim)
        terms = {"kl_fake_rec_class": batch_mean(cls_r), "kl_fake_rec_content": batch_mean(cnt_r),
                 "kl_fake_sample_class": batch_mean(cls_f), "kl_fake_sample_content": batch_mean(cnt_f)}
        if player != "encoder":
            return kl_r, kl_f, terms
        ratio = self.hparams["beta_neg_class"] / self.hparams["beta_neg"]
        return cnt_r + ratio * cls_r, cnt_f + ratio * cls_f, terms


@register_objective
class Autoencoder(Objective):
    """A deterministic autoencoder: minimize ``beta_rec * L_r(x, D(mu(x)))`` for both networks.

    It decodes the posterior mean and ignores the log-variance head, so it has no KL and no noise: the
    reference that shows what the codes carry when nothing pulls them towards the prior.
    """

    name = "ae"
    joint = True
    noise_draws = (0, 0)

    def __init__(self, beta_rec: float = 1.0):
        super().__init__(beta_rec=beta_rec)

    def encoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams) -> StepOutput:
        mu, _ = model.encode(x)
        rec = batch_mean(reconstruction_error(x, model.decode(mu), model.event_dims))
        return StepOutput(hp["beta_rec"] * rec, {"rec": rec})
