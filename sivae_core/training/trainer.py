"""One training loop for every objective, model and ensemble in the book.

Each iteration (Algorithm 2 of Daniel & Tamar 2021): draw a mini-batch and the step's noise from the run's
own generator, take an Adam step on the encoder with the objective's encoder loss, then an Adam step on the
decoder (and a learnable prior) with its decoder loss. Joint objectives (the plain VAE, also used for the
warm-up iterations, and the regularized VAEs) take one step on both; auxiliary networks an objective declares
(FactorVAE's discriminator) take theirs after it. The loop adds what long runs need: learning-rate milestones,
``tqdm`` progress, callbacks, a loud error naming the iteration and the loss term that became NaN/inf, mixed
precision, channels-last, an EMA of the decoder, data-parallel processes (:mod:`.distributed`), and
checkpoints that resume *exactly* (model, every optimizer, schedulers, the objective's schedule, every random
generator and the data sampler) and hold nothing but tensors and plain values (loaded with
``weights_only=True``: a shared checkpoint cannot run code).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ..models.base import IntroVAEModel
from ..objectives.base import Noise, Objective, StepOutput
from ..objectives.vae import VAE
from .callbacks import Callback, StopTraining
from .checkpoint import load_checkpoint_file, save_checkpoint_file
from .distributed import Shard
from .ensemble import Ensemble
from .graphs import StepGraphs
from .samplers import Sampler

__all__ = ["TrainConfig", "Trainer", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; the message names the iteration, step and term."""


@dataclass
class TrainConfig:
    """Budget and optimisation settings. Defaults are the paper's 2D settings (Daniel & Tamar 2021, 9.2.1)."""

    iterations: int = 30_000
    #: The global batch (split over the processes of a data-parallel run).
    batch_size: int = 512
    lr_encoder: float = 2e-4
    lr_decoder: float = 2e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    #: Iterations at which both learning rates are multiplied by ``lr_gamma`` (authors' 2D code).
    lr_milestones: tuple[int, ...] = (10_000, 15_000)
    lr_gamma: float = 0.1
    #: The first ``vae_warmup`` iterations train a plain beta-VAE with the same beta_rec, beta_kl.
    vae_warmup: int = 2_000
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 0
    progress: bool = True
    # ---- training at scale (images). All off by default, so the 2D runs are unchanged.
    #: ``"bf16"`` or ``"fp16"``: run the losses under ``torch.autocast`` (fp16 adds a GradScaler).
    amp_dtype: str | None = None
    #: Keep 4D image batches and the model in channels-last layout (faster convolutions).
    channels_last: bool = False
    #: ``torch.compile`` the encoder and the decoder in place (state_dict keys are unchanged).
    compile: bool = False
    #: Decay of an exponential moving average of the decoder, used for sampling (0: no EMA).
    ema_decay: float = 0.0
    #: Log the gradient norms of both networks (``grad_norm/encoder``, ``grad_norm/decoder``).
    log_grad_norm: bool = False
    #: Ensembles only: a run whose loss becomes NaN/inf is recorded in ``Trainer.diverged`` (run -> iteration) and
    #: left out of every later step, instead of stopping all runs (IntroVAE diverges on some 2D settings).
    drop_diverged_runs: bool = False
    #: Ensembles only. ``"per_run"``: run ``r`` draws its data and noise from its own generator, seeded with its
    #: seed, so it follows the same trajectory as the sequential run with that seed (the equivalence the tests check);
    #: that costs R random-number calls per draw, which dominate a GPU step at large R (tiny kernels, one launch
    #: each). ``"batched"``: one generator (seeded with the first run's seed) makes each draw once for all runs,
    #: and each sampler object draws once for all the runs that share it: runs are still independent, but not the
    #: sequential runs.
    ensemble_noise: str = "per_run"
    #: Record the step once as a CUDA graph and replay it (:mod:`.graphs`): for small models, whose step is bound
    #: by kernel launches. NaN/inf losses are then caught at log steps and before checkpoints, with the iteration
    #: they happened at. Not with objectives that keep a schedule counter in Python (``Objective.recordable``),
    #: auxiliary networks, step hooks, fp16, ``compile`` or several processes. On a CPU the same step runs
    #: uncaptured.
    cuda_graph: bool = False
    #: CUDA only: float32 matrix products on tensor cores in TF32 (a 10-bit mantissa instead of 23) while the trainer
    #: steps; evaluation afterwards stays in full float32. Convolutions already use TF32 by PyTorch's default
    #: (``torch.backends.cudnn.allow_tf32``); matrix products do not, and a large 2D ensemble's step is nothing but
    #: matrix products. Off by default: a stored result uses it only once its metrics are shown not to move.
    tf32: bool = False


