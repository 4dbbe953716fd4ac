"""Face data: preparation (arrays, manifest, bad input, interruptions, reuse) and the sampler (flips,
data-parallel slices, exact resume)."""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sivae_core.cli import main
from sivae_core.data import faces
from sivae_core.data.face_sampler import FaceSampler
from sivae_core.data.faces import PrepareError, prepare_faces, read_manifest

from .conftest import require_data

REPO = Path(__file__).resolve().parents[1]


def write_image(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    w, h = size
    shape = (h, w) if mode == "L" else (h, w, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


def face_folder(root: Path, n: int = 6) -> Path:
    """Mixed sizes and formats, one image in a sub-folder, one non-image file that must be ignored."""
    sizes = [(40, 50), (48, 48), (64, 40), (33, 35), (50, 40), (36, 60)]
    for i in range(n):
        write_image(root / ("sub" if i == 2 else "") / f"img{i}.{'png' if i % 2 else 'jpg'}", sizes[i % 6], seed=i)
    (root / "README.txt").write_text("not an image")
    return root


def prepare_cli(*args: str) -> int:
    return main(["style-prepare", "--no-progress", *args])


# ---------------------------------------------------------------------------------------------- preparation
def test_prepare_writes_one_array_per_resolution_and_a_manifest(tmp_path):
    src, out = face_folder(tmp_path / "src"), tmp_path / "out"
    m = prepare_faces(src, out, 16, progress=False)
    assert m["complete"] and m["count"] == 6
    assert m["files"] == ["img0.jpg", "img1.png", "img3.png", "img4.jpg", "img5.png", "sub/img2.jpg"]
    assert m["crop"]["boxes_by_source_size"]["40x50"] == [0, 5, 40, 45]
    assert sorted(m["arrays"], key=int) == ["4", "8", "16"]
    for r in (4, 8, 16):
        a = np.load(out / f"images_{r}.npy", mmap_mode="r")
        assert a.shape == (6, 3, r, r) and a.dtype == np.uint8
        assert m["arrays"][str(r)]["sha256"] == faces.sha256_of(out / f"images_{r}.npy")
    top = np.load(out / "images_16.npy").astype(np.float64)
    # the top level is the antialiased resize of the center crop ...
    with Image.open(src / "img0.jpg") as im:
        expected = np.asarray(im.convert("RGB").resize((16, 16), Image.Resampling.LANCZOS, box=(0, 5, 40, 45)))
    np.testing.assert_array_equal(top[0].transpose(1, 2, 0), expected)
    # ... and each lower level its 2x2 box average (rounded once from the top, so within one level)
    pooled = 0.25 * (top[:, :, 0::2, 0::2] + top[:, :, 0::2, 1::2] + top[:, :, 1::2, 0::2] + top[:, :, 1::2, 1::2])
    assert np.abs(np.load(out / "images_8.npy") - pooled).max() <= 1.0


def test_missing_or_empty_folder_fails_with_a_clear_message(tmp_path, capsys):
    assert prepare_cli("--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--resolution", "8") == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert prepare_cli("--src", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--resolution", "8") == 2
    assert "holds no images" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"this is not a jpeg", "truncated"])
def test_corrupt_image_is_named_and_stops_unless_skipped(tmp_path, capsys, content):
    src, out = face_folder(tmp_path / "src"), tmp_path / "out"
    bad = src / "img1b.jpg"
    if content == "truncated":
        write_image(bad, (48, 48), seed=9)
        bad.write_bytes(bad.read_bytes()[:300])
    else:
        bad.write_bytes(content)
    assert prepare_cli("--src", str(src), "--out", str(out), "--resolution", "8") == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "--skip-bad" in err
    assert not list(out.glob("images_*.npy"))  # nothing that looks complete
    assert not read_manifest(out)["complete"]
    assert prepare_cli("--src", str(src), "--out", str(out), "--resolution", "8", "--skip-bad") == 0
    assert "1 undecodable images skipped" in capsys.readouterr().err
    m = read_manifest(out)
    assert m["count"] == 6 and [s["file"] for s in m["skipped"]] == ["img1b.jpg"]
    assert np.load(out / "images_8.npy").shape == (6, 3, 8, 8)
    assert "img1b.jpg" not in m["files"]


def test_small_images_fail_before_decoding_unless_upsampling(tmp_path, capsys):
    src, out = face_folder(tmp_path / "src"), tmp_path / "out"
    assert prepare_cli("--src", str(src), "--out", str(out), "--resolution", "64") == 2
    err = capsys.readouterr().err
    assert "smaller than --resolution 64" in err and "--upsample" in err and "img0.jpg (40x50)" in err
    assert read_manifest(out) is None  # failed before writing anything
    assert prepare_cli("--src", str(src), "--out", str(out), "--resolution", "64", "--upsample") == 0
    assert len(read_manifest(out)["upsampled"]) == 6


def test_grayscale_images_are_converted_and_reported(tmp_path, capsys):
    src, out = face_folder(tmp_path / "src"), tmp_path / "out"
    write_image(src / "gray.png", (40, 40), mode="L", seed=3)
    assert prepare_cli("--src", str(src), "--out", str(out), "--resolution", "8") == 0
    assert "1 grayscale images converted to RGB (e.g. gray.png)" in capsys.readouterr().err
    m = read_manifest(out)
    assert m["grayscale_converted"] == ["gray.png"]
    g = np.load(out / "images_8.npy")[m["files"].index("gray.png")]
    assert (g[0] == g[1]).all() and (g[1] == g[2]).all()


def test_interrupted_run_leaves_nothing_complete_and_a_rerun_finishes_identically(tmp_path, monkeypatch):
    src = face_folder(tmp_path / "src")
    reference = prepare_faces(src, tmp_path / "ref", 16, progress=False)
    out = tmp_path / "out"
    real_read, calls = faces.read_face, []

    def crash_at_fourth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_read(*args, **kwargs)

    monkeypatch.setattr(faces, "read_face", crash_at_fourth)
    with pytest.raises(KeyboardInterrupt):
        prepare_faces(src, out, 16, progress=False)
    assert not list(out.glob("images_*.npy")) and not read_manifest(out)["complete"]
    with pytest.raises(FileNotFoundError, match="no complete prepared data set"):
        FaceSampler(out, 16)
    monkeypatch.setattr(faces, "read_face", real_read)
    m = prepare_faces(src, out, 16, progress=False)
    assert m["arrays"] == reference["arrays"] and m["files"] == reference["files"]


def test_crash_between_renames_is_not_trusted_and_complete_arrays_are_reused(tmp_path, monkeypatch):
    src, out = face_folder(tmp_path / "src"), tmp_path / "out"
    real_sha, calls = faces.sha256_of, []

    def crash_on_second_checksum(path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_sha(path)

    monkeypatch.setattr(faces, "sha256_of", crash_on_second_checksum)
    with pytest.raises(KeyboardInterrupt):
        prepare_faces(src, out, 16, progress=False)
    assert (out / "images_4.npy").exists() and read_manifest(out)["arrays"] == {}  # renamed, but not vouched for
    monkeypatch.setattr(faces, "sha256_of", real_sha)
    first = prepare_faces(src, out, 16, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("images_*.npy")}
    assert prepare_faces(src, out, 16, progress=False) == first  # complete: nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("images_*.npy")} == stamps
    (out / "images_8.npy").write_bytes(b"damaged")
    again = prepare_faces(src, out, 16, progress=False)
    assert again["arrays"] == first["arrays"]  # the damaged array is rewritten, identical
    assert (out / "images_16.npy").stat().st_mtime_ns == stamps["images_16.npy"]  # the others reused
    assert (out / "images_8.npy").stat().st_mtime_ns != stamps["images_8.npy"]


def test_a_changed_source_is_prepared_again(tmp_path):
    src, out = face_folder(tmp_path / "src"), tmp_path / "out"
    prepare_faces(src, out, 8, progress=False)
    write_image(src / "new.png", (40, 40), seed=7)
    assert prepare_faces(src, out, 8, progress=False)["count"] == 7


def test_module_form_runs_and_exits_non_zero_on_error(tmp_path):
    src, out = face_folder(tmp_path / "src"), tmp_path / "out"
    cmd = [sys.executable, "-m", "sivae_core.style.prepare", "--src", str(src), "--out", str(out),
           "--resolution", "8", "--no-progress"]
    done = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "6 images ->" in done.stdout
    bad = subprocess.run(cmd[:4] + [str(tmp_path / "missing")] + cmd[5:], check=False, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_resolution_must_be_a_power_of_two(tmp_path):
    with pytest.raises(PrepareError, match="power of two"):
        prepare_faces(face_folder(tmp_path / "src"), tmp_path / "out", 24, progress=False)


# ---------------------------------------------------------------------------------------------- sampler
@pytest.fixture
def prepared(tmp_path) -> Path:
    src = tmp_path / "src"
    for i in range(10):
        write_image(src / f"{i:02d}.png", (16, 16), seed=i)
    prepare_faces(src, tmp_path / "prepared", 16, progress=False)
    return tmp_path / "prepared"


def test_sampler_flips_at_random_from_the_generator(prepared):
    originals = torch.from_numpy(np.load(prepared / "images_16.npy")).float() / 127.5 - 1
    sampler = FaceSampler(prepared, 16)
    assert isinstance(sampler.images, np.memmap)  # read from disk batch by batch
    g = torch.Generator().manual_seed(0)
    flipped = 0
    for _ in range(20):
        x = sampler(10, g)
        perm = sampler.perm
        for img, k in zip(x, perm.tolist()):
            same, mirror = torch.equal(img, originals[k]), torch.equal(img, originals[k].flip(-1))
            assert same or mirror
            flipped += mirror and not same
    assert 70 < flipped < 130  # about half of 200
    unflipped = FaceSampler(prepared, 16, flip=False)
    x = unflipped(10, torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, originals[unflipped.perm])


def test_ranks_take_slices_of_the_same_global_batch(prepared):
    whole = FaceSampler(prepared, 8)
    ranks = [FaceSampler(prepared, 8, rank=r, world=2) for r in range(2)]
    g_whole, g_ranks = torch.Generator().manual_seed(3), [torch.Generator().manual_seed(3) for _ in range(2)]
    for _ in range(5):
        x = whole(4, g_whole)
        parts = [s(4, g) for s, g in zip(ranks, g_ranks)]
        assert parts[0].shape == (2, 3, 8, 8)
        torch.testing.assert_close(torch.cat(parts), x, atol=0, rtol=0)
    with pytest.raises(ValueError, match="equal parts"):
        ranks[0](3, g_ranks[0])


def test_sampler_resumes_exactly_across_epochs_and_a_resolution_change(prepared):
    def run(sampler, g, steps, switch_at=None):
        out = []
        for i in range(steps):
            if i == switch_at:
                sampler.set_resolution(8)
            out.append(sampler(4, g))
        return out

    straight = run(FaceSampler(prepared, 16), torch.Generator().manual_seed(1), 9, switch_at=5)
    first, g = FaceSampler(prepared, 16), torch.Generator().manual_seed(1)
    head = run(first, g, 6, switch_at=5)  # 4 images a batch from 10: epochs of 2 batches
    checkpoint = io.BytesIO()
    torch.save({"sampler": first.state_dict(), "generator": g.get_state()}, checkpoint)
    checkpoint.seek(0)
    state = torch.load(checkpoint)
    resumed, g2 = FaceSampler(prepared, 16), torch.Generator()  # a fresh process
    resumed.load_state_dict(state["sampler"])
    g2.set_state(state["generator"])
    assert resumed.resolution == 8 and resumed.epoch == first.epoch == 2
    tail = run(resumed, g2, 3)
    for a, b in zip(head + tail, straight):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------- real data
def test_real_celeba_faces_prepare_and_load(tmp_path):
    folder = require_data("celeba/img_align_celeba_10k")
    src = tmp_path / "src"
    src.mkdir()
    for p in sorted(folder.glob("*.jpg"))[:32]:
        (src / p.name).symlink_to(p)
    m = prepare_faces(src, tmp_path / "out", 64, progress=False)
    assert m["count"] == 32 and m["crop"]["boxes_by_source_size"] == {"89x109": [0, 10, 89, 99]}
    x = FaceSampler(tmp_path / "out", 64)(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 3, 64, 64) and -1.0 <= float(x.min()) < 0.0 < float(x.max()) <= 1.0


def test_link_images_makes_a_source_folder_of_links_and_keeps_existing_ones(tmp_path):
    from sivae_core.data.faces import link_images

    files = []
    for name in ("b.png", "a.png", "c.png"):
        (tmp_path / name).write_bytes(name.encode())
        files.append(tmp_path / name)
    dst = link_images(files[:2], tmp_path / "src")
    assert sorted(p.name for p in dst.iterdir()) == ["a.png", "b.png"]
    assert all((dst / p.name).is_symlink() and (dst / p.name).read_bytes() == p.name.encode() for p in files[:2])
    assert link_images(files, dst) == dst and sorted(p.name for p in dst.iterdir()) == ["a.png", "b.png", "c.png"]
