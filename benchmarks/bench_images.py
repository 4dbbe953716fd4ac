"""Images/s of one S-IntroVAE training step (encoder + decoder update) on CIFAR-10 with the paper's model
(channels (64, 128, 256), z_dim 128), batch 32 and 128; bf16 autocast + channels-last on a GPU. The
baseline, measured in the same run, is one plain VAE step of the same model: the ratio is what the
introspective game (fakes encoded and decoded again, two updates) costs.

On a GPU the same step is also timed recorded as a CUDA graph (``cuda_graph=True``: at batch 32 the step is bound
by kernel launches): ``sivae_step_graphed_images_per_s_batch{B}``, and with ``--authors``
``sivae_graphed_over_authors_speedup_batch32``. A recording that fails prints ``sivae_step_graphed_error`` instead.

``--authors`` also times a transcription of the authors' training step (their model layout with BatchNorm,
fp32, separate network calls with ``requires_grad`` toggles and the extra deterministic reconstruction their loop
logs, batch 32) in the same process: ``sivae_over_authors_speedup_batch32`` is our step's images/s over theirs.

A second comparison times the chapters' fast Fashion-MNIST setting (channels (16, 32), batch 64, one
thread unless ``--threads``) in the default and in the channels-last memory format: the ratio is why
``train_images`` uses channels-last on a CPU too (oneDNN's convolutions are faster in it).

    python benchmarks/bench_images.py [--steps 20] [--device cuda] [--compile] [--smoke-steps 300]

Prints ``name: value`` lines. ``--smoke-steps N`` (GPU) then trains N full-mode iterations on the
offline CIFAR-10 subset and prints the final losses (a smoke run, not a result).
"""

from __future__ import annotations

import argparse
import time

import torch

from sivae_core import TensorSampler, TrainConfig, Trainer
from sivae_core.data import load_dataset
from sivae_core.experiments.images import build, objective_for, settings
from sivae_core.training.graphs import CALLS_UNTIL_STEADY
from sivae_core.training.precision import autocast_dtype


def bench(batch: int, steps: int, device: torch.device, images: torch.Tensor, compile: bool,
          method: str = "sivae", dataset: str = "cifar10", channels_last: bool | None = None,
          fast: bool | str = False, amp: str | None = None, graph: bool = False) -> float:
    s = settings(dataset, method, fast=fast or dataset != "cifar10")
    model = build(s, tuple(images.shape[1:])).to(device)
    cuda = device.type == "cuda"
    cfg = TrainConfig(iterations=10**9, batch_size=batch, lr_milestones=(), vae_warmup=0, progress=False,
                      amp_dtype=autocast_dtype(amp or s.amp, device),
                      channels_last=cuda if channels_last is None else channels_last, compile=compile,
                      cuda_graph=graph)
    tr = Trainer(model, objective_for(s), TensorSampler(images.to(device) if cuda else images, device=device), cfg)
    warmup = 10 if compile else CALLS_UNTIL_STEADY if graph else 3  # untimed: compilation, or the recording
    for _ in range(warmup):
        tr.step()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        tr.step()
    if cuda:
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t)


def _with_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """The authors' layout: every GroupNorm of the residual model replaced by a BatchNorm2d of the same width."""
    for name, child in model.named_children():
        if isinstance(child, torch.nn.GroupNorm):
            setattr(model, name, torch.nn.BatchNorm2d(child.num_channels))
        else:
            _with_batchnorm(child)
    return model


def authors_step_factory(device: torch.device, images: torch.Tensor, batch: int = 32):
    """One Soft-IntroVAE step written as the authors' ``train_soft_intro_vae.py`` writes it (fp32, BatchNorm)."""
    s = settings("cifar10", "sivae")
    model = _with_batchnorm(build(s, tuple(images.shape[1:]))).to(device).train()
    opt_e = torch.optim.Adam(model.encoder.parameters(), lr=2e-4)
    opt_d = torch.optim.Adam(model.decoder.parameters(), lr=2e-4)
    data = images.to(device)
    scale, b_rec, b_kl, b_neg = 1 / (3 * 32 * 32), 1.0, 1.0, 256.0

    def kl(mu, lv):
        return -0.5 * (1 + lv - mu.pow(2) - lv.exp()).sum(1)

    def rec(x, y):
        return ((x - y) ** 2).flatten(1).sum(1)

    def fwd(x):
        mu, lv = model.encode(x)
        return mu, lv, model.decode(mu + torch.randn_like(mu) * (0.5 * lv).exp())

    def step() -> None:
        x = data[torch.randint(len(data), (batch,), device=device)].float() / 255
        noise = torch.randn(batch, s.z_dim, device=device)
        model.encoder.requires_grad_(True)
        model.decoder.requires_grad_(False)
        fake = model.decode(noise)
        mu, lv = model.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * lv).exp()
        x_r = model.decode(z)
        model.decode(model.encode(x)[0])  # the deterministic reconstruction their loop logs
        f_mu, f_lv, f_rec = fwd(fake.detach())
        r_mu, r_lv, r_rec = fwd(x_r.detach())
        exp_f = (-2 * scale * (b_rec * rec(fake, f_rec) + b_neg * kl(f_mu, f_lv))).exp().mean()
        exp_r = (-2 * scale * (b_rec * rec(x_r, r_rec) + b_neg * kl(r_mu, r_lv))).exp().mean()
        loss_e = scale * (b_rec * rec(x, x_r).mean() + b_kl * kl(mu, lv).mean()) + 0.25 * (exp_f + exp_r)
        opt_e.zero_grad()
        loss_e.backward()
        opt_e.step()
        model.encoder.requires_grad_(False)
        model.decoder.requires_grad_(True)
        fake, x_r = model.decode(noise), model.decode(z.detach())
        r_mu, r_lv = model.encode(x_r)
        f_mu, f_lv = model.encode(fake)
        rr = model.decode((r_mu + torch.randn_like(r_mu) * (0.5 * r_lv).exp()).detach())
        ff = model.decode((f_mu + torch.randn_like(f_mu) * (0.5 * f_lv).exp()).detach())
        loss_d = scale * (b_rec * rec(x, x_r).mean() + 0.5 * b_kl * (kl(r_mu, r_lv) + kl(f_mu, f_lv)).mean()
                          + 1e-8 * 0.5 * b_rec * (rec(x_r.detach(), rr) + rec(fake.detach(), ff)).mean())
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()

    return step


