"""Loaders for the image datasets of the book, with no torchvision requirement.

Where the data is looked for (first hit wins):

1. the ``root`` argument;
2. ``$SIVAE_DATA``;
3. ``./data`` under the working directory;
4. ``shared/data`` in the working directory or any folder above it (this project's offline copies sit in
   ``../shared/data`` next to the repository);
5. if :mod:`torchvision` is installed (Colab), a download into ``root`` (or ``./data``).

Nothing is derived from where the package is installed. A missing or corrupt file raises an error that lists
every place that was searched and says how to get the data, instead of a bare ``FileNotFoundError`` deep
inside ``gzip``. CIFAR-10's official python batches are pickles: they are checked against their published MD5
sums and unpickled with a loader that accepts numpy arrays and plain values only, so a tampered file cannot
run code.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ImageData", "DatasetNotFoundError", "DatasetCorruptError", "find_root", "first_root_holding", "read_idx", "load_idx",
    "load_mnist", "load_cifar10", "load_svhn", "load_folder", "load_dataset", "to_float", "DATASETS",
]

HOW_TO_GET = {
    "mnist": "download the four IDX .gz files from https://ossci-datasets.s3.amazonaws.com/mnist/ "
             "into <root>/mnist/MNIST/raw/ (or `pip install torchvision` and the loader downloads them)",
    "fmnist": "download the four IDX .gz files from "
              "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ into <root>/fashion_mnist/FashionMNIST/raw/",
    "cifar10": "download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it to "
               "<root>/cifar10/cifar-10-batches-py/",
    "svhn": "download train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ "
            "into <root>/svhn/",
    "folder": "pass the folder of images (one sub-folder per class, or images directly) as root",
}


class DatasetNotFoundError(FileNotFoundError):
    """No copy of the dataset was found; the message lists where we looked and how to get it."""


class DatasetCorruptError(ValueError):
    """A dataset file exists but cannot be read (truncated download, wrong file)."""


@dataclass
class ImageData:
    """A dataset in memory: ``images`` uint8 ``(N, C, H, W)``, ``labels`` int64 ``(N,)``."""

    images: Tensor
    labels: Tensor
    name: str
    split: str
    source: str

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, k: int | None) -> ImageData:
        """The first ``k`` images (official order): deterministic and the same everywhere."""
        if k is None or k >= len(self):
            return self
        return ImageData(self.images[:k], self.labels[:k], self.name, self.split, self.source + f" (first {k})")


def to_float(images: Tensor, device: str | torch.device = "cpu") -> Tensor:
    """uint8 ``[0, 255]`` -> float32 ``[0, 1]`` on ``device`` (the model's data range)."""
    return images.to(device, non_blocking=True).float().div_(255.0)


# ---------------------------------------------------------------------------------------------- roots
def candidate_roots(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The roots searched, in order: argument, ``$SIVAE_DATA``, ``./data``, ``shared/data`` here or above."""
    roots: list[Path] = []
    if root is not None:
        roots.append(Path(root).expanduser())
    if os.environ.get("SIVAE_DATA"):
        roots.append(Path(os.environ["SIVAE_DATA"]).expanduser())
    cwd = Path.cwd()
    roots.append(cwd / "data")
    roots += [folder / "shared" / "data" for folder in (cwd, *cwd.parents)]
    out: list[Path] = []
    for r in roots:
        if r not in out:
            out.append(r)
    return out


def first_root_holding(sub: str, root: str | os.PathLike[str] | None = None) -> Path | None:
    """``r / sub`` for the first of :func:`candidate_roots` that holds ``sub``; None if none does. Not simply the
    first root that exists: a checkout's own ``data/`` (preparation tools) would hide ``../shared/data``."""
    return next((r / sub for r in candidate_roots(root) if (r / sub).exists()), None)


def find_root(name: str, root: str | os.PathLike[str] | None, probe: Callable[[Path], Path | None]) -> Path:
    """First ``probe(r)`` that is not None over :func:`candidate_roots`; else a torchvision download
    (when installed); else :class:`DatasetNotFoundError` naming every searched place."""
    roots = candidate_roots(root)
    for r in roots:
        hit = probe(r)
        if hit is not None:
            return hit
    if _torchvision_download(name, roots[0] if root is not None else Path("data").resolve()):
        for r in [roots[0] if root is not None else Path("data").resolve()]:
            hit = probe(r)
            if hit is not None:
                return hit
    where = "\n  ".join(str(r) for r in roots)
    raise DatasetNotFoundError(
        f"dataset {name!r} not found. Searched (root argument, $SIVAE_DATA, ./data, shared/data here or above):\n"
        f"  {where}\n"
        f"To get it: {HOW_TO_GET.get(name, '')}. Then pass root=... or set SIVAE_DATA."
    )


def _torchvision_download(name: str, root: Path) -> bool:
    """On Colab: let torchvision download the official files into the layout the probes understand."""
    try:
        import torchvision  # type: ignore[import-not-found]
    except ImportError:
        return False
    ds = torchvision.datasets
    try:
        if name == "mnist":
            for train in (True, False):
                ds.MNIST(str(root / "mnist"), train=train, download=True)
        elif name == "fmnist":
            for train in (True, False):
                ds.FashionMNIST(str(root / "fashion_mnist"), train=train, download=True)
        elif name == "cifar10":
            ds.CIFAR10(str(root / "cifar10"), train=True, download=True)
        elif name == "svhn":
            for split in ("train", "test"):
                ds.SVHN(str(root / "svhn"), split=split, download=True)
        else:
            return False
    except Exception:  # noqa: BLE001 - offline or blocked: fall through to the clear error
        return False
    return True


# ---------------------------------------------------------------------------------------------- IDX
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw): the format of MNIST and Fashion-MNIST."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DatasetCorruptError(f"{path}: cannot decompress ({e}); the file is truncated or corrupt, "
                                  "delete it and download it again") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetCorruptError(f"{path}: not an IDX file (bad magic number); delete it and download it again")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(data) != expected:
        raise DatasetCorruptError(f"{path}: {len(data)} bytes, expected {expected} for shape {tuple(dims)}; "
                                  "the file is truncated or corrupt, delete it and download it again")
    return np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(tuple(dims))


