"""One training loop for every objective, model and ensemble in the book.

Each iteration (Algorithm 2): draw a mini-batch and the step's noise from the run's own generator,
take an Adam step on the encoder with the objective's encoder loss, then an Adam step on the decoder
with its decoder loss. Joint objectives (the plain VAE, also used for the warm-up iterations) take one
step on both. The loop adds what long runs need: learning-rate milestones, ``tqdm`` progress,
callbacks, a loud error naming the loss term that became NaN/inf, and checkpoints that resume
*exactly* (model, both Adam states, schedulers, every random generator and the data sampler).
"""

from __future__ import annotations

import copy
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .ensemble import Ensemble
from .models.base import IntroVAEModel
from .objectives import VAE, Noise, Objective, StepOutput

__all__ = ["TrainConfig", "Trainer", "NonFiniteLossError", "Sampler", "TensorSampler", "seeded"]


class Sampler(Protocol):
    """Draws a training mini-batch. Stateful samplers (epochs) also provide state_dict/load_state_dict."""

    def __call__(self, batch_size: int, generator: torch.Generator) -> Tensor: ...


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; the message names the iteration, step and term."""


@dataclass
class TrainConfig:
    """Budget and optimisation settings. Defaults are the paper's 2D settings (seed 001, 9.2.1)."""

    iterations: int = 30_000
    batch_size: int = 512
    lr_encoder: float = 2e-4
    lr_decoder: float = 2e-4
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
    #: Keep 4D image batches and the model in channels-last layout (faster convolutions on GPUs).
    channels_last: bool = False
    #: ``torch.compile`` the encoder and the decoder in place (state_dict keys are unchanged).
    compile: bool = False
    #: Decay of an exponential moving average of the decoder, used for sampling (0: no EMA).
    ema_decay: float = 0.0
    #: Log the gradient norms of both networks (``grad_norm/encoder``, ``grad_norm/decoder``).
    log_grad_norm: bool = False


