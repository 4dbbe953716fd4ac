"""Loaders on the real shared files and on small generated files of every format, corrupt ones included."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from sivae_core.data import DatasetCorruptError, DatasetNotFoundError, load_dataset, read_idx
from sivae_core.data.images import CIFAR10_MD5, candidate_roots, load_cifar10, load_folder, load_mnist, load_svhn

from .conftest import require_data


def _write_idx(path, arr, gz=True):
    arr = np.asarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = head + arr.tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_real_mnist_and_fashion_mnist():
    root = require_data("mnist").parent
    require_data("fashion_mnist")
    d = load_dataset("mnist", "test", root=root)
    assert d.images.shape == (10000, 1, 28, 28) and d.images.dtype == torch.uint8
    assert load_dataset("mnist", "train", subset=5).labels.tolist() == [5, 0, 4, 1, 9]
    f = load_dataset("fmnist", "test")
    assert f.images.shape == (10000, 1, 28, 28) and f.labels[:3].tolist() == [9, 2, 1]


def test_real_cifar10_npz_subsets():
    require_data("cifar10")
    d = load_cifar10("test", variant="jpeg_subset")
    assert d.images.shape == (10000, 3, 32, 32)
    e = load_cifar10("train", variant="exact_subset")
    assert e.images.shape[1:] == (3, 32, 32) and e.labels[:5].tolist() == [6, 9, 9, 4, 1]


def test_generated_idx_gz_and_raw(tmp_path):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    x = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", x)
    _write_idx(raw / "t10k-labels-idx1-ubyte", [7, 2, 1], gz=False)
    d = load_mnist("test", root=tmp_path)
    assert d.images.shape == (3, 1, 28, 28) and d.labels.tolist() == [7, 2, 1]
    assert np.array_equal(d.images[:, 0].numpy(), x)


def test_truncated_idx_gives_clear_error(tmp_path):
    p = tmp_path / "x.gz"
    _write_idx(p, np.zeros((4, 28, 28)))
    p.write_bytes(p.read_bytes()[:-20])  # cut the gzip stream
    with pytest.raises(DatasetCorruptError, match="truncated or corrupt"):
        read_idx(p)
    q = tmp_path / "y"
    _write_idx(q, np.zeros((4, 28, 28)), gz=False)
    q.write_bytes(q.read_bytes()[:-5])  # valid header, missing bytes
    with pytest.raises(DatasetCorruptError, match="expected"):
        read_idx(q)


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("SIVAE_DATA", str(tmp_path / "env"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError) as e:
        load_svhn("test", root=tmp_path / "arg")
    msg = str(e.value)
    assert str(tmp_path / "arg") in msg and str(tmp_path / "env") in msg and "housenumbers" in msg
    assert str(tmp_path / "data") in msg and str(tmp_path / "shared" / "data") in msg


def test_data_is_found_from_the_working_directory_not_the_install(tmp_path, monkeypatch):
    """The loaders never look next to the installed package: the working directory and its parents'
    shared/data are searched, so a checkout next to ../shared finds the data from any subfolder."""
    monkeypatch.delenv("SIVAE_DATA", raising=False)
    inner = tmp_path / "repo" / "book"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    roots = candidate_roots()
    assert roots[0] == inner / "data" and tmp_path / "shared" / "data" in roots
    assert all("site-packages" not in str(r) and "sivae_core" not in str(r) for r in roots)


class _Payload:
    """Unpickling this runs ``print``: what a tampered data file could do."""

    def __reduce__(self):
        return (print, ("pwned",))


def test_generated_cifar_pickles_and_npz(tmp_path, capsys):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [3, 8]}
        pickle.dump(d, open(folder / name, "wb"))
    # generated files are not the official ones: their MD5 sums differ, and the loader says so
    with pytest.raises(DatasetCorruptError, match=CIFAR10_MD5["data_batch_1"]):
        load_cifar10("train", root=tmp_path)
    d = load_cifar10("train", root=tmp_path, verify=False)
    assert d.images.shape == (10, 3, 32, 32) and d.labels.tolist() == [3, 8] * 5
    (folder / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DatasetCorruptError):
        load_cifar10("test", root=tmp_path, variant="pickle", verify=False)
    # a pickle that would run code is refused before anything runs, even without the checksum
    pickle.dump({b"data": _Payload(), b"labels": [1]}, open(folder / "test_batch", "wb"))
    with pytest.raises(DatasetCorruptError, match="refused"):
        load_cifar10("test", root=tmp_path, variant="pickle", verify=False)
    assert "pwned" not in capsys.readouterr().out
    npz = tmp_path / "n" / "cifar10_jpeg_subset.npz"
    npz.parent.mkdir()
    np.savez(npz, x_train=np.zeros((2, 32, 32, 3), np.uint8), y_train=np.array([1, 2]),
             x_test=np.full((1, 32, 32, 3), 9, np.uint8), y_test=np.array([4]))
    t = load_cifar10("test", root=tmp_path / "n")
    assert t.images.shape == (1, 3, 32, 32) and int(t.images.max()) == 9 and t.labels.tolist() == [4]
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(DatasetCorruptError):
        load_cifar10("test", root=tmp_path / "n")


def test_generated_svhn_mat(tmp_path):
    from scipy.io import savemat

    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 4), dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": np.array([[10], [1], [2], [10]], dtype=np.uint8)})
    d = load_svhn("test", root=tmp_path)
    assert d.images.shape == (4, 3, 32, 32) and d.labels.tolist() == [0, 1, 2, 0]
    assert np.array_equal(d.images[1].numpy(), x[..., 1].transpose(2, 0, 1))
    p = tmp_path / "test_32x32.mat"
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(DatasetCorruptError):
        load_svhn("test", root=tmp_path)


def test_generated_image_folder(tmp_path):
    from PIL import Image

    for c, v in (("cat", 10), ("dog", 200)):
        (tmp_path / c).mkdir()
        Image.fromarray(np.full((40, 40, 3), v, np.uint8)).save(tmp_path / c / "a.png")
    d = load_folder(tmp_path, resolution=16)
    assert d.images.shape == (2, 3, 16, 16) and d.labels.tolist() == [0, 1] and int(d.images[1].min()) == 200
    (tmp_path / "dog" / "b.png").write_bytes(b"not a png")
    with pytest.raises(DatasetCorruptError, match="b.png"):
        load_folder(tmp_path, resolution=16)
