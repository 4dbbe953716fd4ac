"""The Cars3D loader: the shared 64x64 files, the 128x128 layout of the original release (resized with an
antialiasing filter), the held-out split, and clear errors for missing or malformed files."""

import numpy as np
import pytest
import torch
from scipy.io import savemat

from sivae_core.data.cars3d import (
    N_VIEWS,
    TEST_MODELS,
    Cars3DFormatError,
    Cars3DNotFoundError,
    car_names,
    load_cars3d,
    read_car,
)

from .conftest import require_data


def fake_car(size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3, 24, 4), dtype=np.uint8)


def test_shared_files_load_with_the_paper_split():
    root = require_data("cars3d/cars64")
    names = car_names(root)
    assert len(names) == 183 and set(TEST_MODELS) <= set(names)
    test = load_cars3d(root, "test")
    assert test.images.shape == (20, N_VIEWS, 3, 64, 64) and test.images.dtype == torch.uint8
    assert test.names == tuple(n for n in names if n in TEST_MODELS)
    # View = elevation * 24 + azimuth: the array's last two axes, read straight from the file.
    from scipy.io import loadmat

    im = loadmat(str(root / f"{test.names[3]}.mat"))["im"]
    torch.testing.assert_close(test.images[3, 2 * 24 + 5], torch.from_numpy(im[:, :, :, 5, 2]).permute(2, 0, 1))
    images, cars, views = test.flat()
    assert images.shape == (20 * N_VIEWS, 3, 64, 64) and int(cars[-1]) == 19 and int(views[N_VIEWS + 1]) == 1


def test_train_split_holds_the_other_163_cars():
    root = require_data("cars3d/cars64")
    names = car_names(root)
    assert len([n for n in names if n not in TEST_MODELS]) == 163


def test_original_128_layout_is_box_averaged_to_64(tmp_path):
    """A 128x128 file made by repeating each pixel of a 64x64 one 2x2 loads back to exactly the 64x64 one
    (the area filter is the 2x2 box average that produced the shared copy)."""
    small = fake_car(64)
    big = small.repeat(2, axis=0).repeat(2, axis=1)
    savemat(tmp_path / "car_001_mesh.mat", {"im": small})
    savemat(tmp_path / "big.mat", {"im": big})
    torch.testing.assert_close(read_car(tmp_path / "big.mat"), read_car(tmp_path / "car_001_mesh.mat"))
    # Another ratio resamples with antialiasing (no aliasing of a fine checkerboard into stripes).
    checker = np.indices((96, 96)).sum(0) % 2 * 255
    odd = np.broadcast_to(checker[:, :, None, None, None], (96, 96, 3, 24, 4)).astype(np.uint8)
    savemat(tmp_path / "odd.mat", {"im": odd})
    out = read_car(tmp_path / "odd.mat").float()
    assert out.shape == (N_VIEWS, 3, 64, 64) and abs(float(out.mean()) - 127.5) < 2 and float(out.std()) < 20


def test_any_root_without_list_uses_sorted_files(tmp_path):
    for i in (3, 1, 2):
        savemat(tmp_path / f"car_00{i}_mesh.mat", {"im": fake_car(64, i)})
    assert car_names(tmp_path) == ["car_001_mesh", "car_002_mesh", "car_003_mesh"]
    data = load_cars3d(tmp_path, "all")
    assert data.images.shape == (3, N_VIEWS, 3, 64, 64)
    held_out = load_cars3d(tmp_path, "test", test_models=("car_002_mesh",))
    assert held_out.names == ("car_002_mesh",)


def test_missing_folder_and_missing_file_name_the_path(tmp_path):
    with pytest.raises(Cars3DNotFoundError, match="nowhere"):
        load_cars3d(tmp_path / "nowhere")
    (tmp_path / "list.txt").write_text("car_001_mesh\ncar_002_mesh\n")
    savemat(tmp_path / "car_001_mesh.mat", {"im": fake_car(64)})
    with pytest.raises(Cars3DNotFoundError, match="car_002_mesh.mat"):
        load_cars3d(tmp_path, "all")
    with pytest.raises(Cars3DNotFoundError, match="held-out"):
        load_cars3d(tmp_path, "test")


@pytest.mark.parametrize("content, problem", [
    ({"images": fake_car(64)}, "no array 'im'"),
    ({"im": fake_car(64)[..., :3]}, r"shape \(64, 64, 3, 24, 3\)"),
    ({"im": fake_car(64).astype(np.float32)}, "float32"),
    ({"im": np.zeros((64, 32, 3, 24, 4), np.uint8)}, "expected"),
])
def test_malformed_files_are_named_with_what_is_wrong(tmp_path, content, problem):
    path = tmp_path / "car_009_mesh.mat"
    savemat(path, content)
    with pytest.raises(Cars3DFormatError, match=problem) as err:
        read_car(path)
    assert str(path) in str(err.value)


def test_a_file_that_is_not_matlab_is_named(tmp_path):
    path = tmp_path / "car_001_mesh.mat"
    path.write_bytes(b"not a mat file at all")
    with pytest.raises(Cars3DFormatError, match="car_001_mesh.mat"):
        read_car(path)


def test_find_cars3d_skips_a_data_root_without_cars(tmp_path, monkeypatch):
    """A checkout's own ``data/`` (preparation tools) comes first among the data roots and holds no cars: the search
    goes on to ``shared/data`` above (the CI layout), and names every place searched when nothing holds them."""
    import sivae_core.data.images as images
    from sivae_core.data.cars3d import Cars3DNotFoundError, find_cars3d

    work, cars = tmp_path / "work", tmp_path / "shared" / "data" / "cars3d" / "cars64"
    (work / "data").mkdir(parents=True)
    cars.mkdir(parents=True)
    monkeypatch.delenv("SIVAE_DATA", raising=False)
    monkeypatch.chdir(work)
    assert images.candidate_roots()[0] == work / "data"  # the first root exists, without cars
    assert find_cars3d() == cars
    monkeypatch.setattr(images, "candidate_roots", lambda root=None: [work / "data"])
    with pytest.raises(Cars3DNotFoundError, match="work/data"):
        find_cars3d()