def time_step(step, steps: int, device: torch.device, warmup: int = 3) -> float:
    """Calls per second of ``step``."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--smoke-steps", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the CPU comparison (fast setting)")
    ap.add_argument("--authors", action="store_true", help="also time the transcribed authors' step (batch 32)")
    ap.add_argument("--quick", action="store_true", help="the CIFAR-10 comparisons only (no CPU fast-mode figures)")
    a = ap.parse_args()
    device = torch.device(a.device)
    data = load_dataset("cifar10", "train")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    print(f"device: {name}")
    print(f"precision: {'bf16 autocast, channels-last' if device.type == 'cuda' else 'fp32'}")
    for b in a.batches:
        sivae = bench(b, a.steps, device, data.images, a.compile)
        vae = bench(b, a.steps, device, data.images, a.compile, method="vae")
        print(f"sivae_step_images_per_s_batch{b}: {sivae:.1f}")
        print(f"vae_step_images_per_s_batch{b}: {vae:.1f}")
        print(f"sivae_over_vae_time_ratio_batch{b}: {vae / sivae:.2f}")
        graphed = None
        if device.type == "cuda":
            try:
                graphed = bench(b, a.steps, device, data.images, False, graph=True)
                print(f"sivae_step_graphed_images_per_s_batch{b}: {graphed:.1f}")
            except Exception as err:  # a benchmark reports what failed and goes on to its other figures
                print(f"sivae_step_graphed_error: {type(err).__name__}: {str(err)[:200]}".replace("\n", " "))
        if a.authors and b == 32:
            theirs = 32 * time_step(authors_step_factory(device, data.images), a.steps, device)
            print(f"authors_step_images_per_s_batch32: {theirs:.1f}")
            print(f"sivae_over_authors_speedup_batch32: {sivae / theirs:.2f}")
            if graphed is not None:
                print(f"sivae_graphed_over_authors_speedup_batch32: {graphed / theirs:.2f}")
    if device.type == "cpu" and not a.quick:
        threads = torch.get_num_threads()
        torch.set_num_threads(a.threads)
        fmnist = load_dataset("fmnist", "train").images
        plain = bench(64, a.steps, device, fmnist, False, dataset="fmnist", channels_last=False)
        last = bench(64, a.steps, device, fmnist, False, dataset="fmnist", channels_last=True)
        print(f"fast_fmnist_sivae_images_per_s_contiguous_{a.threads}thread: {plain:.1f}")
        print(f"fast_fmnist_sivae_images_per_s_channels_last_{a.threads}thread: {last:.1f}")
        print(f"fast_fmnist_channels_last_speedup: {last / plain:.2f}")
        # The OOD budget trains in bf16 on a CPU with native bf16 ("fast" precision: oneDNN kernels, AVX512-BF16 or AMX).
        ood32 = bench(64, a.steps, device, fmnist, False, dataset="fmnist", channels_last=True, fast="ood", amp="fp32")
        ood16 = bench(64, a.steps, device, fmnist, False, dataset="fmnist", channels_last=True, fast="ood", amp="bf16")
        print(f"fast_ood_fmnist_sivae_images_per_s_fp32_{a.threads}thread: {ood32:.1f}")
        print(f"fast_ood_fmnist_sivae_images_per_s_bf16_{a.threads}thread: {ood16:.1f}")
        print(f"fast_ood_bf16_speedup: {ood16 / ood32:.2f}")
        torch.set_num_threads(threads)
    if a.smoke_steps:
        from sivae_core.experiments.images import train_images

        s = settings("cifar10", "sivae", iterations=a.smoke_steps)
        _, tr, info = train_images(s, device=a.device, progress=False, data=data)
        last = tr.history[-1]
        print(f"smoke_iterations: {info['iterations']}")
        print(f"smoke_wall_seconds: {info['wall_seconds']}")
        print(f"smoke_final_rec: {last['enc/rec']:.2f}")
        print(f"smoke_final_kl: {last['enc/kl']:.2f}")


if __name__ == "__main__":
    main()
