"""A vectorized ensemble reproduces sequential runs with the same seeds."""

import pytest
import torch

from sivae_core import TrainConfig, Trainer, seeded
from sivae_core.data.toy2d import ToySampler
from sivae_core.models import ToyVAE
from sivae_core.objectives import IntroVAE, SoftIntroVAE
from sivae_core.training import Ensemble


def small() -> ToyVAE:
    return ToyVAE(hidden=32, n_hidden_layers=2)


CFG = TrainConfig(iterations=25, batch_size=64, vae_warmup=8, lr_milestones=(15,), log_every=5, progress=False)


@pytest.mark.parametrize(
    "runs",
    [
        # seeds x hyperparameters x datasets, Soft-IntroVAE
        [(SoftIntroVAE(0.2, 0.3, 0.9), "8gaussians", 0), (SoftIntroVAE(0.5, 0.1, 0.2), "rings", 1),
         (SoftIntroVAE(0.2, 0.3, 0.9), "checkerboard", 2)],
        # the Fig. 3 margin sweep, IntroVAE
        [(IntroVAE(0.3, 0.5, 1.0, m=m), "8gaussians", 7) for m in (0.005, 2.0, 8.0)],
    ],
)
def test_ensemble_equals_sequential(runs):
    sequential = []
    for obj, ds, seed in runs:
        model = seeded(small, seed)
        Trainer(model, obj, ToySampler(ds), CFG, seeds=[seed]).fit()
        sequential.append(model)
    ens = Ensemble([seeded(small, seed) for _, _, seed in runs])
    trainer = Trainer(ens, [o for o, _, _ in runs], [ToySampler(d) for _, d, _ in runs], CFG,
                      seeds=[s for _, _, s in runs])
    trainer.fit()
    for r, model in enumerate(sequential):
        for (name, p_seq), p_ens in zip(model.named_parameters(), ens.run_model(r).parameters()):
            torch.testing.assert_close(p_ens, p_seq, atol=2e-5, rtol=1e-4, msg=f"run {r} parameter {name}")
    # the runs really are different (the comparison above is not vacuous)
    assert not torch.allclose(ens.run_model(0).decoder[0].weight, ens.run_model(len(runs) - 1).decoder[0].weight)


def test_ensemble_rejects_mixed_architectures():
    with pytest.raises(ValueError, match="same architecture"):
        Ensemble([ToyVAE(hidden=8), ToyVAE(hidden=16)])


def test_trainer_rejects_mixed_objective_classes():
    ens = Ensemble([seeded(small, 0), seeded(small, 1)])
    with pytest.raises(ValueError, match="same objective class"):
        Trainer(ens, [SoftIntroVAE(), IntroVAE()], ToySampler("8gaussians"), CFG)


class _PoisonAfter:
    """8 Gaussians until call ``bad_at``, then a batch containing a NaN (a run that diverges)."""

    def __init__(self, bad_at: int):
        self.calls, self.bad_at, self.inner = 0, bad_at, ToySampler("8gaussians")

    def __call__(self, batch_size, generator, rows=None):
        self.calls += 1
        x = self.inner(batch_size, generator)
        if self.calls > self.bad_at:
            x[0, 0] = float("nan")
        return x


def test_a_diverged_run_is_dropped_and_the_others_are_untouched():
    """With ``drop_diverged_runs`` a run whose loss turns NaN is recorded and left out; the runs beside it train
    exactly as they would alone (the 2D tables keep IntroVAE's diverged Checkerboard runs as NaN)."""
    torch.manual_seed(0)
    cfg = TrainConfig(iterations=12, batch_size=64, vae_warmup=2, lr_milestones=(), log_every=4, progress=False,
                      drop_diverged_runs=True)
    objectives = [SoftIntroVAE(0.2, 0.3, 0.9)] * 3
    ens = Ensemble([seeded(small, s) for s in (0, 1, 2)])
    samplers = [ToySampler("8gaussians"), _PoisonAfter(bad_at=5), ToySampler("8gaussians")]
    trainer = Trainer(ens, objectives, samplers, cfg, seeds=[0, 1, 2]).fit()
    assert trainer.diverged == {1: 5}
    alone = seeded(small, 2)
    Trainer(alone, objectives[0], ToySampler("8gaussians"), cfg, seeds=[2]).fit()
    for (name, p), q in zip(alone.named_parameters(), ens.run_model(2).parameters()):
        torch.testing.assert_close(q, p, atol=2e-5, rtol=1e-4, msg=name)
    with pytest.raises(Exception, match="not finite"):  # without the option the NaN stops everything
        bad = [ToySampler("8gaussians"), _PoisonAfter(bad_at=5), ToySampler("8gaussians")]
        strict = TrainConfig(**{**cfg.__dict__, "drop_diverged_runs": False})
        Trainer(Ensemble([seeded(small, s) for s in (0, 1, 2)]), objectives, bad, strict, seeds=[0, 1, 2]).fit()


class _Counting:
    """A sampler that records its calls and returns ``offset + row index`` in both coordinates."""

    def __init__(self, offset: float):
        self.offset, self.calls = offset, []

    def __call__(self, batch_size, generator, rows=None):
        self.calls.append(batch_size)
        return self.offset + torch.arange(batch_size, dtype=torch.float32)[:, None].expand(batch_size, 2)


def test_batched_noise_draws_once_per_sampler_and_keeps_run_order():
    """``ensemble_noise="batched"``: runs sharing a sampler object get consecutive rows of one draw, in run
    order, and each noise draw is one (R, k, B, z) tensor of independent values."""
    a, b = _Counting(0.0), _Counting(1000.0)
    cfg = TrainConfig(iterations=1, batch_size=4, vae_warmup=0, progress=False, ensemble_noise="batched")
    trainer = Trainer(Ensemble([seeded(small, s) for s in range(3)]), SoftIntroVAE(), [a, b, a], cfg)
    x = trainer._batch()
    assert a.calls == [8] and b.calls == [4]  # one call per sampler object, not one per run
    assert x.shape == (3, 4, 2)
    assert x[0, :, 0].tolist() == [0, 1, 2, 3] and x[2, :, 0].tolist() == [4, 5, 6, 7]  # runs 0 and 2 share a
    assert x[1, :, 0].tolist() == [1000, 1001, 1002, 1003]
    eps = trainer._noise(2)
    assert eps.shape == (3, 2, 4, small().z_dim) and len(trainer.generators) == 1
    assert not torch.allclose(eps[0], eps[1])


def test_batched_noise_trains_independent_reproducible_runs():
    def train():
        runs = [("8gaussians", 0), ("8gaussians", 1), ("rings", 2)]
        by_ds = {ds: ToySampler(ds) for ds, _ in runs}
        ens = Ensemble([seeded(small, s) for _, s in runs])
        cfg = TrainConfig(**{**CFG.__dict__, "ensemble_noise": "batched"})
        Trainer(ens, SoftIntroVAE(0.2, 0.3, 0.9), [by_ds[ds] for ds, _ in runs], cfg, seeds=[s for _, s in runs]).fit()
        return ens

    first, again = train(), train()
    for p, q in zip(first.parameters(), again.parameters()):
        torch.testing.assert_close(p, q, atol=0, rtol=0)  # same seeds, same runs
    w = first.run_model(0).decoder[0].weight, first.run_model(1).decoder[0].weight
    assert not torch.allclose(*w)  # two seeds on one dataset are two different runs
    with pytest.raises(ValueError, match="ensemble_noise"):
        Trainer(first, SoftIntroVAE(), ToySampler("rings"), TrainConfig(ensemble_noise="shared"))
