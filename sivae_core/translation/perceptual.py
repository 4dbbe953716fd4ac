"""The VGG perceptual loss of the paper's Cars3D runs (Daniel & Tamar 2021, Appendix 9.3, after LORD and
Johnson et al. 2016), without changing Algorithm 2.

Every objective of the book measures reconstructions with ``reconstruction_error``, the per-sample sum of
squared errors between a data sample and a decoder output. :class:`PerceptualView` makes that sum a
perceptual loss by changing what a sample *is*: the view's decoder returns the image followed by its VGG16
features, the sampler hands out real images followed by theirs, and the view's encoder reads the image
part. The squared error of the long vector is then ``L_pix + sum_l w_l ||phi_l(x) - phi_l(x')||^2``, each
layer weighted so that it counts like the pixels (``w_l = image_dim / layer_dim``), and the gradient flows
through the frozen VGG into the decoder. ``s`` must stay ``1 / image_dim``: pass it to the objective.

The features are those LORD's ``VGGDistance`` reads from torchvision's VGG16 (relu1_2, relu2_2, relu3_2,
relu4_3, pool5), on ImageNet-normalized inputs. The ImageNet weights are not available offline and are
never downloaded at run time: :func:`require_vgg16` names the file to fetch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..models.base import IntroVAEModel

__all__ = ["VGG16_URL", "VGG16_WEIGHTS", "PerceptualSampler", "PerceptualView", "VGG16Features", "require_vgg16"]

VGG16_WEIGHTS = "vgg16-397923af.pth"
VGG16_URL = f"https://download.pytorch.org/models/{VGG16_WEIGHTS}"
#: torchvision's VGG16 ``features``: channel counts, "M" for a 2x max pool.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
#: Indices in ``features`` whose outputs LORD compares (torchvision's in-place ReLUs make them post-ReLU).
_LAYERS = (3, 8, 13, 22, 30)


def require_vgg16(path: str | os.PathLike[str] | None = None) -> Path:
    """The VGG16 ImageNet weights file (``path``, else torch.hub's checkpoint folder), or a clear error
    saying what to download and where."""
    target = Path(path) if path is not None else Path(torch.hub.get_dir()) / "checkpoints" / VGG16_WEIGHTS
    if not target.is_file():
        raise RuntimeError(
            f"the perceptual loss needs the VGG16 ImageNet weights at {target} (528 MB), which are not available "
            f"offline and are never downloaded at run time. Download {VGG16_URL} to that path (or set $TORCH_HOME), "
            "e.g. on Colab: !wget -P ~/.cache/torch/hub/checkpoints " + VGG16_URL + " ; or train with the pixel loss.")
    return target


class VGG16Features(nn.Module):
    """torchvision's VGG16 feature extractor (same layer indices and state-dict keys), frozen, returning the
    activations of :data:`_LAYERS` for images in ``[0, 1]``."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in _VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU()]
                c_in = int(v)
        self.features = nn.Sequential(*layers[:_LAYERS[-1] + 1])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def load(self, path: str | os.PathLike[str]) -> VGG16Features:
        """Load the ``features.*`` tensors of a torchvision VGG16 state dict (the classifier is unused)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")
                              and int(k.split(".")[1]) <= _LAYERS[-1]} | {"mean": self.mean, "std": self.std})
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        h, out = (x - self.mean) / self.std, []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in _LAYERS:
                out.append(h)
        return out


def _with_features(images: Tensor, vgg: VGG16Features) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, image_dim + sum of layer dims)``: pixels, then ``sqrt(w_l) phi_l``."""
    image_dim = images[0].numel()
    parts = [images.flatten(1)] + [f.flatten(1) * (image_dim / f[0].numel()) ** 0.5 for f in vgg(images)]
    return torch.cat(parts, dim=1)


class _PixelsIn(nn.Module):
    """The view's encoder: the inner encoder applied to the image part of a long vector."""

    def __init__(self, encoder: nn.Module, shape: tuple[int, ...]):
        super().__init__()
        self.inner, self.shape = encoder, shape

    def forward(self, v: Tensor) -> Tensor:
        n = self.shape[0] * self.shape[1] * self.shape[2]
        return self.inner(v[..., :n].reshape(-1, *self.shape))


class _FeaturesOut(nn.Module):
    """The view's decoder: the inner decoder's image followed by its weighted VGG features."""

    def __init__(self, decoder: nn.Module, vgg: VGG16Features):
        super().__init__()
        self.inner = decoder
        self._vgg = (vgg,)  # a tuple: not a submodule, so neither optimized nor checkpointed

    def forward(self, z: Tensor) -> Tensor:
        return _with_features(self.inner(z), self._vgg[0])


class PerceptualView(IntroVAEModel):
    """An image model seen through VGG16 features (see module doc); ``inner`` is the model to keep."""

    def __init__(self, inner: IntroVAEModel, vgg: VGG16Features):
        shape = inner.data_shape
        with torch.no_grad():
            dim = _with_features(torch.zeros(1, *shape, device=vgg.mean.device), vgg).shape[1]
        super().__init__(_PixelsIn(inner.encoder, shape), _FeaturesOut(inner.decoder, vgg), (dim,), inner.z_dim)
        self.inner = inner
        self.image_dim = inner.input_dim

    def image(self, v: Tensor) -> Tensor:
        """The image part of a data vector or decoder output."""
        return v[..., :self.image_dim].reshape(-1, *self.inner.data_shape)


class PerceptualSampler:
    """Wraps an image sampler: each batch becomes ``[pixels, weighted VGG features]`` (no gradient)."""

    def __init__(self, inner: Any, vgg: VGG16Features):
        self.inner, self.vgg = inner, vgg

    def __call__(self, batch_size: int, generator: torch.Generator) -> Tensor:
        with torch.no_grad():
            return _with_features(self.inner(batch_size, generator), self.vgg)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)
