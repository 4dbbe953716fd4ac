"""Which arithmetic a run trains in: fp32, or bf16/fp16 autocast where the hardware makes it pay.

bf16 autocast is a clear win on GPUs. On a CPU it depends on the chip: with native bf16 instructions
(AVX512-BF16 or AMX) oneDNN's bf16 convolutions made the OOD model's step 1.6x cheaper on the machine the
fast budgets were tuned on, while on a CPU without them (AVX2 only) the same step ran 6.5x *slower* than in
fp32. So the ``"fast"`` precision checks the CPU's instruction set and confirms it with a short timing probe
before it chooses bf16; ``"auto"`` keeps fp32 on every CPU.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import torch

__all__ = ["AMP_CHOICES", "cpu_bf16_is_fast", "autocast_dtype"]

#: ``"auto"``: bf16 on a GPU, fp32 on a CPU. ``"fast"``: bf16 on a GPU or on a CPU where it is faster
#: (:func:`cpu_bf16_is_fast`), else fp32. ``"bf16"``, ``"fp16"``, ``"fp32"``: as named, everywhere.
AMP_CHOICES = ("auto", "fast", "bf16", "fp16", "fp32")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags to read, the probe alone decides
        return {"unknown"}
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}


def _probe_seconds(dtype: torch.dtype | None) -> float:
    """Best time of a small convolution forward and backward (the shape of the OOD model's first block)."""
    g = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(16, 32, 3, padding=1)
    x = torch.randn(32, 16, 28, 28, generator=g)
    best = float("inf")
    for _ in range(4):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            conv(x).square().mean().backward()
        best = min(best, time.perf_counter() - t0)
    return best


@functools.cache
def cpu_bf16_is_fast() -> bool:
    """True when this CPU has native bf16 instructions and bf16 autocast beats fp32 in a short probe."""
    flags = _cpu_flags()
    if not ({"avx512_bf16", "amx_bf16", "unknown"} & flags):
        return False
    return _probe_seconds(torch.bfloat16) * 1.1 < _probe_seconds(None)


def autocast_dtype(amp: str, device: torch.device) -> str | None:
    """The trainer's ``amp_dtype`` for a precision choice on ``device``: ``"bf16"``, ``"fp16"`` or None (fp32)."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}")
    if amp == "auto":
        return "bf16" if device.type == "cuda" else None
    if amp == "fast":
        return "bf16" if device.type == "cuda" or cpu_bf16_is_fast() else None
    return None if amp == "fp32" else amp
