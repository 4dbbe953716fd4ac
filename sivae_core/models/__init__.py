"""Encoder/decoder architectures; all share :class:`IntroVAEModel`'s interface (encoder, decoder, prior)."""

from .base import PLAYERS, IntroVAEModel, make_prior, seeded
from .mlp import Discriminator, ToyVAE, make_mlp
from .resnet import ConditionalResNetVAE, ResNetVAE, build_model

__all__ = ["IntroVAEModel", "PLAYERS", "make_prior", "seeded", "ToyVAE", "make_mlp", "Discriminator", "ResNetVAE",
           "ConditionalResNetVAE", "build_model"]
