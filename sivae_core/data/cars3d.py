"""Cars3D (Reed et al. 2015) in the original release's ``.mat`` layout, at any path.

Each of the 183 car models is one file ``car_NNN_mesh.mat`` whose array ``im`` has shape
``(S, S, 3, 24, 4)`` uint8: height x width x RGB x 24 azimuths (15 degree steps) x 4 elevations. The
original release renders at S = 128; the book's offline copy (``../shared/data/cars3d/cars64``) holds the
exact 2x2 box averages, S = 64. Both load to 64x64 here: an integer reduction is an area (box) average,
which is the antialiasing filter that makes the two copies agree exactly; another ratio uses bilinear
resampling with antialiasing. ``list.txt`` (one file stem a line, as in the release) fixes the order when
present; otherwise the files are taken in sorted order.

**Split.** Soft-IntroVAE (Appendix 9.3) follows LORD: 163 car models for training, 20 held out. LORD's code
draws the 20 with an unseeded ``np.random.choice`` (``lord.py split-classes``), so its split cannot be
reproduced. The book fixes one: :data:`TEST_MODELS`, every 9th model of ``list.txt`` starting from the
5th (positions 4, 13, ..., 175), which spreads the held-out cars evenly over the release's order.

A view is ``elevation * 24 + azimuth`` (LORD's content id), so every car has 96 views.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "N_AZIMUTHS",
    "N_ELEVATIONS",
    "N_VIEWS",
    "TEST_MODELS",
    "Cars3D",
    "find_cars3d",
    "Cars3DFormatError",
    "Cars3DNotFoundError",
    "car_names",
    "load_cars3d",
    "read_car",
]

N_AZIMUTHS, N_ELEVATIONS = 24, 4
N_VIEWS = N_AZIMUTHS * N_ELEVATIONS

#: The 20 held-out car models (positions 4, 13, ..., 175 of the release's ``list.txt``; see module doc).
TEST_MODELS: tuple[str, ...] = (
    "car_005_mesh", "car_014_mesh", "car_023_mesh", "car_032_mesh", "car_041_mesh", "car_050_mesh",
    "car_060_mesh", "car_069_mesh", "car_080_mesh", "car_091_mesh", "car_101_mesh", "car_112_mesh",
    "car_122_mesh", "car_132_mesh", "car_144_mesh", "car_154_mesh", "car_163_mesh", "car_172_mesh",
    "car_181_mesh", "car_191_mesh",
)


class Cars3DNotFoundError(FileNotFoundError):
    """The Cars3D folder or one of its ``.mat`` files is missing; the message names the path."""


class Cars3DFormatError(ValueError):
    """A ``.mat`` file exists but is not in the release's layout; the message names the path and what is wrong."""


@dataclass
class Cars3D:
    """Car models in memory: ``images`` uint8 ``(n_cars, 96, 3, S, S)``, indexed ``[car, view]``."""

    images: Tensor
    names: tuple[str, ...]
    root: Path
    split: str

    @property
    def n_cars(self) -> int:
        return int(self.images.shape[0])

    def flat(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(images (n_cars * 96, 3, S, S), car index, view index)``: the training set as a flat batch."""
        n, v = self.images.shape[:2]
        cars = torch.arange(n).repeat_interleave(v)
        views = torch.arange(v).repeat(n)
        return self.images.reshape(n * v, *self.images.shape[2:]), cars, views


def _resize(im: Tensor, size: int) -> Tensor:
    """uint8 ``(N, 3, S, S)`` -> uint8 ``(N, 3, size, size)`` with an antialiasing filter."""
    s = im.shape[-1]
    if s == size:
        return im
    x = im.float()
    if s % size == 0:
        x = F.interpolate(x, size=(size, size), mode="area")  # exact box average, as in the 64x64 copy
    else:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def read_car(path: str | os.PathLike[str], size: int = 64) -> Tensor:
    """One car model's ``.mat`` file -> uint8 ``(96, 3, size, size)``, views ordered ``elevation * 24 + azimuth``."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise Cars3DNotFoundError(f"{path}: Cars3D file not found (the release has one car_NNN_mesh.mat per car model)")
    try:
        mat = loadmat(str(path), variable_names=["im"])
    except Exception as err:  # scipy raises several types for files that are not MATLAB files
        raise Cars3DFormatError(f"{path}: not a readable MATLAB .mat file ({err})") from err
    if "im" not in mat:
        raise Cars3DFormatError(f"{path}: no array 'im'; a Cars3D file holds 'im' of shape (S, S, 3, 24, 4) uint8")
    im = mat["im"]
    s = im.shape[0] if im.ndim else 0
    if im.shape != (s, s, 3, N_AZIMUTHS, N_ELEVATIONS) or im.dtype != np.uint8:
        raise Cars3DFormatError(f"{path}: 'im' has shape {im.shape} and dtype {im.dtype}; expected (S, S, 3, "
                                f"{N_AZIMUTHS}, {N_ELEVATIONS}) uint8 (height, width, RGB, azimuths, elevations)")
    # (H, W, C, azimuth, elevation) -> (elevation, azimuth, C, H, W) -> (view, C, H, W)
    views = torch.from_numpy(np.ascontiguousarray(im.transpose(4, 3, 2, 0, 1))).reshape(N_VIEWS, 3, s, s)
    return _resize(views, size)


def find_cars3d(sub: str = "cars3d/cars64") -> Path:
    """The folder ``sub`` under the first data root that holds it (``$SIVAE_DATA``, ``./data``, ``shared/data`` here
    or above: :func:`~sivae_core.data.images.first_root_holding`)."""
    from .images import candidate_roots, first_root_holding

    found = first_root_holding(sub)
    if found is None:
        raise Cars3DNotFoundError(f"no folder {sub} under any data root ({', '.join(map(str, candidate_roots()))}); "
                                  "pass --data DIR or set SIVAE_DATA")
    return found


def car_names(root: str | os.PathLike[str]) -> list[str]:
    """The car models of a Cars3D folder: the stems of ``list.txt`` in its order, else the sorted
    ``car_*_mesh.mat`` files."""
    root = Path(root)
    if not root.is_dir():
        raise Cars3DNotFoundError(f"{root}: Cars3D folder not found (expected the release's car_NNN_mesh.mat files; "
                                  "pass --data DIR or set SIVAE_DATA)")
    listing = root / "list.txt"
    if listing.is_file():
        names = [line.strip().removesuffix(".mat") for line in listing.read_text().splitlines() if line.strip()]
    else:
        names = sorted(p.stem for p in root.glob("car_*_mesh.mat"))
    if not names:
        raise Cars3DNotFoundError(f"{root}: no car_*_mesh.mat files and no list.txt")
    return names


def load_cars3d(root: str | os.PathLike[str], split: str = "train", size: int = 64,
                test_models: tuple[str, ...] = TEST_MODELS) -> Cars3D:
    """Load the ``"train"`` cars (all but ``test_models``), the ``"test"`` cars or ``"all"`` from ``root``.

    Every listed car must be present: a missing file is an error naming it, never a silently smaller set.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    root = Path(root)
    names = car_names(root)
    held_out = set(test_models)
    if split == "test":
        missing = held_out - set(names)
        if missing:
            raise Cars3DNotFoundError(f"{root}: held-out car models {sorted(missing)} are not in this folder")
        names = [n for n in names if n in held_out]
    elif split == "train":
        names = [n for n in names if n not in held_out]
    images = torch.stack([read_car(root / f"{n}.mat", size) for n in names])
    return Cars3D(images, tuple(names), root, split)
