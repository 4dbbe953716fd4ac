"""Prepare a folder of face images for progressive training: ``python -m sivae_core.style.prepare``.

    python -m sivae_core.style.prepare --src ~/data/celeba_hq --out ~/data/celeba_hq_prepared --resolution 256

Every image (PNG or JPEG, any size, in the folder or its sub-folders, in sorted order) is center-cropped
to a square, resized to ``R x R`` with PIL's antialiased Lanczos filter, and the lower resolutions are 2x2
box averages of it (rounded once): exactly the downsampling the model's fade-in applies, so a fading
block sees real images consistent with the resolution below (the authors build theirs the same way).
The output folder gets one uint8 ``(N, 3, r, r)`` array ``images_<r>.npy`` per resolution ``r = 4 .. R``,
meant to be memory-mapped, and ``manifest.json``: image count, source files, crops, per-array SHA-256.

**Interruptions.** Arrays are written under a temporary name and renamed when complete; the manifest,
written last (atomically), is the completion mark and lists only arrays whose checksum it recorded.
Re-running the command reuses every array the manifest vouches for (re-checked against its checksum)
and writes the rest.

**Bad input** stops with a message naming the problem and a non-zero exit status: a missing folder, a
folder without images, an image that cannot be decoded (``--skip-bad`` skips it and lists it in the
manifest), an image smaller than ``R`` (``--upsample`` allows it and lists it). Grayscale images are
converted to RGB, reported, and listed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CELEBA_10K",
    "MANIFEST",
    "PrepareError",
    "UnreadableImageError",
    "add_arguments",
    "array_path",
    "find_faces",
    "link_images",
    "list_images",
    "prepare_faces",
    "read_manifest",
    "run",
]

MANIFEST = "manifest.json"
#: The project's offline faces: the first 10,000 aligned CelebA images (89x109 JPEGs), under a data root.
CELEBA_10K = "celeba/img_align_celeba_10k"
#: Bump when the preparation changes what it writes: older outputs are then rebuilt, never reused.
FORMAT = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


class PrepareError(RuntimeError):
    """The input cannot be prepared as asked; the message says which file and what to do."""


class UnreadableImageError(PrepareError):
    """One image cannot be decoded (``--skip-bad`` skips such images)."""


def find_faces(sub: str = CELEBA_10K, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder ``sub`` under the first data root that holds it (``root``, ``$SIVAE_DATA``, ``./data``, ``shared/data``
    here or above: :func:`~sivae_core.data.images.candidate_roots`); a clear error naming every place searched."""
    from .images import candidate_roots, first_root_holding

    found = first_root_holding(sub, root)
    if found is None:
        where = ", ".join(str(r) for r in candidate_roots(root))
        raise PrepareError(f"no folder {sub} under any data root ({where}); set SIVAE_DATA or pass the folder itself")
    return found


def array_path(out: Path, resolution: int) -> Path:
    return out / f"images_{resolution}.npy"


def list_images(src: Path) -> list[Path]:
    """The images under ``src`` (recursively), sorted by relative path; a clear error when there are none."""
    if not src.is_dir():
        raise PrepareError(f"source folder {src} does not exist (or is not a folder); pass the folder of images "
                           "as --src")
    files = sorted((p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: p.relative_to(src).as_posix())
    if not files:
        raise PrepareError(f"source folder {src} holds no images ({', '.join(IMAGE_SUFFIXES)}), nor do its "
                           "sub-folders")
    return files


def link_images(files: list[Path], dst: Path) -> Path:
    """A source folder ``dst`` of symbolic links to ``files`` (made where missing): a subset of a larger folder, the
    first N faces for example, for :func:`prepare_faces` without copying the images."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in files:
        if not (dst / p.name).exists():
            (dst / p.name).symlink_to(p.resolve())
    return dst


@dataclass
class Report:
    """What happened to the images along the way (goes into the manifest)."""

    kept: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    grayscale: list[str] = field(default_factory=list)
    upsampled: list[str] = field(default_factory=list)
    crops: dict[str, list[int]] = field(default_factory=dict)


def read_face(path: Path, name: str, resolution: int, upsample: bool, report: Report) -> np.ndarray:
    """The square center crop of one image at ``resolution``, float32 ``(3, R, R)`` in [0, 255]."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in GRAY_MODES:
                report.grayscale.append(name)
            rgb = im.convert("RGB")
    except Exception as e:  # PIL raises many types for bad files (OSError, SyntaxError, ValueError, ...)
        raise UnreadableImageError(f"{path}: cannot decode the image ({type(e).__name__}: {e}); remove or replace "
                                   "it, or pass --skip-bad to leave it out") from e
    w, h = rgb.size
    side = min(w, h)
    if side < resolution:
        if not upsample:
            raise PrepareError(f"{path}: {w}x{h} gives a {side}x{side} crop, smaller than --resolution "
                               f"{resolution}; choose a smaller resolution or pass --upsample to enlarge such images")
        report.upsampled.append(name)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    report.crops.setdefault(f"{w}x{h}", list(box))
    square = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box)
    return np.asarray(square, dtype=np.float32).transpose(2, 0, 1)


