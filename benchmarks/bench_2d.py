"""2D training throughput: one Soft-IntroVAE run, and the vectorized ensemble against sequential runs.

Prints one machine-readable line per figure, ``name: value``:

* ``sivae_2d_single_run_it_per_s``: iterations/s of one S-IntroVAE run (batch 512, the paper's network)
  through :class:`sivae_core.Trainer`;
* ``sivae_2d_baseline_it_per_s``: the same step written the straightforward way (the structure of the
  authors' 2D code: separate network calls per batch, ``requires_grad`` toggling, an extra deterministic
  reconstruction for logging), measured in the same process as the baseline;
* ``sivae_2d_speedup_vs_baseline``: their ratio;
* ``ensemble_R{R}_run_it_per_s`` and ``ensemble_R{R}_ratio_vs_sequential``: aggregate run-iterations/s of an
  ensemble of R runs (R = 1, 15, 60, 240), and its ratio to R sequential runs;
* ``ensemble_R{R}_batched_run_it_per_s`` and ``ensemble_R{R}_batched_over_per_run``: the same ensemble with the
  trainer's ``ensemble_noise="batched"`` (one random-number call per draw for all runs, as the GPU suite trains),
  and its ratio to the per-run generators above;
* ``ensemble_R{R}_graphed_run_it_per_s`` and ``ensemble_R{R}_graphed_over_batched``: the batched ensemble with its
  step recorded as a CUDA graph (``cuda_graph=True``; on a CPU nothing is recorded and the ratio is about 1), and
  ``ensemble_R15_graphed_max_param_diff`` (R4 with ``--quick``): the largest parameter difference after 50 steps
  between the recorded step and the same step run unrecorded (the check that the recording trains the same runs; 0
  on a CPU, where nothing is recorded), and ``ensemble_R15_asivae_graphed_max_param_diff`` the same for AS-IntroVAE,
  whose annealing schedule the recorded step advances;
* ``ensemble_R{R}_ops_per_step_per_run`` / ``..._batched``: PyTorch operators dispatched per ensemble step (a
  device-independent count of what a GPU launches as kernels), for R = 15 (4 with ``--quick``) and the largest R;
* ``ensemble_R{R}_graphed_tf32_run_it_per_s`` and ``ensemble_R{R}_tf32_over_fp32``: the recorded step with TF32
  matrix products (``TrainConfig.tf32``), and its ratio to the float32 one (about 1 on a CPU, which has no TF32);
* ``table2_protocol_estimated_minutes``: 4 datasets x 3 methods x 5 seeds x 30,000 iterations, trained as
  one ensemble per method, extrapolated from the measured ensemble speed on this device (per-run generators),
  ``table2_protocol_batched_estimated_minutes`` with batched noise, ``table2_protocol_graphed_estimated_minutes``
  with batched noise and recorded steps (as the GPU suite trains) and ``..._graphed_tf32_...`` with TF32 as well,
  and ``table2_protocol_graphed[_tf32]_streams_estimated_minutes`` with the three ensembles stepped side by side,
  each on its own CUDA stream. ``--quick`` (a smoke check) times ensembles of 2 runs instead of 20, so its
  "protocol" is a tenth of Table 2's (``table2_runs_per_ensemble`` says which).

    python benchmarks/bench_2d.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from sivae_core import TrainConfig, Trainer, seeded
from sivae_core.data.toy2d import ToySampler, sample
from sivae_core.models import ToyVAE
from sivae_core.objectives import VAE, ASIntroVAE, IntroVAE, SoftIntroVAE
from sivae_core.training import Ensemble
from sivae_core.training.graphs import CALLS_UNTIL_STEADY
from sivae_core.training.streams import fit_side_by_side

BETAS = dict(beta_rec=0.2, beta_kl=0.3, beta_neg=0.9)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def rate(step, n: int, device: str, warmup: int) -> float:
    """Calls per second of ``step`` over ``n`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return n / (time.perf_counter() - start)


def trainer_for(model, objective, n_runs: int, device: str, noise: str = "per_run", graph: bool = False,
                tf32: bool = False) -> Trainer:
    cfg = TrainConfig(iterations=10**9, batch_size=512, vae_warmup=0, progress=False, log_every=10**9,
                      ensemble_noise=noise, cuda_graph=graph, tf32=tf32)
    if n_runs == 1:
        return Trainer(model, objective, ToySampler("8gaussians"), cfg)
    return Trainer(model, [objective] * n_runs, [ToySampler("8gaussians")] * n_runs, cfg, seeds=list(range(n_runs)))


def graphed_difference(r: int, device: str, steps: int, objective=lambda: SoftIntroVAE(**BETAS)) -> float:
    """Largest parameter difference between an ensemble trained with recorded steps and the same ensemble and step
    run unrecorded; ``objective`` makes a fresh objective for each (AS-IntroVAE's counts its steps). (Against
    ``cuda_graph=False`` it would not be 0: the learning rate as a float32 tensor rounds differently from a Python
    float, and Adam's normalised steps amplify such differences in weights whose gradients are near zero.)"""
    trained = []
    for capture in (False, True):
        trainer = ensemble_trainer(objective(), r, device, "graphed")
        trainer.graphs.capture = capture and device == "cuda"
        for _ in range(steps):
            trainer.step()
        trained.append(trainer.model)
    return max((p - q).abs().max().item() for p, q in zip(*(e.parameters() for e in trained)))


def ops_per_step(step) -> int:
    """Operators dispatched by one call of ``step`` (after one untimed call), counted by the profiler."""
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    return sum(1 for e in prof.events() if e.name.startswith("aten::"))


def baseline_step_factory(device: str):
    """The straightforward implementation (structure of the authors' 2D loop), for a same-run baseline."""
    model = seeded(ToyVAE, 0).to(device)
    opt_e = torch.optim.Adam(model.encoder.parameters(), lr=2e-4)
    opt_d = torch.optim.Adam(model.decoder.parameters(), lr=2e-4)
    g = torch.Generator(device=device).manual_seed(0)
    s, b = 0.5, BETAS

    def forward(x):
        mu, logvar = model.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return mu, logvar, z, model.decode(z)

    def kl(mu, logvar):
        return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)

    def rec(x, y):
        return F.mse_loss(y, x, reduction="none").sum(1)

    def step():
        x = sample("8gaussians", 512, g)
        noise = torch.randn(512, 2, device=device)
        for p in model.encoder.parameters():
            p.requires_grad = True
        for p in model.decoder.parameters():
            p.requires_grad = False
        fake = model.decode(noise)
        mu, logvar = model.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        x_r = model.decode(z)
        model(x)  # deterministic reconstruction, logged by the authors' loop
        f_mu, f_lv, _, f_rec = forward(fake.detach())
        r_mu, r_lv, _, r_rec = forward(x_r.detach())
        exp_f = (-2 * s * (b["beta_rec"] * rec(fake, f_rec) + b["beta_neg"] * kl(f_mu, f_lv))).exp().mean()
        exp_r = (-2 * s * (b["beta_rec"] * rec(x_r, r_rec) + b["beta_neg"] * kl(r_mu, r_lv))).exp().mean()
        loss_e = s * (b["beta_kl"] * kl(mu, logvar).mean() + b["beta_rec"] * rec(x, x_r).mean()) + 0.25 * (exp_f + exp_r)
        opt_e.zero_grad()
        loss_e.backward()
        opt_e.step()
        for p in model.encoder.parameters():
            p.requires_grad = False
        for p in model.decoder.parameters():
            p.requires_grad = True
        fake = model.decode(noise)
        x_r = model.decode(z.detach())
        r_mu, r_lv = model.encode(x_r)
        f_mu, f_lv = model.encode(fake)
        rr = model.decode(r_mu + torch.randn_like(r_mu) * (0.5 * r_lv).exp())
        ff = model.decode(f_mu + torch.randn_like(f_mu) * (0.5 * f_lv).exp())
        loss_d = s * (b["beta_rec"] * rec(x, x_r).mean() + 0.5 * b["beta_kl"] * (kl(r_mu, r_lv) + kl(f_mu, f_lv)).mean()
                      + 1e-8 * 0.5 * b["beta_rec"] * (rec(x_r.detach(), rr) + rec(fake.detach(), ff)).mean())
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()

    return step


TABLE2_OBJECTIVES = (VAE(0.8, 0.05), IntroVAE(0.3, 0.5, 1.0, 1.0), SoftIntroVAE(**BETAS))


def ensemble_trainer(objective, r: int, device: str, variant: str) -> Trainer:
    """An ensemble of ``r`` runs of ``objective``; ``variant``: ``"per_run"`` generators, ``"batched"`` noise,
    batched and ``"graphed"`` (recorded steps), or all that and ``"graphed_tf32"`` (TF32 matrix products)."""
    ens = Ensemble([seeded(ToyVAE, s) for s in range(r)]).to(device)
    return trainer_for(ens, objective, r, device, "per_run" if variant == "per_run" else "batched",
                       graph=variant.startswith("graphed"), tf32=variant == "graphed_tf32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke check: short timings, ensembles of 1 and 4 (< 1 minute)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    dev = args.device
    n = 4 if args.quick else 60
    # Untimed calls first: the first call's one-off costs (three for a GPU), and a recorded step's capture. On a
    # CPU nothing is recorded, and --quick (a smoke check) keeps them few.
    warm = 1 if args.quick else 3
    warm_graphed = CALLS_UNTIL_STEADY if dev == "cuda" else warm
    print(f"device: {torch.cuda.get_device_name() if dev == 'cuda' else f'cpu, {torch.get_num_threads()} threads'}")

    single = trainer_for(seeded(ToyVAE, 0).to(dev), SoftIntroVAE(**BETAS), 1, dev)
    ours = rate(single.step, n, dev, warm)
    base = rate(baseline_step_factory(dev), n, dev, warm)
    print(f"sivae_2d_single_run_it_per_s: {ours:.1f}")
    print(f"sivae_2d_baseline_it_per_s: {base:.1f}")
    print(f"sivae_2d_speedup_vs_baseline: {ours / base:.2f}")

    sizes = [1, 4] if args.quick else [1, 15, 60, 240]
    per_method_time = {}
    for r in sizes:
        calls = max(2, n // max(1, r // 15))
        steps = {variant: ensemble_trainer(SoftIntroVAE(**BETAS), r, dev, variant).step
                 for variant in ("per_run", "batched", "graphed", "graphed_tf32")}
        it_s = rate(steps["per_run"], calls, dev, warm)
        print(f"ensemble_R{r}_run_it_per_s: {it_s * r:.1f}")
        print(f"ensemble_R{r}_ratio_vs_sequential: {it_s * r / ours:.2f}")
        if r > 1:
            batched = rate(steps["batched"], calls, dev, warm)
            print(f"ensemble_R{r}_batched_run_it_per_s: {batched * r:.1f}")
            print(f"ensemble_R{r}_batched_over_per_run: {batched / it_s:.2f}")
            graphed = rate(steps["graphed"], calls, dev, warm_graphed)
            print(f"ensemble_R{r}_graphed_run_it_per_s: {graphed * r:.1f}")
            print(f"ensemble_R{r}_graphed_over_batched: {graphed / batched:.2f}")
            tf32 = rate(steps["graphed_tf32"], calls, dev, warm_graphed)
            print(f"ensemble_R{r}_graphed_tf32_run_it_per_s: {tf32 * r:.1f}")
            print(f"ensemble_R{r}_tf32_over_fp32: {tf32 / graphed:.2f}")
        if r == sizes[1]:
            print(f"ensemble_R{r}_graphed_max_param_diff: {graphed_difference(r, dev, 2 if args.quick else 50):.2e}")
            # AS-IntroVAE: its annealing counter lives on the device, advanced inside the recorded step (T = 50
            # introspective steps: c goes from 0 to 1 within the comparison)
            diff = graphed_difference(r, dev, 2 if args.quick else 50, lambda: ASIntroVAE(**BETAS, total_iters=50))
            print(f"ensemble_R{r}_asivae_graphed_max_param_diff: {diff:.2e}")
        if r in (sizes[1], sizes[-1]):
            for noise in ("per_run", "batched"):
                print(f"ensemble_R{r}_ops_per_step_{noise}: {ops_per_step(steps[noise])}")
    # Table 2: one ensemble of 20 runs (4 datasets x 5 seeds) per method, 30,000 iterations each.
    runs = 2 if args.quick else 20
    print(f"table2_runs_per_ensemble: {runs}")
    for variant in ("per_run", "batched", "graphed", "graphed_tf32"):
        trainers = [ensemble_trainer(obj, runs, dev, variant) for obj in TABLE2_OBJECTIVES]
        for name, trainer in zip(("vae", "introvae", "sivae"), trainers):
            per_method_time[name] = 30_000 / rate(trainer.step, max(2, n // 3), dev,
                                                  warm_graphed if variant.startswith("graphed") else warm)
        label = "" if variant == "per_run" else f"_{variant}"
        print(f"table2_protocol{label}_estimated_minutes: {sum(per_method_time.values()) / 60:.1f}")
    # The three ensembles side by side, each on its own CUDA stream (one step of each per round).
    for variant in ("graphed", "graphed_tf32"):
        trainers = [ensemble_trainer(obj, runs, dev, variant) for obj in TABLE2_OBJECTIVES]
        rounds = rate(lambda ts=trainers: fit_side_by_side(ts, ts[0].iteration + 1), max(2, n // 3), dev, warm_graphed)
        print(f"table2_protocol_{variant}_streams_estimated_minutes: {30_000 / rounds / 60:.1f}")


if __name__ == "__main__":
    main()
