"""The suite's benchmark job: the repository's benchmark scripts on the GPU, their ``name: value`` lines stored.

``benchmarks/bench_2d.py`` (ensemble run-iterations/s for R = 1, 15, 60, 240 against sequential runs, and the
time the Table 2 protocol takes) and ``benchmarks/bench_images.py --authors`` (our CIFAR-10 step against a
transcription of the authors' step, target 3x their images/s). They live beside the package in the repository
that travels to the GPU machine; an install without them reports the job as not applicable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .suite import JobContext

__all__ = ["run_bench", "parse_lines"]

SCRIPTS = (("bench_2d", ["--device", "{device}"]), ("bench_images", ["--device", "{device}", "--authors", "--batches", "32"]))


def parse_lines(text: str) -> dict[str, float | str]:
    """The ``name: value`` lines of a benchmark's output (numbers as floats)."""
    out: dict[str, float | str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if sep and name and " " not in name:
            try:
                out[name] = float(value)
            except ValueError:
                out[name] = value.strip()
    return out


def run_bench(ctx: JobContext) -> dict[str, Any]:
    folder = Path.cwd() / "benchmarks"
    if not folder.is_dir():
        return {"not_applicable": f"no benchmarks/ folder under {Path.cwd()}"}
    figures: dict[str, Any] = {}
    for name, args in SCRIPTS:
        extra = {"bench_2d": ["--quick"], "bench_images": ["--quick", "--steps", "1"]}[name] if ctx.smoke else []
        cmd = [sys.executable, str(folder / f"{name}.py"), *(a.format(device=ctx.device.type) for a in args), *extra]
        left = ctx.seconds_left()
        if left < 5:
            figures[name] = {"skipped": "no time left"}
            continue
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=left, env={**os.environ}, check=True)
            figures[name] = parse_lines(done.stdout)
        except subprocess.TimeoutExpired as err:
            out = err.stdout.decode() if isinstance(err.stdout, bytes) else err.stdout  # bytes even with text=True
            figures[name] = {"stopped_at_deadline": True, **parse_lines(out or "")}
    ctx.write("suite_bench", {"figures": figures})
    return {k: len(v) for k, v in figures.items()}