def check_sizes(src: Path, files: list[Path], resolution: int) -> None:
    """Fail before the long decoding pass when images are too small (reads only the image headers;
    unreadable files are left to the decoding pass, which names them)."""
    from PIL import Image

    small = []
    for path in files:
        try:
            with Image.open(path) as im:
                w, h = im.size
        except (OSError, SyntaxError, ValueError):  # named, or skipped with --skip-bad, by the decoding pass
            continue
        if min(w, h) < resolution:
            small.append(f"{path} ({w}x{h})")
    if small:
        raise PrepareError(f"{len(small)} image(s) under {src} give a square crop smaller than --resolution "
                           f"{resolution}, e.g. {small[0]}; choose a smaller resolution or pass --upsample to "
                           "enlarge them")


def box_pyramid(top: np.ndarray) -> dict[int, np.ndarray]:
    """uint8 images at ``R, R/2, ..., 4``: 2x2 box averages of the float top level, each rounded once."""
    out, level = {}, top
    while True:
        out[level.shape[-1]] = np.clip(np.rint(level), 0, 255).astype(np.uint8)
        if level.shape[-1] == 4:
            return out
        level = 0.25 * (level[:, 0::2, 0::2] + level[:, 0::2, 1::2] + level[:, 1::2, 0::2] + level[:, 1::2, 1::2])


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(src: Path, files: list[Path], resolution: int, skip_bad: bool, upsample: bool) -> str:
    """Identifies the input and options: a manifest with another fingerprint describes other arrays."""
    h = hashlib.sha256(json.dumps([FORMAT, str(src.resolve()), resolution, skip_bad, upsample]).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(src).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / MANIFEST)


def reusable_arrays(out: Path, previous: dict[str, Any] | None, key: str) -> dict[str, dict[str, Any]]:
    """Array entries of a previous manifest with the same fingerprint whose files still match their checksum."""
    if previous is None or previous.get("fingerprint") != key:
        return {}
    return {r: entry for r, entry in previous.get("arrays", {}).items()
            if (out / entry["file"]).exists() and sha256_of(out / entry["file"]) == entry["sha256"]}


def write_arrays(src: Path, files: list[Path], out: Path, resolution: int, todo: list[int], skip_bad: bool,
                 upsample: bool, progress: bool) -> tuple[Report, dict[int, Path]]:
    """Decode every image once and write the ``todo`` resolutions to temporary arrays; returns the report
    and the temporary arrays, holding exactly the kept images."""
    from tqdm.auto import tqdm

    report = Report()
    partial = {r: out / f"images_{r}.npy.partial" for r in todo}
    arrays = {r: np.lib.format.open_memmap(partial[r], mode="w+", dtype=np.uint8, shape=(len(files), 3, r, r))
              for r in todo}
    for path in tqdm(files, desc="preparing", unit="img", disable=not progress):
        name = path.relative_to(src).as_posix()
        try:
            top = read_face(path, name, resolution, upsample, report)
        except UnreadableImageError as e:
            if not skip_bad:
                raise
            report.skipped.append({"file": name, "error": f"{type(e.__cause__).__name__}: {e.__cause__}"})
            continue
        levels = box_pyramid(top)
        for r in todo:
            arrays[r][len(report.kept)] = levels[r]
        report.kept.append(name)
    if not report.kept:
        raise PrepareError(f"none of the {len(files)} images under {src} could be decoded")
    for r in todo:
        arrays[r].flush()
        if len(report.kept) < len(files):
            compact(partial[r], arrays[r], len(report.kept))
    del arrays
    return report, partial