_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_DIRS = {"mnist": ("mnist/MNIST/raw", "MNIST/raw", "mnist/raw", "mnist", "."),
             "fmnist": ("fashion_mnist/FashionMNIST/raw", "FashionMNIST/raw", "fashion_mnist/raw",
                        "fashion_mnist", "fmnist", ".")}


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def load_idx(images_path: str | os.PathLike[str], labels_path: str | os.PathLike[str], name: str = "idx",
             split: str = "train") -> ImageData:
    """An IDX image file ``(N, H, W)`` and its label file as :class:`ImageData` with one channel."""
    x = read_idx(images_path)
    y = read_idx(labels_path)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DatasetCorruptError(f"{images_path}, {labels_path}: shapes {x.shape} and {y.shape} do not match "
                                  "(N, H, W) images with N labels")
    return ImageData(torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)), name, split,
                     str(images_path))


def load_mnist(split: str = "train", root: str | os.PathLike[str] | None = None, fashion: bool = False) -> ImageData:
    """MNIST (or Fashion-MNIST with ``fashion=True``) from the original IDX files, torchvision layout."""
    name = "fmnist" if fashion else "mnist"
    img_stem, lab_stem = _IDX_FILES[split]

    def probe(r: Path) -> Path | None:
        for sub in _IDX_DIRS[name]:
            folder = r / sub
            if _idx_file(folder, img_stem) and _idx_file(folder, lab_stem):
                return folder
        return None

    folder = find_root(name, root, probe)
    return load_idx(_idx_file(folder, img_stem), _idx_file(folder, lab_stem), name, split)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- CIFAR-10
#: MD5 sums of the official ``cifar-10-batches-py`` files (https://www.cs.toronto.edu/~kriz/cifar.html;
#: torchvision checks the same).
CIFAR10_MD5 = {"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
               "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
               "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e"}

