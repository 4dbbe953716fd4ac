"""Soft-IntroVAE (Daniel & Tamar 2021): Algorithm 2, written once.

AS-IntroVAE (:mod:`~sivae_core.objectives.as_introvae`) and Soft-IntroVAE with a decoupled prior
(:mod:`~sivae_core.objectives.dp`) inherit it and override hooks, so every introspective chapter trains the
very same lines.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..elbo import batch_mean, beta_elbo_energy, reconstruction_error, reparameterize
from ..models.base import IntroVAEModel
from .base import HParams, Noise, Objective, StepOutput, decode_both, encode_both, register_objective

__all__ = ["SoftIntroVAE", "ENCODER_GRAD_READINGS"]

#: How the encoder step treats the reconstructions ``X_r = D(E(X))`` it judges (see :class:`SoftIntroVAE`).
ENCODER_GRAD_READINGS = ("authors", "detached", "printed")


@register_objective
class SoftIntroVAE(Objective):
    """Soft-IntroVAE as Algorithm 2 of Daniel & Tamar (2021, Appendix 9.1; Eq. 7 with reconstructions as fakes).

    Minimized forms, with ``s = 1 / input_dim`` and ``alpha = 2``
    (so that ``expELBO = 1/alpha * exp(alpha * s * ELBO)``, i.e. ``0.5 exp(2 s ELBO)``)::

        L_E = s (beta_rec L_r(x) + beta_kl KL(x))
              + 1/2 sum_{fake in {x_r, x_f}} 1/alpha exp(-alpha s (beta_rec L_r(fake) + beta_neg KL(fake)))
        L_D = s (beta_rec L_r(x)
              + 1/2 sum_{fake in {x_r, x_f}} (beta_kl KL(E(fake)) + gamma_r beta_rec L_r(fake, sg(D(E(fake))))))

    The KLs are the model's prior's (``model.prior``: closed form for N(0, I)). In the decoder step the
    re-reconstructions ``X_rf, X_ff`` are ``sg(.)`` (line 22), so the decoder is pushed only through the fakes
    it produced. (The authors' code instead detaches the fake and lets the gradient flow through the
    re-reconstruction; with ``gamma_r = 1e-8`` the two are indistinguishable.)

    **Which gradient the encoder gets through the reconstructions** (``encoder_grad``). The fake energy of a
    reconstruction is ``beta_rec L_r(X_r, D(E(X_r))) + beta_neg KL(E(X_r))``, and ``X_r = D(E(X))`` itself depends
    on the encoder. Three readings exist:

    * ``"authors"`` (default): the authors' code (``soft_intro_vae/train_soft_intro_vae.py``, and the 2D code the
      same way) feeds ``X_r.detach()`` to the encoder but keeps ``X_r``'s gradient as the *target* of the
      reconstruction error, so the encoder is also pushed through ``D(E(X))``. This produced the paper's numbers.
    * ``"detached"``: ``X_r`` is a constant in the encoder step (the first reading of this book; the encoder learns
      from the fakes only through the posterior it assigns them).
    * ``"printed"``: Algorithm 2 as printed has no stop-gradient in the encoder update at all: ``X_r`` keeps its
      gradient as input and as target.

    The losses are the same under all three; only the encoder's gradient differs. The decoder's difference from
    the authors' code (their gradient through ``D(Z_rf)`` rather than through ``X_r`` in the ``gamma_r`` term) is
    scaled by ``gamma_r = 1e-8`` and negligible.

    One hook changes the game for later chapters: :meth:`fake_divergence`, the divergence the fakes are judged
    by (AS-IntroVAE's annealed batch distance). The prior is the model's own, so a decoupled prior needs no
    change here.
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
        encoder_grad: str = "authors",
    ):
        super().__init__(beta_rec=beta_rec, beta_kl=beta_kl, beta_neg=beta_neg, gamma_r=gamma_r, alpha=alpha)
        # s is a property of the data (1 / input_dim); None means "take it from the model".
        self.s = s
        if encoder_grad not in ENCODER_GRAD_READINGS:
            raise ValueError(f"encoder_grad must be one of {ENCODER_GRAD_READINGS}, got {encoder_grad!r}")
        self.encoder_grad = encoder_grad

    def scale(self, model: IntroVAEModel) -> float:
        """The scaling constant ``s`` (Algorithm 2, line 2)."""
        return self.s if self.s is not None else 1.0 / model.input_dim

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
        return rec, model.prior.kl(mu, logvar, z)

    def encoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams) -> StepOutput:
        s, alpha = self.scale(model), hp["alpha"]
        # Lines 5-6: Z = E(X), Z_f ~ p(z).
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, noise.next())
        z_f = model.prior.rsample(noise.next()).detach()
        # Line 8: X_r = D(Z); X_f = D(Z_f) is only an input to the encoder here, so no graph is needed.
        x_r = model.decode(z)
        with torch.no_grad():
            x_f = model.decode(z_f)
        # Line 11: the ELBO of real data.
        rec = reconstruction_error(x, x_r, model.event_dims)
        kl = model.prior.kl(mu, logvar, z)
        real = s * batch_mean(beta_elbo_energy(rec, kl, hp["beta_rec"], hp["beta_kl"]))
        # Lines 9-10, 12-15: the ELBO of both kinds of fakes, with beta_neg on the KL. X_r enters as the encoder's
        # input and as the target of its re-reconstruction, each with or without gradient (see encoder_grad).
        x_r_in = x_r if self.encoder_grad == "printed" else x_r.detach()
        x_r_target = x_r.detach() if self.encoder_grad == "detached" else x_r
        mu_r, logvar_r, mu_f, logvar_f = encode_both(model, x_r_in, x_f)
        rec_r, kl_r = self.fake_energy(model, x_r_target, mu_r, logvar_r, noise)
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
        kl_r = model.prior.kl(mu_r, logvar_r, z_rf, frozen=True)
        kl_f = model.prior.kl(mu_f, logvar_f, z_ff, frozen=True)
        div_r, div_f, extra = self.fake_divergence("decoder", kl_r, kl_f, (mu_r, logvar_r), (mu_f, logvar_f))
        rec_r = reconstruction_error(x_r, x_rf, model.event_dims)
        rec_f = reconstruction_error(x_f, x_ff, model.event_dims)
        gamma_beta_rec = hp["gamma_r"] * hp["beta_rec"]
        fake_r = batch_mean(beta_elbo_energy(rec_r, div_r, gamma_beta_rec, hp["beta_kl"]))
        fake_f = batch_mean(beta_elbo_energy(rec_f, div_f, gamma_beta_rec, hp["beta_kl"]))
        loss = s * (hp["beta_rec"] * rec + 0.5 * (fake_r + fake_f))
        terms = {"rec": rec, "kl_fake_rec": batch_mean(kl_r), "kl_fake_sample": batch_mean(kl_f), **extra}
        return StepOutput(loss, terms)
