"""Going past the papers: Soft-IntroVAE played in the representation space of a dpVAE."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from ..elbo import batch_mean
from ..models.base import IntroVAEModel
from .base import HParams, Noise, StepOutput, register_objective
from .soft_introvae import SoftIntroVAE

__all__ = ["DPSoftIntroVAE"]


@register_objective
class DPSoftIntroVAE(SoftIntroVAE):
    """Algorithm 2 with a learnable prior (the decoupled prior of Bhalodia, Lee & Elhabian 2020).

    Algorithm 2 already uses the model's prior for every KL and for the fakes ``D(g^-1(z0))``. What a
    learnable prior adds is its own training signal. The flow belongs to the decoder's optimizer, but it must
    not take part in the game: otherwise the decoder could "fool" the encoder by moving the prior onto the
    fakes' posteriors. So the fake KLs in the decoder step use a *frozen* prior (gradients reach the fakes, not
    the prior; :class:`SoftIntroVAE` does that for any prior), and the prior is trained only on real data, by
    the term ``-beta_kl log p(z)`` at the real codes (the prior's part of the real ELBO) added to L_D. For the
    standard normal this term is a constant: the objective is then Soft-IntroVAE.
    """

    name = "dpsivae"

    def decoder_loss(self, model: IntroVAEModel, x: Tensor, noise: Noise, hp: HParams,
                     carry: Mapping[str, Tensor]) -> StepOutput:
        out = super().decoder_loss(model, x, noise, hp, carry)
        prior_fit = -batch_mean(model.prior.log_prob(carry["z"]))
        return StepOutput(out.loss + self.scale(model) * hp["beta_kl"] * prior_fit, {**out.terms, "prior_nll": prior_fit})