#: The only globals a CIFAR-10 batch pickle needs: numpy's array reconstruction.
_SAFE_PICKLE_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                        ("numpy", "ndarray"), ("numpy", "dtype")}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and numpy arrays; refuses every other global (e.g. a function)."""

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in _SAFE_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: not a numpy array")
        return super().find_class(module, name)


def _unpickle(path: Path, verify: bool = True) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DatasetCorruptError(f"{path}: cannot read ({e}); re-extract cifar-10-python.tar.gz") from e
    expected = CIFAR10_MD5.get(path.name)
    if verify and expected is not None and hashlib.md5(raw).hexdigest() != expected:
        raise DatasetCorruptError(f"{path}: MD5 {hashlib.md5(raw).hexdigest()} differs from the official {expected}; "
                                  "the file is corrupt or not the official CIFAR-10 batch: download it again")
    try:
        return _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError) as e:
        raise DatasetCorruptError(f"{path}: cannot unpickle ({e}); re-extract cifar-10-python.tar.gz") from e


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, EOFError, ValueError, zlib.error, Exception) as e:  # zipfile.BadZipFile et al.
        raise DatasetCorruptError(f"{path}: cannot read the .npz ({type(e).__name__}: {e}); "
                                  "the file is truncated or corrupt") from e


def _nhwc(x: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def load_cifar10(split: str = "train", root: str | os.PathLike[str] | None = None, variant: str = "auto",
                 verify: bool = True) -> ImageData:
    """CIFAR-10 from the official python pickles (``cifar-10-batches-py``) or the offline ``.npz`` files.

    ``variant``: ``"pickle"`` (official, 50,000 / 10,000), ``"jpeg_subset"`` (``cifar10_jpeg_subset.npz``:
    first 20,000 training images and all 10,000 test images, decoded from JPEG, not pixel exact),
    ``"exact_subset"`` (``cifar10_exact_subset.npz``: 6,102 pixel-exact images), or ``"auto"`` (the first
    of these that exists). ``verify`` checks the official batches' MD5 sums before reading them.
    """
    variants = ("pickle", "jpeg_subset", "exact_subset") if variant == "auto" else (variant,)
    files = {"pickle": ("cifar-10-batches-py",), "jpeg_subset": ("cifar10_jpeg_subset.npz",),
             "exact_subset": ("cifar10_exact_subset.npz",)}

    def probe(r: Path) -> Path | None:
        for v in variants:
            for sub in ("cifar10", "."):
                p = r / sub / files[v][0]
                if (v == "pickle" and (p / "test_batch").is_file()) or (v != "pickle" and p.is_file()):
                    return p
        return None

    path = find_root("cifar10", root, probe)
    if path.is_dir():
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        xs, ys = [], []
        for n in names:
            d = _unpickle(path / n, verify)
            if b"data" not in d or b"labels" not in d:
                raise DatasetCorruptError(f"{path / n}: no 'data'/'labels' entries; not a CIFAR-10 batch file")
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[b"labels"], dtype=np.int64))
        return ImageData(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)), "cifar10",
                         split, str(path))
    z = _load_npz(path)
    if "x_train" in z:
        x, y = z[f"x_{split}"], z[f"y_{split}"]
    elif "split" in z:
        keep = z["split"] == split
        x, y = z["x"][keep], z["y"][keep]
    else:
        raise DatasetCorruptError(f"{path}: unknown .npz layout (keys {sorted(z)})")
    return ImageData(_nhwc(x.astype(np.uint8)), torch.from_numpy(y.astype(np.int64).reshape(-1)), "cifar10", split,
                     str(path))


# ---------------------------------------------------------------------------------------------- SVHN
def load_svhn(split: str = "train", root: str | os.PathLike[str] | None = None) -> ImageData:
    """SVHN cropped digits from ``{train,test}_32x32.mat``; label 10 (the digit 0) becomes 0."""
    from scipy.io import loadmat

    fname = f"{split}_32x32.mat"

    def probe(r: Path) -> Path | None:
        for sub in ("svhn", "SVHN", "."):
            if (r / sub / fname).is_file():
                return r / sub / fname
        return None

    path = find_root("svhn", root, probe)
    try:
        m = loadmat(str(path))
        x, y = m["X"], m["y"]
    except Exception as e:  # noqa: BLE001 - scipy raises several types for a truncated file
        raise DatasetCorruptError(f"{path}: cannot read the .mat file ({type(e).__name__}: {e}); "
                                  "delete it and download it again") from e
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.size:
        raise DatasetCorruptError(f"{path}: X has shape {x.shape}, expected (32, 32, 3, N) with N labels")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8))
    labels = torch.from_numpy(y.reshape(-1).astype(np.int64) % 10)
    return ImageData(images, labels, "svhn", split, str(path))


# ---------------------------------------------------------------------------------------------- folder
_IMG_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def load_folder(root: str | os.PathLike[str], resolution: int = 32, channels: int = 3, split: str = "train") -> ImageData:
    """Every image under ``root`` (one sub-folder per class, sorted; or images directly: label 0), resized
    to ``resolution`` x ``resolution`` with ``channels`` 1 (grey) or 3 (RGB)."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {root} does not exist; {HOW_TO_GET['folder']}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    entries = [(p, i) for i, c in enumerate(classes) for p in sorted((root / c).rglob("*")) if p.suffix.lower() in _IMG_EXT]
    entries += [(p, 0) for p in sorted(root.iterdir()) if p.is_file() and p.suffix.lower() in _IMG_EXT]
    if not entries:
        raise DatasetNotFoundError(f"no images ({', '.join(sorted(_IMG_EXT))}) under {root}")
    xs = []
    for p, _ in entries:
        try:
            with Image.open(p) as im:
                im = im.convert("L" if channels == 1 else "RGB").resize((resolution, resolution), Image.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise DatasetCorruptError(f"{p}: cannot decode the image ({e}); remove or replace it") from e
        xs.append(a[None] if channels == 1 else a.transpose(2, 0, 1))
    labels = torch.tensor([i for _, i in entries], dtype=torch.int64)
    return ImageData(torch.from_numpy(np.stack(xs)), labels, root.name, split, str(root))


# ---------------------------------------------------------------------------------------------- registry
DATASETS = ("mnist", "fmnist", "cifar10", "svhn", "folder")


def load_dataset(name: str, split: str = "train", root: str | os.PathLike[str] | None = None,
                 subset: int | None = None, **kwargs) -> ImageData:
    """Load a dataset by its CLI name; ``subset`` keeps the first ``subset`` images."""
    if name == "mnist":
        data = load_mnist(split, root)
    elif name in ("fmnist", "fashion_mnist", "fashionmnist"):
        data = load_mnist(split, root, fashion=True)
    elif name == "cifar10":
        data = load_cifar10(split, root, **kwargs)
    elif name == "svhn":
        data = load_svhn(split, root)
    elif name == "folder":
        if root is None:
            raise DatasetNotFoundError("dataset 'folder' needs root=<folder of images>")
        data = load_folder(root, split=split, **kwargs)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose from {DATASETS}")
    return data.subset(subset)