@contextmanager
def _tf32_matmuls(enabled: bool) -> Iterator[None]:
    """``TrainConfig.tf32`` for the duration of a step, restoring the caller's setting afterwards (it is global)."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled or before
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def _significant(t: Tensor, digits: int = 7) -> float | list[Any]:
    """A logged value as plain floats with ``digits`` significant digits (about what float32 holds). Decimal places
    would not do: the style model's losses, scaled by ``s = 5e-6``, are ~1e-3 and would keep 3 digits."""
    x = t.detach().double().cpu().numpy()
    return np.vectorize(lambda v: float(f"{v:.{digits}g}"), otypes=[float])(x).tolist()


def _per_run(value: Any, n: int, what: str) -> list[Any]:
    values = list(value) if isinstance(value, Sequence) else [value] * n
    if len(values) != n:
        raise ValueError(f"need one {what} per run ({n} runs), got {len(values)}")
    return values


class Trainer:
    """Train one model, or an :class:`Ensemble` of independent runs, with an :class:`Objective`.

    For an ensemble pass one objective (and one sampler and seed) per run in lists; hyperparameters
    may differ between runs, the objective class may not. ``step_hooks`` run before every iteration in
    every process (a progressive schedule sets the model's resolution there); ``callbacks`` run at log
    steps in the main process and may raise :class:`StopTraining`.
    """

    def __init__(self, model: IntroVAEModel | Ensemble, objective: Objective | Sequence[Objective],
                 sampler: Sampler | Sequence[Sampler], config: TrainConfig, *, seeds: Sequence[int] | None = None,
                 checkpoint_path: str | os.PathLike[str] | None = None, callbacks: Sequence[Callback] = (),
                 step_hooks: Sequence[Callable[[Trainer], None]] = (), shard: Shard | None = None):
        self.model, self.config, self.shard = model, config, shard if shard is not None else Shard()
        self.is_ensemble = isinstance(model, Ensemble)
        n = model.n_runs if isinstance(model, Ensemble) else 1
        self.objectives = _per_run(objective, n, "objective")
        self.samplers = _per_run(sampler, n, "sampler")
        self.seeds = _per_run(seeds if seeds is not None else [config.seed + r for r in range(n)], n, "seed")
        if len({type(o) for o in self.objectives}) != 1:
            raise ValueError("all runs of an ensemble must use the same objective class")
        self.objective = self.objectives[0]
        self.device = next(model.parameters()).device
        if config.ensemble_noise not in ("per_run", "batched"):
            raise ValueError(f"ensemble_noise must be 'per_run' or 'batched', got {config.ensemble_noise!r}")
        self.batched = self.is_ensemble and config.ensemble_noise == "batched"
        if self.batched and self.shard.world > 1:
            raise NotImplementedError("ensemble_noise='batched' is for a single process")
        seeds = self.seeds[:1] if self.batched else self.seeds
        self.generators = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
        self.encoder_params = model.player_parameters("encoder")
        self.decoder_params = model.player_parameters("decoder")
        self.auxiliaries = {} if self.is_ensemble else self.objective.auxiliary_modules(model, self.seeds[0])
        if self.auxiliaries and (self.is_ensemble or self.shard.world > 1):
            raise NotImplementedError(f"{type(self.objective).__name__} trains auxiliary networks, which only a single "
                                      "run in a single process supports")
        self.graphs = StepGraphs(self) if config.cuda_graph else None
        self.reset_optimizers()
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.callbacks, self.step_hooks = list(callbacks), list(step_hooks)
        self.iteration, self.images_seen, self.stopped_early = 0, 0, False
        self.diverged: dict[int, int] = {}
        self.history: list[dict[str, Any]] = []
        self._setup_scale()
        self.wrappers = self.shard.wrap(model) if isinstance(model, IntroVAEModel) else {}
        if self.graphs is not None:
            self._check_graphable()

    def _check_graphable(self) -> None:
        cfg, counters = self.config, {type(o).__name__: o.state_dict() for o in self.objectives if not o.recordable}
        refusals = {
            f"objectives with a Python-side schedule ({counters}), which a replayed step would not advance": counters,
            "auxiliary networks": self.auxiliaries, "step hooks": self.step_hooks, "fp16 loss scaling": self.scaler.is_enabled(),
            "samplers that hand each batch's labels to the model (class-conditional)":
                any(getattr(s, "on_labels", None) for s in self.samplers),
            "compile=True": cfg.compile, "several processes": self.shard.world > 1}
        bad = [what for what, present in refusals.items() if present]
        if bad:
            raise ValueError(f"cuda_graph=True cannot record this step: {'; '.join(bad)}. Train with cuda_graph=False.")

    def reset_optimizers(self) -> None:
        """Fresh Adam states and schedulers (progressive training resets them when the resolution grows)."""
        cfg = self.config
        # One fused kernel per optimizer step on a GPU (an ensemble's few stacked tensors, or an image model's many).
        fused = self.device.type == "cuda"
        self.opt_e = torch.optim.Adam(self.encoder_params, lr=cfg.lr_encoder, betas=cfg.adam_betas, fused=fused)
        self.opt_d = torch.optim.Adam(self.decoder_params, lr=cfg.lr_decoder, betas=cfg.adam_betas, fused=fused)
        self._recordable_optimizers()
        self.sched_e = torch.optim.lr_scheduler.MultiStepLR(self.opt_e, list(cfg.lr_milestones), cfg.lr_gamma)
        self.sched_d = torch.optim.lr_scheduler.MultiStepLR(self.opt_d, list(cfg.lr_milestones), cfg.lr_gamma)
        self.opt_aux = {name: torch.optim.Adam(a.module.parameters(), lr=a.lr, betas=a.betas)
                        for name, a in self.auxiliaries.items()}
        if self.graphs is not None:
            self.graphs.reset()

    def _recordable_optimizers(self) -> None:
        """cuda_graph: a recorded step must read the learning rate from a tensor (the scheduler fills it at its
        milestones) and keep Adam's step count on the device (capturable); a Python float would be frozen into the
        recording. Also after loading a checkpoint, whose param groups replace these settings."""
        if not self.config.cuda_graph:
            return
        for opt in (self.opt_e, self.opt_d):
            for group in opt.param_groups:
                if not isinstance(group["lr"], Tensor):
                    group["lr"] = torch.tensor(group["lr"], device=self.device)
                group["capturable"] = self.device.type == "cuda"

    # ------------------------------------------------------------------ training at scale (opt-in)
    def _setup_scale(self) -> None:
        cfg = self.config
        if cfg.amp_dtype not in (None, "bf16", "fp16"):
            raise ValueError(f"amp_dtype must be None, 'bf16' or 'fp16', got {cfg.amp_dtype!r}")
        self._amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp_dtype or "")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp_dtype == "fp16")
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if cfg.compile:
            self.model.encoder.compile()
            self.model.decoder.compile()
        self.ema: AveragedModel | None = None
        if cfg.ema_decay > 0:
            decoder = getattr(self.model.decoder, "_orig_mod", self.model.decoder)
            self.ema = AveragedModel(decoder, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)

    def _autocast(self):
        # A recorded step keeps no cast copies of the weights between replays (PyTorch: autocast with CUDA graphs).
        return nullcontext() if self._amp is None else torch.autocast(self.device.type, dtype=self._amp,
                                                                      cache_enabled=not self.config.cuda_graph)

    def sampling_decoder(self) -> torch.nn.Module:
        """The decoder to sample with: the EMA copy when ``ema_decay`` > 0, else the trained one."""
        return self.ema.module if self.ema is not None else self.model.decoder

    # ------------------------------------------------------------------ pieces of one iteration
    def _hparams(self, objective_of_run: Sequence[Objective]) -> dict[str, Any]:
        if not self.is_ensemble:
            return objective_of_run[0].hparams
        keys = objective_of_run[0].hparams.keys()
        return {k: torch.tensor([o.hparams[k] for o in objective_of_run], device=self.device) for k in keys}

    def _batch(self) -> Tensor:
        if self.batched:
            return self._batched_batch()
        rows = self.shard.rows(self.config.batch_size)
        xs = [s(self.config.batch_size, g, rows) if rows else s(self.config.batch_size, g)
              for s, g in zip(self.samplers, self.generators)]
        x = torch.stack(xs) if self.is_ensemble else xs[0]
        if self.config.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _batched_batch(self) -> Tensor:
        """All runs' batches with one call per distinct sampler object (``ensemble_noise="batched"``)."""
        b, groups = self.config.batch_size, {}
        for r, s in enumerate(self.samplers):
            groups.setdefault(id(s), []).append(r)
        order = [r for runs in groups.values() for r in runs]
        draws = [self.samplers[runs[0]](len(runs) * b, self.generators[0]) for runs in groups.values()]
        x = torch.cat(draws).unflatten(0, (len(order), b))
        if order != sorted(order):  # back to run order
            x = x[torch.tensor(order, device=x.device).argsort()]
        return x

    def _noise(self, k: int) -> Tensor:
        shape = (k, self.config.batch_size, self.model.z_dim)
        if self.batched:
            return torch.randn((len(self.samplers), *shape), generator=self.generators[0], device=self.device)
        eps = [torch.randn(shape, generator=g, device=self.device) for g in self.generators]
        rows = self.shard.rows(self.config.batch_size)
        eps = [e[:, rows] for e in eps] if rows else eps
        return torch.stack(eps) if self.is_ensemble else eps[0]

    def _losses(self, objective: Objective, part: str, x: Tensor, eps: Tensor, hp: dict[str, Any],
                carry: dict[str, Tensor] | None = None) -> StepOutput:
        if isinstance(self.model, Ensemble):
            return self.model.losses(objective, part, x, eps, hp, carry)
        noise, player = Noise(eps), (None if objective.joint else part)
        with self.shard.step_of(self.model, self.wrappers, player), self._autocast():
            if part == "encoder":
                return objective.encoder_loss(self.model, x, noise, hp)
            return objective.decoder_loss(self.model, x, noise, hp, carry or {})

    def _check_finite(self, out: StepOutput, part: str) -> Tensor | None:
        """Raise :class:`NonFiniteLossError` on a NaN/inf loss; for an ensemble that drops diverged runs, record
        them and return the mask of runs still training (None: all of them)."""
        finite = torch.isfinite(out.loss)
        if self.is_ensemble and self.config.drop_diverged_runs:
            for r in torch.nonzero(~finite).flatten().tolist():
                self.diverged.setdefault(r, self.iteration)
            if bool(finite.any()):
                return None if bool(finite.all()) else finite
        if self.shard.all_true(bool(finite.all())):
            return None
        bad = [name for name, t in out.terms.items() if not bool(torch.isfinite(t).all())]
        raise self._nonfinite_error(self.iteration, part, torch.nonzero(~finite).flatten().tolist(),
                                    bad or ["(in another process, or finite terms overflowed)"])

    def _nonfinite_error(self, iteration: int, part: str, runs: list[int], terms: list[str],
                         found: str = "") -> NonFiniteLossError:
        """The error for a loss that stopped being finite: where, which runs and terms, and what to do."""
        which = f" (runs {runs})" if self.is_ensemble else ""
        return NonFiniteLossError(
            f"iteration {iteration}: the {part} loss of {type(self.objective).__name__} is not finite{which}; "
            f"{found}non-finite terms: {terms}. "
            "Lower the learning rate or beta_neg, check the data range, or resume from the last checkpoint."
        )

    def _update(self, out: StepOutput, part: str, optimizers: dict[str, torch.optim.Optimizer],
                params: list[torch.nn.Parameter] | None, logs: dict[str, Tensor]) -> None:
        """Check, backpropagate (into ``params`` only) and step one player's optimizers."""
        alive = self._check_finite(out, part) if self.graphs is None else self.graphs.mark(out.loss, part)
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        # Runs are independent (stacked parameters, element-wise Adam): a diverged run's NaNs stay in its own slice.
        loss = (out.loss if alive is None else torch.where(alive, out.loss, torch.zeros_like(out.loss))).sum()
        (self.scaler.scale(loss) if self.scaler.is_enabled() else loss).backward(inputs=params)
        for name, opt in optimizers.items():
            if self.config.log_grad_norm:
                if self.scaler.is_enabled():
                    self.scaler.unscale_(opt)
                grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
                logs[f"grad_norm/{name}"] = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            self.scaler.step(opt) if self.scaler.is_enabled() else opt.step()

    def _auxiliary_steps(self, carry: dict[str, Tensor], logs: dict[str, Tensor]) -> None:
        for name, opt in self.opt_aux.items():
            loss = self.objective.auxiliary_loss(name, carry, self.generators[0])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            logs[f"aux/{name}"] = loss.detach()

    def step(self) -> dict[str, Tensor]:
        """One training iteration; returns the detached loss terms."""
        for hook in self.step_hooks:
            hook(self)
        runs, phase = self.objectives, "objective"
        if self.iteration < self.config.vae_warmup:  # plain beta-VAE with each run's own beta_rec, beta_kl
            runs, phase = [VAE(o.hparams["beta_rec"], o.hparams["beta_kl"]) for o in self.objectives], "warm-up"
        objective, x = runs[0], self._batch()
        n_e, n_d = objective.noise_draws
        eps_e, eps_d = self._noise(n_e), self._noise(n_d)

        def updates(hp: dict[str, Any], x: Tensor, eps_e: Tensor, eps_d: Tensor) -> dict[str, Tensor]:
            return self._updates(objective, hp, x, eps_e, eps_d)

        with _tf32_matmuls(self.config.tf32):  # a recorded step keeps the precision it was recorded with
            if self.graphs is None:
                logs = updates(self._hparams(runs), x, eps_e, eps_d)
            else:
                logs = self.graphs.step(phase, lambda: self._hparams(runs), updates, x, eps_e, eps_d)
        if self.scaler.is_enabled():
            self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(getattr(self.model.decoder, "_orig_mod", self.model.decoder))
        self.sched_e.step()
        self.sched_d.step()
        self.iteration += 1
        self.images_seen += self.config.batch_size
        return logs

    def _updates(self, objective: Objective, hp: dict[str, Any], x: Tensor, eps_e: Tensor,
                 eps_d: Tensor) -> dict[str, Tensor]:
        """Both players' updates (or the joint one) on one draw, and any auxiliary steps; the detached terms."""
        logs: dict[str, Tensor] = {}
        out_e = self._losses(objective, "encoder", x, eps_e, hp)
        if objective.joint:
            self._update(out_e, "joint", {"encoder": self.opt_e, "decoder": self.opt_d}, None, logs)
            logs.update({f"joint/{k}": v.detach() for k, v in out_e.terms.items()})
            logs["loss_joint"] = out_e.loss.detach()
        else:
            self._update(out_e, "encoder", {"encoder": self.opt_e}, self.encoder_params, logs)
            out_d = self._losses(objective, "decoder", x, eps_d, hp, out_e.carry)
            self._update(out_d, "decoder", {"decoder": self.opt_d}, self.decoder_params, logs)
            logs.update({f"enc/{k}": v.detach() for k, v in out_e.terms.items()})
            logs.update({f"dec/{k}": v.detach() for k, v in out_d.terms.items()})
            logs["loss_encoder"], logs["loss_decoder"] = out_e.loss.detach(), out_d.loss.detach()
        if objective is self.objective:
            self._auxiliary_steps(out_e.carry, logs)
        return logs

    def _check_recorded(self, logs: dict[str, Tensor] | None = None) -> None:
        """cuda_graph: the NaN/inf check an eager step makes each iteration, made now for the steps since the last
        one (dropping diverged runs, or raising with the iteration and step at which the loss stopped being finite)."""
        if self.graphs is None:
            return
        bad = self.graphs.nonfinite()
        if self.is_ensemble and self.config.drop_diverged_runs:
            for r, (it, _) in bad.items():
                self.diverged.setdefault(r, it)
            if len(self.diverged) < self.model.n_runs:
                return
        if not bad:
            return
        it, part = min(bad.values())
        terms = [k for k, v in (logs or {}).items() if not bool(torch.isfinite(v).all())]
        found = f"found at iteration {self.iteration} (cuda_graph checks at log steps); at that step "
        raise self._nonfinite_error(it, part, sorted(bad), terms or ["?"], found)

    # ------------------------------------------------------------------ the loop
    def _log(self, logs: dict[str, Tensor], bar: tqdm, rate: float) -> bool:
        """Record a log step (global means over processes); run the callbacks. True: stop training."""
        # float(): under bf16 autocast some terms are bf16, which numpy cannot hold.
        self._check_recorded(logs)
        record = {"iteration": self.iteration,
                  **{k: _significant(self.shard.mean(v.float())) for k, v in logs.items()}}
        stop = False
        if self.shard.is_main:
            self.history.append(record)
            main = logs.get("loss_encoder", logs.get("loss_joint"))
            bar.set_postfix(loss=f"{float(main.float().mean()):.4g}", img_s=f"{rate:.0f}")
            try:
                for cb in self.callbacks:
                    cb(self, self.iteration, record)
            except StopTraining:
                stop = True
        return self.shard.any_true(stop)

    def fit(self, iterations: int | None = None, resume: bool = True) -> Trainer:
        """Train until ``iterations`` (default: the config's) have been done in total, or a callback stops it
        (``stopped_early``). With ``resume`` and an existing checkpoint, training continues from it."""
        for _ in self.iterate(iterations, resume):
            pass
        return self

    def iterate(self, iterations: int | None = None, resume: bool = True) -> Iterator[int]:
        """:meth:`fit` one iteration at a time: yields the iteration count after each step (with its logging and
        checkpointing done), so a caller can interleave several trainers
        (:func:`~sivae_core.training.streams.fit_side_by_side`). The final checkpoint is written when it is exhausted."""
        total = self.config.iterations if iterations is None else iterations
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_checkpoint(self.checkpoint_path)
        # SIVAE_PROGRESS=0 silences every bar (headless checks such as nbval, which trips over widget bars).
        show = self.config.progress and self.shard.is_main and os.environ.get("SIVAE_PROGRESS", "1") != "0"
        bar = tqdm(total=total, initial=self.iteration, disable=not show, desc=type(self.objective).__name__,
                   leave=False)
        t0, seen0 = time.perf_counter(), self.images_seen
        try:
            while self.iteration < total:
                logs = self.step()
                bar.update(1)
                if self.iteration % self.config.log_every == 0 or self.iteration == total:
                    rate = (self.images_seen - seen0) / max(time.perf_counter() - t0, 1e-9)
                    if self._log(logs, bar, rate):
                        self.stopped_early = True
                        break
                every = self.config.checkpoint_every
                if self.checkpoint_path is not None and every and self.iteration % every == 0:
                    self.save_checkpoint(self.checkpoint_path)
                yield self.iteration
        finally:
            bar.close()
        if self.checkpoint_path is not None:
            self.save_checkpoint(self.checkpoint_path)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, as tensors and plain values only."""
        return {
            "iteration": self.iteration, "images_seen": self.images_seen, "model": self.model.state_dict(),
            "opt_e": self.opt_e.state_dict(), "opt_d": self.opt_d.state_dict(),
            "sched_e": self.sched_e.state_dict(), "sched_d": self.sched_d.state_dict(),
            "auxiliaries": {n: a.module.state_dict() for n, a in self.auxiliaries.items()},
            "opt_aux": {n: o.state_dict() for n, o in self.opt_aux.items()},
            "generators": [g.get_state() for g in self.generators],
            "samplers": [s.state_dict() if hasattr(s, "state_dict") else None for s in self.samplers],
            "history": self.history, "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "config": asdict(self.config), "diverged": self.diverged,
            "objectives": [{"name": type(o).__name__, "hparams": o.hparams, "state": o.state_dict()}
                           for o in self.objectives],
        }

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Written by the main process, atomically (a crash mid-write never corrupts the last checkpoint)."""
        self._check_recorded()  # never write a checkpoint whose weights a NaN has reached unnoticed
        if self.shard.is_main:
            save_checkpoint_file(self.state_dict(), path)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        state = load_checkpoint_file(path, self.device)
        saved = state["objectives"][0]["name"]
        if saved != type(self.objective).__name__:
            raise ValueError(f"checkpoint {path} was written by a {saved} run, not {type(self.objective).__name__}; "
                             "use another checkpoint path or resume=False")
        self.model.load_state_dict(state["model"])
        for name in ("opt_e", "opt_d", "sched_e", "sched_d"):
            getattr(self, name).load_state_dict(state[name])
        self._recordable_optimizers()
        for name, aux in self.auxiliaries.items():
            aux.module.load_state_dict(state["auxiliaries"][name])
            self.opt_aux[name].load_state_dict(state["opt_aux"][name])
        for g, s in zip(self.generators, state["generators"]):
            g.set_state(s.cpu() if g.device.type == "cpu" else s)
        for sampler, s in zip(self.samplers, state["samplers"]):
            if s is not None:
                sampler.load_state_dict(s)
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        if self.scaler.is_enabled() and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        for objective, saved_objective in zip(self.objectives, state["objectives"]):
            objective.load_state_dict(saved_objective["state"])
        self.history, self.iteration = state["history"], int(state["iteration"])
        self.diverged = {int(r): int(i) for r, i in state["diverged"].items()}
        self.images_seen = int(state["images_seen"])
        if self.graphs is not None:  # the optimizers' state tensors were replaced
            self.graphs.reset()
