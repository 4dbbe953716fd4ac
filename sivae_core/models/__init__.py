"""Encoder/decoder architectures; all share :class:`IntroVAEModel`'s interface."""

from .base import IntroVAEModel
from .mlp import ToyVAE, make_mlp
from .resnet import ConditionalResNetVAE, ResNetVAE

__all__ = ["IntroVAEModel", "ToyVAE", "make_mlp", "ResNetVAE", "ConditionalResNetVAE"]
