"""Frechet distances between image sets: the standard FID (Inception-v3) when its weights can be had,
and an offline Frechet distance in the feature space of a small classifier shipped with the package.

Both go through :class:`torchmetrics.image.fid.FrechetInceptionDistance` (custom extractor via
``feature=``), with the feature network in **eval mode**. The official Soft-IntroVAE code computed FID
with Inception in train mode (BatchNorm on batch statistics), which reported 4.37 where pytorch-fid gives
25.86 for the same checkpoint (a user's report, issue #14 of the authors' repository
taldatech/soft-intro-vae-pytorch): numbers from different feature networks or modes are not comparable,
which is why every table in the book names its extractor.

``FeatureNet`` is a 4-layer CNN trained once to classify the 20 classes of MNIST and Fashion-MNIST
together (``python -m sivae_core feature-net``); its 64-d penultimate layer plays the role
of Inception's 2048-d pool features for 28x28 grey images. Its distances are on their own scale:
"FD-MNISTnet", not FID.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from scipy import linalg
from torch import Tensor, nn

__all__ = ["FeatureNet", "load_feature_net", "recognized_classes", "FEATURE_NET_CLASSES", "FEATURE_NET_PATH",
           "frechet_distance", "frechet_distances", "frechet_gaussians", "inception_available", "inception_extractor"]

#: The trained offline feature network, shipped with the package (``python -m sivae_core feature-net`` rebuilds it).
FEATURE_NET_PATH = Path(str(resources.files("sivae_core") / "assets" / "feature_net_mnist.pt"))


class FeatureNet(nn.Module):
    """Small classifier for ``in_ch`` x 28x28 or 32x32 images in [0, 1]; ``forward`` returns the 64-d features.

    The shipped network (``in_ch=1``, 20 classes) covers MNIST and Fashion-MNIST; the GPU suite trains a 3-channel
    one on CIFAR-10 for its Frechet distances, where no Inception weights can be downloaded.
    """

    num_features = 64

    def __init__(self, n_classes: int = 20, in_ch: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, 32, 3, stride=2, padding=1), nn.ReLU(),   # 14 (16 for 32x32 inputs)
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),  # 7
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),  # 4
            nn.Flatten(), nn.Linear(64 * 16, self.num_features), nn.ReLU(),
        )
        self.head = nn.Linear(self.num_features, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        return self.body(x.float().clamp(0, 1))

    def logits(self, x: Tensor) -> Tensor:
        return self.head(self.forward(x))


#: The 20 classes of :class:`FeatureNet`: MNIST digits are 0-9, Fashion-MNIST classes 10-19.
FEATURE_NET_CLASSES = {"mnist": range(0, 10), "fmnist": range(10, 20)}


@torch.no_grad()
def recognized_classes(images: Tensor, net: FeatureNet, dataset: str, threshold: float = 0.5) -> dict[str, float | int]:
    """Do generated images look like ``dataset``? The shipped classifier's verdict on them.

    Returns the fraction of images it assigns to one of ``dataset``'s classes with softmax probability
    above ``threshold`` (``recognized``), how many images it assigns to each of that dataset's 10 classes
    (``class_counts``), and how many of the classes receive at least 1% of the images (``classes_covered``: a
    mode-collapsed sampler scores low even when every image is sharp). A complement to the Frechet distance that a
    reader can check against the sample grid.
    """
    probs = torch.cat([net.logits(x).softmax(-1) for x in images.split(500)])
    own = list(FEATURE_NET_CLASSES[dataset])
    conf, cls = probs.max(-1)
    ok = (conf > threshold) & (cls >= own[0]) & (cls <= own[-1])
    counts = torch.bincount(cls[ok] - own[0], minlength=10)
    share = counts.float() / len(images)
    return {"recognized": float(ok.float().mean()), "classes_covered": int((share >= 0.01).sum()),
            "class_counts": counts.tolist()}


def load_feature_net(path: str | Path = FEATURE_NET_PATH, device: str | torch.device = "cpu") -> FeatureNet:
    """The shipped extractor, in eval mode with frozen weights."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} missing; train it with `python -m sivae_core feature-net`")
    net = FeatureNet()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.to(device).eval().requires_grad_(False)


def inception_available() -> bool:
    """True when torchmetrics' default Inception-v3 can be built (torch-fidelity installed and the
    weights present or downloadable)."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance

        FrechetInceptionDistance(feature=2048)
        return True
    except Exception:  # noqa: BLE001 - missing package, no network: no standard FID
        return False


class _Inception(nn.Module):
    """Wraps torchmetrics' Inception for float images in [0, 1] (grey images are repeated to RGB)."""

    def __init__(self):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
        self.num_features = 2048

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return self.net((x.clamp(0, 1) * 255).byte())


def inception_extractor() -> nn.Module:
    """The standard FID feature network (Inception-v3 pool3, 2048-d) for images in [0, 1]."""
    return _Inception().eval()


FakeImages = Tensor | Iterable[Tensor] | Callable[[int], Tensor]


@torch.no_grad()
def frechet_distance(real: Tensor | Iterable[Tensor], fake: FakeImages, feature: nn.Module, n_fake: int | None = None,
                     batch_size: int = 500, device: str | torch.device = "cpu") -> float:
    """Frechet distance between the ``feature`` statistics of ``real`` and ``fake`` images in [0, 1].

    ``fake`` may be a tensor, an iterable of batches or a function ``n -> n images`` (a sampler), then
    ``n_fake`` images are drawn batch by batch (50,000 for the standard FID).
    """
    return frechet_distances(real, {"fake": fake}, feature, n_fake, batch_size, device)["fake"]


@torch.no_grad()
def frechet_distances(real: Tensor | Iterable[Tensor], fakes: dict[str, FakeImages], feature: nn.Module,
                      n_fake: int | None = None, batch_size: int = 500,
                      device: str | torch.device = "cpu") -> dict[str, float]:
    """:func:`frechet_distance` of several fake sets against one real set, whose features are computed once."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    feature = feature.to(device).eval()
    fid = FrechetInceptionDistance(feature=feature, normalize=True, reset_real_features=False).to(device)
    fid.inception.eval()  # torchmetrics may flip modules to train(); the extractor must stay in eval

    def batches(src, n):
        if callable(src) and not isinstance(src, Tensor):
            done = 0
            while done < n:
                b = min(batch_size, n - done)
                yield src(b)
                done += b
        elif isinstance(src, Tensor):
            yield from src.split(batch_size)
        else:
            yield from src

    for xb in batches(real, None):
        fid.update(xb.to(device).float(), real=True)
    out = {}
    for name, fake in fakes.items():
        fid.reset()  # clears the fake statistics only (reset_real_features=False)
        for xb in batches(fake, n_fake):
            fid.update(xb.to(device).float(), real=False)
        out[name] = float(fid.compute())
    return out


def frechet_gaussians(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Closed form ``||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})`` (the definition of FID)."""
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean))
