"""``TrainConfig.cuda_graph``: the synchronisation-free step a CUDA graph records, checked on the CPU.

On a CPU nothing is recorded, but every other part of the recorded step runs: static hyperparameters per phase,
the learning rate as a tensor the scheduler fills, the device-side finite-loss record read at log steps and before
checkpoints. So these tests hold the recorded step to the eager one; ``benchmarks/bench_2d.py`` compares the
recording itself with the eager step on a GPU.
"""

import pytest
import torch

from sivae_core import NonFiniteLossError, TensorSampler, TrainConfig, Trainer, seeded
from sivae_core.data.toy2d import ToySampler
from sivae_core.experiments.images import build, objective_for, settings
from sivae_core.models import ToyVAE
from sivae_core.objectives import OBJECTIVES, ASIntroVAE, SoftIntroVAE
from sivae_core.training import Ensemble

from .test_ensemble import _PoisonAfter
from .test_trainer import PoisonedSampler

OBJ = SoftIntroVAE(0.2, 0.3, 0.9)


def small() -> ToyVAE:
    return ToyVAE(hidden=16, n_hidden_layers=2)


def config(graph: bool, **kw) -> TrainConfig:
    base = dict(iterations=30, batch_size=32, vae_warmup=8, lr_milestones=(20,), log_every=10, progress=False,
                ensemble_noise="batched", cuda_graph=graph)
    return TrainConfig(**{**base, **kw})


def ensemble_trainer(graph: bool, samplers=None, **kw) -> Trainer:
    samplers = samplers or [ToySampler("8gaussians"), ToySampler("spiral"), ToySampler("8gaussians")]
    ens = Ensemble([seeded(small, s) for s in range(3)])
    return Trainer(ens, [OBJ] * 3, samplers, config(graph, **kw), seeds=[0, 1, 2])


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    # The learning rate as a float32 tensor rounds differently from a Python float: ~1e-8 after 30 steps.
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=1e-5, msg=name)


def test_recorded_step_follows_the_eager_step_through_warm_up_and_milestone():
    eager, graph = ensemble_trainer(False).fit(), ensemble_trainer(True).fit()
    assert_same_weights(eager.model, graph.model)
    assert [h["iteration"] for h in graph.history] == [10, 20, 30]
    assert graph.history[-1]["loss_encoder"] == pytest.approx(eager.history[-1]["loss_encoder"], rel=1e-5)
    assert float(graph.opt_e.param_groups[0]["lr"]) == pytest.approx(2e-5)  # the milestone filled the tensor


def test_recorded_step_of_a_single_model():
    eager, graph = (Trainer(seeded(small, 0), OBJ, ToySampler("rings"), config(g)).fit() for g in (False, True))
    assert_same_weights(eager.model, graph.model)


def test_nan_is_reported_at_the_next_log_step_with_the_iteration_it_happened():
    trainer = Trainer(seeded(small, 0), OBJ, PoisonedSampler(bad_at=3), config(True, vae_warmup=0))
    with pytest.raises(NonFiniteLossError, match=r"iteration 3: the encoder loss .* found at iteration 10"):
        trainer.fit()


def test_no_checkpoint_is_written_after_an_unnoticed_nan(tmp_path):
    ckpt = tmp_path / "run.pt"
    trainer = Trainer(seeded(small, 0), OBJ, PoisonedSampler(bad_at=3), config(True, vae_warmup=0, log_every=100,
                                                                                checkpoint_every=5),
                      checkpoint_path=ckpt)
    with pytest.raises(NonFiniteLossError, match="iteration 3"):
        trainer.fit()
    assert not ckpt.exists()


def test_diverged_runs_are_dropped_at_the_iteration_they_diverged():
    samplers = lambda: [ToySampler("8gaussians"), _PoisonAfter(bad_at=5), ToySampler("8gaussians")]  # noqa: E731
    eager = ensemble_trainer(False, samplers(), drop_diverged_runs=True, ensemble_noise="per_run").fit()
    graph = ensemble_trainer(True, samplers(), drop_diverged_runs=True, ensemble_noise="per_run").fit()
    assert eager.diverged == graph.diverged == {1: 5}
    for r in (0, 2):
        assert_same_weights(eager.model.run_model(r), graph.model.run_model(r))


def test_resume_of_a_recorded_run_matches_the_uninterrupted_run(tmp_path):
    straight = ensemble_trainer(True).fit()
    ckpt = tmp_path / "run.pt"
    first = ensemble_trainer(True)
    first.checkpoint_path = ckpt
    first.fit(iterations=15)
    resumed = ensemble_trainer(True)
    resumed.checkpoint_path = ckpt
    resumed.fit()
    assert resumed.iteration == 30
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def test_objectives_with_a_python_side_schedule_are_refused():
    with pytest.raises(ValueError, match="Python-side schedule.*cuda_graph=False"):
        Trainer(seeded(small, 0), OBJECTIVES["betavae_b"].for_run(iterations=30), ToySampler("rings"), config(True))