def seeded(factory: Callable[[], IntroVAEModel], seed: int) -> IntroVAEModel:
    """Build a model with its initial weights determined by ``seed`` alone."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return factory()
    finally:
        torch.random.set_rng_state(state)


class Trainer:
    """Train one model, or an :class:`Ensemble` of independent runs, with an :class:`Objective`.

    For an ensemble pass one objective (and one sampler and seed) per run in lists; hyperparameters
    may differ between runs, the objective class may not.
    """

    def __init__(
        self,
        model: IntroVAEModel | Ensemble,
        objective: Objective | Sequence[Objective],
        sampler: Sampler | Sequence[Sampler],
        config: TrainConfig,
        *,
        seeds: Sequence[int] | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        callbacks: Sequence[Callable[["Trainer", int, dict[str, Any]], None]] = (),
    ):
        self.model = model
        self.config = config
        self.is_ensemble = isinstance(model, Ensemble)
        n = model.n_runs if isinstance(model, Ensemble) else 1
        objectives = list(objective) if isinstance(objective, Sequence) else [objective] * n
        samplers = list(sampler) if isinstance(sampler, Sequence) else [sampler] * n
        seeds = list(seeds) if seeds is not None else [config.seed + r for r in range(n)]
        if not (len(objectives) == len(samplers) == len(seeds) == n):
            raise ValueError(f"need one objective, sampler and seed per run ({n} runs)")
        if len({type(o) for o in objectives}) != 1:
            raise ValueError("all runs of an ensemble must use the same objective class")
        self.objectives, self.samplers, self.seeds = objectives, samplers, seeds
        self.objective = objectives[0]
        self.device = next(model.parameters()).device
        self.generators = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
        self.encoder_params = self._part_params("encoder")
        self.decoder_params = self._part_params("decoder")
        self.opt_e = torch.optim.Adam(self.encoder_params, lr=config.lr_encoder)
        self.opt_d = torch.optim.Adam(self.decoder_params, lr=config.lr_decoder)
        self.sched_e = torch.optim.lr_scheduler.MultiStepLR(self.opt_e, list(config.lr_milestones), config.lr_gamma)
        self.sched_d = torch.optim.lr_scheduler.MultiStepLR(self.opt_d, list(config.lr_milestones), config.lr_gamma)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.callbacks = list(callbacks)
        self.iteration = 0
        self.history: list[dict[str, Any]] = []
        self._setup_scale()

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
        self.ema_decoder: torch.nn.Module | None = None
        if cfg.ema_decay > 0:
            self.ema_decoder = copy.deepcopy(getattr(self.model.decoder, "_orig_mod", self.model.decoder))
            self.ema_decoder.requires_grad_(False)
        self.images_seen = 0

    def _autocast(self):
        if self._amp is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self._amp)

    def _backward(self, loss: Tensor, inputs: list[torch.nn.Parameter] | None = None) -> None:
        if self.scaler.is_enabled():
            loss = self.scaler.scale(loss)
        loss.backward(inputs=inputs)

    def _opt_step(self, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], name: str,
                  logs: dict[str, Tensor]) -> None:
        if self.config.log_grad_norm:
            if self.scaler.is_enabled():
                self.scaler.unscale_(opt)
            grads = [p.grad for p in params if p.grad is not None]
            logs[f"grad_norm/{name}"] = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        if self.scaler.is_enabled():
            self.scaler.step(opt)
        else:
            opt.step()

    @torch.no_grad()
    def _update_ema(self) -> None:
        d = self.config.ema_decay
        for e, p in zip(self.ema_decoder.parameters(), self.model.decoder.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.ema_decoder.buffers(), self.model.decoder.buffers()):
            e.copy_(b)

    def sampling_decoder(self) -> torch.nn.Module:
        """The decoder to sample with: the EMA copy when ``ema_decay`` > 0, else the trained one."""
        return self.ema_decoder if self.ema_decoder is not None else self.model.decoder

    # ------------------------------------------------------------------ pieces of one iteration
    def _part_params(self, part: str) -> list[torch.nn.Parameter]:
        if isinstance(self.model, Ensemble):
            return self.model.part_parameters(part)
        return list(getattr(self.model, part).parameters())

    def _hparams(self, objective_of_run: Sequence[Objective]) -> dict[str, Any]:
        if not self.is_ensemble:
            return objective_of_run[0].hparams
        keys = objective_of_run[0].hparams.keys()
        return {k: torch.tensor([o.hparams[k] for o in objective_of_run], device=self.device) for k in keys}

    def _batch(self) -> Tensor:
        xs = [s(self.config.batch_size, g) for s, g in zip(self.samplers, self.generators)]
        x = torch.stack(xs) if self.is_ensemble else xs[0]
        if self.config.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _noise(self, k: int) -> Tensor:
        shape = (k, self.config.batch_size, self.model.z_dim)
        eps = [torch.randn(shape, generator=g, device=self.device) for g in self.generators]
        return torch.stack(eps) if self.is_ensemble else eps[0]

    def _losses(self, objective: Objective, part: str, x: Tensor, eps: Tensor, hp: dict[str, Any],
                carry: dict[str, Tensor] | None = None) -> StepOutput:
        if isinstance(self.model, Ensemble):
            return self.model.losses(objective, part, x, eps, hp, carry)
        noise = Noise(eps)
        if part == "encoder":
            return objective.encoder_loss(self.model, x, noise, hp)
        return objective.decoder_loss(self.model, x, noise, hp, carry or {})

    def _check_finite(self, out: StepOutput, part: str) -> None:
        if bool(torch.isfinite(out.loss).all()):
            return
        bad = [name for name, t in out.terms.items() if not bool(torch.isfinite(t).all())]
        runs = ""
        if self.is_ensemble:
            runs = f" (runs {torch.nonzero(~torch.isfinite(out.loss)).flatten().tolist()})"
        raise NonFiniteLossError(
            f"iteration {self.iteration}: the {part} loss of {type(self.objective).__name__} is not finite{runs}; "
            f"non-finite terms: {bad or ['(the combination of finite terms overflowed)']}. "
            "Lower the learning rate or beta_neg, check the data range, or resume from the last checkpoint."
        )

    def step(self) -> dict[str, Tensor]:
        """One training iteration; returns the detached loss terms."""
        warm = self.iteration < self.config.vae_warmup
        runs = self.objectives
        if warm:  # plain beta-VAE with each run's own beta_rec, beta_kl
            runs = [VAE(o.hparams["beta_rec"], o.hparams["beta_kl"]) for o in self.objectives]
        objective = runs[0]
        hp = self._hparams(runs)
        x = self._batch()
        n_e, n_d = objective.noise_draws
        eps_e, eps_d = self._noise(n_e), self._noise(n_d)
        logs: dict[str, Tensor] = {}
        if objective.joint:
            with self._autocast():
                out = self._losses(objective, "encoder", x, eps_e, hp)
            self._check_finite(out, "joint")
            self.opt_e.zero_grad(set_to_none=True)
            self.opt_d.zero_grad(set_to_none=True)
            self._backward(out.loss.sum())
            self._opt_step(self.opt_e, self.encoder_params, "encoder", logs)
            self._opt_step(self.opt_d, self.decoder_params, "decoder", logs)
            logs.update({f"joint/{k}": v.detach() for k, v in out.terms.items()})
            logs["loss_joint"] = out.loss.detach()
        else:
            with self._autocast():
                out_e = self._losses(objective, "encoder", x, eps_e, hp)
            self._check_finite(out_e, "encoder")
            self.opt_e.zero_grad(set_to_none=True)
            self._backward(out_e.loss.sum(), inputs=self.encoder_params)
            self._opt_step(self.opt_e, self.encoder_params, "encoder", logs)
            with self._autocast():
                out_d = self._losses(objective, "decoder", x, eps_d, hp, out_e.carry)
            self._check_finite(out_d, "decoder")
            self.opt_d.zero_grad(set_to_none=True)
            self._backward(out_d.loss.sum(), inputs=self.decoder_params)
            self._opt_step(self.opt_d, self.decoder_params, "decoder", logs)
            logs.update({f"enc/{k}": v.detach() for k, v in out_e.terms.items()})
            logs.update({f"dec/{k}": v.detach() for k, v in out_d.terms.items()})
            logs["loss_encoder"] = out_e.loss.detach()
            logs["loss_decoder"] = out_d.loss.detach()
        if self.scaler.is_enabled():
            self.scaler.update()
        if self.ema_decoder is not None:
            self._update_ema()
        self.sched_e.step()
        self.sched_d.step()
        self.iteration += 1
        self.images_seen += self.config.batch_size
        return logs

    # ------------------------------------------------------------------ the loop
    def fit(self, iterations: int | None = None, resume: bool = True) -> "Trainer":
        """Train until ``iterations`` (default: the config's) have been done in total.

        With ``resume`` and an existing checkpoint at ``checkpoint_path``, training continues from it.
        """
        total = self.config.iterations if iterations is None else iterations
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_checkpoint(self.checkpoint_path)
        # SIVAE_PROGRESS=0 silences every bar (headless checks such as nbval, which trips over widget bars).
        show = self.config.progress and os.environ.get("SIVAE_PROGRESS", "1") != "0"
        bar = tqdm(total=total, initial=self.iteration, disable=not show,
                   desc=type(self.objective).__name__, leave=False)
        t0, seen0 = time.perf_counter(), self.images_seen
        try:
            while self.iteration < total:
                logs = self.step()
                bar.update(1)
                if self.iteration % self.config.log_every == 0 or self.iteration == total:
                    record = {"iteration": self.iteration}
                    # float(): under bf16 autocast some terms are bf16, which numpy cannot hold.
                    record.update({k: v.float().cpu().numpy().round(6).tolist() for k, v in logs.items()})
                    self.history.append(record)
                    main = logs.get("loss_encoder", logs.get("loss_joint"))
                    rate = (self.images_seen - seen0) / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix(loss=f"{float(main.mean()):.4g}", img_s=f"{rate:.0f}")
                    for cb in self.callbacks:
                        cb(self, self.iteration, record)
                every = self.config.checkpoint_every
                if self.checkpoint_path is not None and every and self.iteration % every == 0:
                    self.save_checkpoint(self.checkpoint_path)
        finally:
            bar.close()
        if self.checkpoint_path is not None:
            self.save_checkpoint(self.checkpoint_path)
        return self

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "model": self.model.state_dict(),
            "opt_e": self.opt_e.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sched_e": self.sched_e.state_dict(),
            "sched_d": self.sched_d.state_dict(),
            "generators": [g.get_state() for g in self.generators],
            "samplers": [s.state_dict() if hasattr(s, "state_dict") else None for s in self.samplers],
            "history": self.history,
            "ema_decoder": self.ema_decoder.state_dict() if self.ema_decoder is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "config": asdict(self.config),
            "objectives": [(type(o).__name__, o.hparams) for o in self.objectives],
        }

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temporary file, then rename): a crash mid-write never corrupts the last one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        state = torch.load(path, map_location=self.device, weights_only=False)
        saved = [name for name, _ in state["objectives"]]
        if saved[0] != type(self.objective).__name__:
            raise ValueError(
                f"checkpoint {path} was written by a {saved[0]} run, not {type(self.objective).__name__}; "
                "use another checkpoint path or resume=False"
            )
        self.model.load_state_dict(state["model"])
        self.opt_e.load_state_dict(state["opt_e"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.sched_e.load_state_dict(state["sched_e"])
        self.sched_d.load_state_dict(state["sched_d"])
        for g, s in zip(self.generators, state["generators"]):
            g.set_state(s.cpu() if g.device.type == "cpu" else s)
        for sampler, s in zip(self.samplers, state["samplers"]):
            if s is not None and hasattr(sampler, "load_state_dict"):
                sampler.load_state_dict(s)
        self.history = state["history"]
        if self.ema_decoder is not None and state.get("ema_decoder") is not None:
            self.ema_decoder.load_state_dict(state["ema_decoder"])
        if self.scaler.is_enabled() and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        for objective in self.objectives:
            objective.resume_at(max(0, self.iteration - self.config.vae_warmup))



class TensorSampler:
    """Epoch-based shuffling over an in-memory tensor dataset, resumable exactly.

    Each epoch is one ``torch.randperm`` from the run's generator; mini-batches are consecutive slices of
    it (the last incomplete batch of an epoch is dropped). ``state_dict`` stores the permutation and the
    position, so together with the trainer's generator state a resumed run sees the same batches as an
    uninterrupted one. uint8 data (images in ``[0, 255]``) is converted to floats in ``[0, 1]`` per batch,
    so a whole small data set can live on the GPU as uint8 (4x less memory, no loader processes);
    ``device`` moves batches from pinned CPU memory when the data stays on the CPU.
    ``labels`` with ``on_labels`` hand each batch's labels to a class-conditional model.
    """

    def __init__(self, data: Tensor, labels: Tensor | None = None,
                 on_labels: Callable[[Tensor], None] | None = None, device: str | torch.device | None = None):
        self.device = torch.device(device) if device is not None else data.device
        if self.device.type == "cuda" and data.device.type == "cpu":
            data = data.pin_memory()
        self.data = data
        self.labels = labels
        self.on_labels = on_labels
        self.perm: Tensor | None = None
        self.pos = 0
        self.epoch = 0

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __call__(self, batch_size: int, generator: torch.Generator) -> Tensor:
        n = len(self)
        if batch_size > n:
            raise ValueError(f"batch size {batch_size} is larger than the data set ({n} samples)")
        if self.perm is None or self.pos + batch_size > n:
            if self.perm is not None:
                self.epoch += 1
            self.perm = torch.randperm(n, generator=generator, device=generator.device)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + batch_size]
        self.pos += batch_size
        x = self.data[idx.to(self.data.device)].to(self.device, non_blocking=True)
        if self.labels is not None and self.on_labels is not None:
            self.on_labels(self.labels[idx.to(self.labels.device)].to(self.device))
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x

    def state_dict(self) -> dict[str, Any]:
        return {"perm": None if self.perm is None else self.perm.cpu(), "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        perm = state["perm"]
        self.perm = None if perm is None else perm.to(self.device if self.device.type != "cpu" else "cpu")
        self.pos, self.epoch = int(state["pos"]), int(state["epoch"])
