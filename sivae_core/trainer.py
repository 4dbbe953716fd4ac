"""One training loop for every objective, model and ensemble in the book.

Each iteration (Algorithm 2): draw a mini-batch and the step's noise from the run's own generator,
take an Adam step on the encoder with the objective's encoder loss, then an Adam step on the decoder
with its decoder loss. Joint objectives (the plain VAE, also used for the warm-up iterations) take one
step on both. The loop adds what long runs need: learning-rate milestones, ``tqdm`` progress,
callbacks, a loud error naming the loss term that became NaN/inf, and checkpoints that resume
*exactly* (model, both Adam states, schedulers, every random generator and the data sampler).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .ensemble import Ensemble
from .models.base import IntroVAEModel
from .objectives import VAE, Noise, Objective, StepOutput

__all__ = ["TrainConfig", "Trainer", "NonFiniteLossError", "Sampler", "seeded"]


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
        return torch.stack(xs) if self.is_ensemble else xs[0]

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
            out = self._losses(objective, "encoder", x, eps_e, hp)
            self._check_finite(out, "joint")
            self.opt_e.zero_grad(set_to_none=True)
            self.opt_d.zero_grad(set_to_none=True)
            out.loss.sum().backward()
            self.opt_e.step()
            self.opt_d.step()
            logs.update({f"joint/{k}": v.detach() for k, v in out.terms.items()})
            logs["loss_joint"] = out.loss.detach()
        else:
            out_e = self._losses(objective, "encoder", x, eps_e, hp)
            self._check_finite(out_e, "encoder")
            self.opt_e.zero_grad(set_to_none=True)
            out_e.loss.sum().backward(inputs=self.encoder_params)
            self.opt_e.step()
            out_d = self._losses(objective, "decoder", x, eps_d, hp, out_e.carry)
            self._check_finite(out_d, "decoder")
            self.opt_d.zero_grad(set_to_none=True)
            out_d.loss.sum().backward(inputs=self.decoder_params)
            self.opt_d.step()
            logs.update({f"enc/{k}": v.detach() for k, v in out_e.terms.items()})
            logs.update({f"dec/{k}": v.detach() for k, v in out_d.terms.items()})
            logs["loss_encoder"] = out_e.loss.detach()
            logs["loss_decoder"] = out_d.loss.detach()
        self.sched_e.step()
        self.sched_d.step()
        self.iteration += 1
        return logs

    # ------------------------------------------------------------------ the loop
    def fit(self, iterations: int | None = None, resume: bool = True) -> "Trainer":
        """Train until ``iterations`` (default: the config's) have been done in total.

        With ``resume`` and an existing checkpoint at ``checkpoint_path``, training continues from it.
        """
        total = self.config.iterations if iterations is None else iterations
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_checkpoint(self.checkpoint_path)
        bar = tqdm(total=total, initial=self.iteration, disable=not self.config.progress,
                   desc=type(self.objective).__name__, leave=False)
        try:
            while self.iteration < total:
                logs = self.step()
                bar.update(1)
                if self.iteration % self.config.log_every == 0 or self.iteration == total:
                    record = {"iteration": self.iteration}
                    record.update({k: v.cpu().numpy().round(6).tolist() for k, v in logs.items()})
                    self.history.append(record)
                    main = logs.get("loss_encoder", logs.get("loss_joint"))
                    bar.set_postfix(loss=f"{float(main.mean()):.4g}")
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
        self.iteration = int(state["iteration"])