def test_as_introvae_anneals_inside_the_recorded_step(tmp_path):
    """AS-IntroVAE keeps its annealing counter on the device and the step advances it, so its step can be recorded:
    the KL weight c follows the eager run's schedule to 1 (T = 22 introspective steps after the 8 warm-up ones; c
    reaches 1 after a fifth of them), the weights follow the eager run's, and a resumed run continues the schedule."""
    def trainer(graph: bool, ckpt=None) -> Trainer:
        objectives = [ASIntroVAE.for_run(iterations=22, beta_neg=b) for b in (0.5, 1.0, 2.0)]
        ens = Ensemble([seeded(small, s) for s in range(3)])
        return Trainer(ens, objectives, [ToySampler("8gaussians")] * 3, config(graph), seeds=[0, 1, 2],
                       checkpoint_path=ckpt)

    eager, graph = trainer(False).fit(), trainer(True).fit()
    assert_same_weights(eager.model, graph.model)
    c = [h["enc/c"] for h in graph.history]
    assert c == [h["enc/c"] for h in eager.history] and c[0][0] == pytest.approx(5 / 22) and c[-1] == [1.0] * 3
    assert eager.objective.i == graph.objective.i == 22
    ckpt = tmp_path / "as.pt"
    trainer(True, ckpt).fit(iterations=15)
    resumed = trainer(True, ckpt).fit()
    assert resumed.objective.i == 22 and [h["enc/c"] for h in resumed.history if h["iteration"] % 10 == 0] == c
    for p, q in zip(graph.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def image_trainer(graph: bool, images: torch.Tensor, labels: torch.Tensor | None = None) -> Trainer:
    s = settings("fmnist", "sivae", fast=True)
    if labels is not None:
        s = settings("fmnist", "sivae", fast=True, conditional=True)
    model = seeded(lambda: build(s, tuple(images.shape[1:])), 0)
    on_labels = model.set_labels if labels is not None else None
    cfg = TrainConfig(iterations=4, batch_size=16, vae_warmup=0, lr_milestones=(), log_every=2, progress=False,
                      amp_dtype="bf16", channels_last=True, cuda_graph=graph)
    return Trainer(model, objective_for(s), TensorSampler(images, labels, on_labels), cfg)


def test_recorded_image_step_under_bf16_is_the_eager_step_with_its_numerics(one_thread):
    """The image trainer's single-model step (bf16 autocast, channels-last). Recording changes two numerical details:
    the learning rate is a float32 tensor and autocast keeps no cast copies of the weights. With both, the eager step
    gives bit-identical weights; without them, Adam's normalised steps turn the rounding differences into
    differences of about one learning rate within four steps (in weights whose gradients are near zero)."""
    images = (torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    graph = image_trainer(True, images).fit()
    eager = image_trainer(False, images)
    eager.config.cuda_graph = True  # the recorded step's numerics, but eager: no StepGraphs was built
    eager._recordable_optimizers()
    assert eager.graphs is None
    eager.fit()
    for p, q in zip(eager.model.parameters(), graph.model.parameters()):
        assert torch.equal(p, q)
    plain = image_trainer(False, images).fit()
    assert max((p - q).abs().max().item() for p, q in zip(plain.model.parameters(), graph.model.parameters())) < 1e-3


def test_class_conditional_samplers_are_refused():
    images = torch.zeros(32, 1, 28, 28, dtype=torch.uint8)
    with pytest.raises(ValueError, match="class-conditional"):
        image_trainer(True, images, labels=torch.zeros(32, dtype=torch.long))


def test_trainers_advanced_side_by_side_end_where_they_end_alone():
    """``fit_side_by_side`` (the suite's ``--streams``) issues one step of each trainer in turn: every trainer ends bit
    for bit where it ends when trained alone, with the same log records, also when the chunk ends between log steps
    (three ensembles of different objectives, warm-up and milestone inside the run)."""
    from sivae_core.objectives import VAE, IntroVAE
    from sivae_core.training.streams import fit_side_by_side

    def trio() -> list[Trainer]:
        vae = Trainer(Ensemble([seeded(small, s) for s in (5, 6)]), [VAE(0.8, 0.05)] * 2, [ToySampler("rings")] * 2,
                      config(True), seeds=[5, 6])
        intro = Trainer(Ensemble([seeded(small, s) for s in (7, 8)]), [IntroVAE(0.3, 0.5, 1.0, 1.0)] * 2,
                        [ToySampler("checkerboard")] * 2, config(True), seeds=[7, 8])
        return [vae, intro, ensemble_trainer(True)]

    alone, side = trio(), trio()
    for stop in (25, 30):  # a first chunk that ends between log steps, then the rest
        for trainer in alone:
            trainer.fit(iterations=stop)
        fit_side_by_side(side, stop)
        for a, b in zip(alone, side):
            assert b.iteration == a.iteration == stop and b.history == a.history
            assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    assert [r["iteration"] for r in side[0].history] == [10, 20, 25, 30]