def compact(path: Path, array: np.ndarray, n: int, chunk: int = 1024) -> None:
    """Rewrite the temporary array at ``path`` with its first ``n`` rows (after skipped images)."""
    smaller = path.with_suffix(".shrink")
    target = np.lib.format.open_memmap(smaller, mode="w+", dtype=np.uint8, shape=(n, *array.shape[1:]))
    for i in range(0, n, chunk):
        target[i:i + chunk] = array[i:min(i + chunk, n)]
    target.flush()
    del target
    os.replace(smaller, path)


def prepare_faces(src: str | os.PathLike[str], out: str | os.PathLike[str], resolution: int,
                  skip_bad: bool = False, upsample: bool = False, progress: bool = True) -> dict[str, Any]:
    """Prepare ``src`` into ``out`` (see the module docstring); returns the manifest."""
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if resolution < 4 or resolution & (resolution - 1):
        raise PrepareError(f"--resolution must be a power of two >= 4, got {resolution}")
    levels = [4 << i for i in range(resolution.bit_length() - 2)]
    files = list_images(src)
    if not upsample:
        check_sizes(src, files, resolution)
    out.mkdir(parents=True, exist_ok=True)
    key = fingerprint(src, files, resolution, skip_bad, upsample)
    previous = read_manifest(out)
    reused = reusable_arrays(out, previous, key)
    todo = [r for r in levels if str(r) not in reused]
    if not todo and previous is not None and previous.get("complete"):
        return previous
    base = {"format": FORMAT, "fingerprint": key, "source": str(src.resolve()), "resolution": resolution}
    write_manifest(out, {**base, "complete": False, "arrays": reused})
    report, partial = write_arrays(src, files, out, resolution, todo, skip_bad, upsample, progress)
    arrays = dict(reused)
    for r in todo:
        os.replace(partial[r], array_path(out, r))
        arrays[str(r)] = {"file": array_path(out, r).name, "shape": [len(report.kept), 3, r, r], "dtype": "uint8",
                          "sha256": sha256_of(array_path(out, r))}
    manifest = {
        **base, "complete": True, "count": len(report.kept), "files": report.kept,
        "crop": {"policy": "center square of side min(width, height)", "boxes_by_source_size": report.crops},
        "resize": f"PIL Lanczos to {resolution}x{resolution}; lower resolutions 2x2 box averages, rounded once",
        "skipped": report.skipped, "grayscale_converted": report.grayscale, "upsampled": report.upsampled,
        "arrays": {k: arrays[k] for k in sorted(arrays, key=int)},
    }
    write_manifest(out, manifest)
    return manifest


# ---------------------------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", required=True, help="folder of face images (PNG/JPEG, any size, sub-folders too)")
    parser.add_argument("--resolution", type=int, required=True, help="largest resolution R (power of two)")
    parser.add_argument("--skip-bad", action="store_true", help="skip undecodable images (listed in the manifest)")
    parser.add_argument("--upsample", action="store_true", help="allow images whose crop is smaller than R")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        m = prepare_faces(args.src, args.out, args.resolution, args.skip_bad, args.upsample,
                          progress=not args.no_progress and os.environ.get("SIVAE_PROGRESS", "1") != "0")
    except PrepareError as e:
        print(f"style-prepare: error: {e}", file=sys.stderr)
        return 2
    notes = [(m["grayscale_converted"], "grayscale images converted to RGB"),
             (m["skipped"], "undecodable images skipped"),
             (m["upsampled"], f"images smaller than {args.resolution} upsampled")]
    for items, what in notes:
        if items:
            first = [i["file"] if isinstance(i, dict) else i for i in items[:3]]
            print(f"style-prepare: {len(items)} {what} (e.g. {', '.join(first)}); listed in {MANIFEST}",
                  file=sys.stderr)
    sizes = ", ".join(f"{r}: {os.path.getsize(Path(args.out) / a['file']) / 2**20:.1f} MiB" for r, a in m["arrays"].items())
    print(f"{m['count']} images -> {args.out} ({sizes})")
    return 0
