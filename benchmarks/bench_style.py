"""Training images/s and peak memory of the style-based Soft-IntroVAE per resolution, and data-parallel scaling.

Each resolution is timed in a fresh process (so the peak memory is that resolution's): the preset's model at that
stage (fully faded in), the preset's global batch there, Soft-IntroVAE steps through the one trainer with noise
and style mixing on, on random images (the loader is not timed). Peak memory is the CUDA allocator's peak on a
GPU, the growth of the process's peak resident set over the model's resident baseline on a CPU.

Images per CPU-second (``train_images_per_cpu_s_R``, summed over the processes) are printed beside images per
second of wall time: on a shared machine the wall time measures the other jobs too, the CPU time much less so.
``gflop_per_image_R`` is the FLOPs of one training step per image, counted from the real modules on the meta
device (:mod:`sivae_core.experiments.style_cost`), and ``sustained_gflop_per_cpu_s_R`` what the timed steps
achieved per CPU-second; ``ddp_cpu_efficiency`` is the CPU cost of 1 process over that of ``--world``;
``--paper-flops`` also counts the paper's model at every resolution up to 256x256 (for time estimates).

Data-parallel scaling runs one resolution as one process and as ``--world`` gloo (CPU) or NCCL (GPU) processes
under ``torchrun`` with the same global batch: ``ddp_speedup`` is the ratio of images/s.

    python benchmarks/bench_style.py [--preset cpu32] [--device cpu] [--steps 8] [--threads 1]
                                     [--resolutions 4 8 ...] [--ddp-resolution 16] [--world 2] [--paper-flops]
                                     [--json FILE]

Prints ``name: value`` lines; ``--json`` also stores them with provenance (book/results/bench_style_cpu.json).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from sivae_core.experiments.style import build_model, model_config, schedule_of, settings
from sivae_core.experiments.style_cost import style_step_flops
from sivae_core.models.style import paper_config, resolutions_up_to
from sivae_core.objectives import SoftIntroVAE
from sivae_core.training import TensorSampler, TrainConfig, Trainer, init_distributed
from sivae_core.training.precision import autocast_dtype

HERE = Path(__file__).resolve()


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def batch_at(preset: str, resolution: int, world: int = 1) -> int:
    s = settings(preset, world)
    return schedule_of(s, 10**6).phases[resolution.bit_length() - 3].batch


def time_steps(preset: str, resolution: int, batch: int, steps: int, device: torch.device) -> dict[str, float]:
    """Images/s of ``steps`` training steps at ``resolution`` (after 2 warm-up steps) and the peak memory."""
    shard = init_distributed(device)
    s = settings(preset, shard.world)
    model = build_model(s).to(device)
    model.set_stage(resolution)
    cfg = TrainConfig(iterations=10**9, batch_size=batch, lr_encoder=s.lr, lr_decoder=s.lr, adam_betas=(0.0, 0.99),
                      lr_milestones=(), vae_warmup=0, progress=False, log_every=10**9,
                      amp_dtype=autocast_dtype(s.amp, device), channels_last=device.type == "cuda")
    data = torch.rand(max(4 * batch, 64), 3, resolution, resolution, device=device) * 2 - 1
    begin = lambda tr: model.begin_step(tr.iteration, 0, shard.rank, shard.world, batch // shard.world)  # noqa: E731
    trainer = Trainer(model, SoftIntroVAE(s.beta_rec, s.beta_kl, s.beta_neg[0], s.gamma_r, s=s.s),
                      TensorSampler(data), cfg, step_hooks=[begin], shard=shard)
    base = _rss_mib()
    for _ in range(2):
        trainer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        trainer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base)
    return {"images_per_s": batch * steps / seconds, "images_per_cpu_s": batch * steps / (cpu * shard.world),
            "peak_mib": peak, "batch": batch}


def _child(args: list[str], world: int = 1) -> dict[str, float]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}"]
    cmd = (launcher if world > 1 else [sys.executable]) + [str(HERE), "--child", *args]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])


def record(figures: dict[str, float | str], steps: int) -> dict[str, object]:
    """What ``--json`` stores beside the provenance: the figures and a budget block (a benchmark times steps and
    trains nothing, so it has no fraction of the paper's budget)."""
    from sivae_core.results import budget_block

    return {"figures": figures, "steps_timed": steps,
            "note": "random images; one fresh process per resolution; CPU peak = growth of the peak resident set "
                    "over the built model's",
            "budget": budget_block("benchmark: timed training steps, no training result", None)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu32", choices=("cpu32", "gpu64", "paper"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--resolutions", type=int, nargs="+", help="default: every resolution of the preset")
    p.add_argument("--ddp-resolution", type=int, default=16, help="resolution of the scaling run (0: none)")
    p.add_argument("--world", type=int, default=2, help="processes of the scaling run")
    p.add_argument("--paper-flops", action="store_true", help="count the paper model's FLOPs per image (4..256)")
    p.add_argument("--json", help="also write the figures with provenance to this file")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--resolution", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if a.child:
        result = time_steps(a.preset, a.resolution, a.batch, a.steps, device)
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(result))
        return 0
    common = ["--preset", a.preset, "--device", a.device, "--steps", str(a.steps), "--threads", str(a.threads)]
    figures: dict[str, float | str] = {"preset": a.preset, "device": a.device, "threads": a.threads}
    resolutions = a.resolutions or resolutions_up_to(settings(a.preset).resolution)
    flops = style_step_flops(model_config(settings(a.preset)), tuple(resolutions))
    for r in resolutions:
        res = _child([*common, "--resolution", str(r), "--batch", str(batch_at(a.preset, r))])
        figures[f"train_images_per_s_{r}"] = round(res["images_per_s"], 1)
        figures[f"train_images_per_cpu_s_{r}"] = round(res["images_per_cpu_s"], 1)
        figures[f"peak_memory_mib_{r}"] = round(res["peak_mib"], 1)
        figures[f"batch_{r}"] = res["batch"]
        figures[f"gflop_per_image_{r}"] = round(flops[r] / 1e9, 4)
        figures[f"sustained_gflop_per_cpu_s_{r}"] = round(res["images_per_cpu_s"] * flops[r] / 1e9, 1)
    if a.paper_flops:
        for r, f in style_step_flops(paper_config()).items():
            figures[f"paper_gflop_per_image_{r}"] = round(f / 1e9, 3)
    if a.ddp_resolution:
        r, b = a.ddp_resolution, batch_at(a.preset, a.ddp_resolution)
        b -= b % a.world
        one = _child([*common, "--resolution", str(r), "--batch", str(b)])
        many = _child([*common, "--resolution", str(r), "--batch", str(b)], world=a.world)
        figures.update({f"ddp_{r}_batch": b, f"ddp_{r}_world1_images_per_s": round(one["images_per_s"], 1),
                        f"ddp_{r}_world{a.world}_images_per_s": round(many["images_per_s"], 1),
                        "ddp_speedup": round(many["images_per_s"] / one["images_per_s"], 3),
                        f"ddp_{r}_world1_images_per_cpu_s": round(one["images_per_cpu_s"], 1),
                        f"ddp_{r}_world{a.world}_images_per_cpu_s": round(many["images_per_cpu_s"], 1),
                        "ddp_cpu_efficiency": round(many["images_per_cpu_s"] / one["images_per_cpu_s"], 3)})
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)
    for k, v in figures.items():
        print(f"{k}: {v}")
    if a.json:
        from sivae_core.results import write_results

        write_results(a.json, record(figures, a.steps), device=device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
