"""Image datasets without torchvision: MNIST / Fashion-MNIST (IDX gz), CIFAR-10 (official pickles or the
``.npz`` subsets of ``../shared/data``), SVHN (``.mat``) and a generic image folder.

Every loader returns an :class:`ImageData` (uint8 images ``(N, C, H, W)`` and int64 labels) kept in memory;
:func:`to_float` converts to ``[0, 1]`` floats on a device. See ``data/README.md`` for sources and checksums.
"""

from .images import (
    DATASETS,
    DatasetCorruptError,
    DatasetNotFoundError,
    ImageData,
    find_root,
    load_cifar10,
    load_dataset,
    load_folder,
    load_idx,
    load_mnist,
    load_svhn,
    read_idx,
    to_float,
)

__all__ = [
    "DATASETS",
    "DatasetCorruptError",
    "DatasetNotFoundError",
    "ImageData",
    "find_root",
    "load_cifar10",
    "load_dataset",
    "load_folder",
    "load_idx",
    "load_mnist",
    "load_svhn",
    "read_idx",
    "to_float",
]
