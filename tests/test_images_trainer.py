"""Training images through the shared trainer: exact resume with the epoch sampler, EMA, grid helper."""

import pytest
import torch

from sivae_core import TensorSampler, TrainConfig, Trainer, seeded
from sivae_core.models.resnet import ResNetVAE
from sivae_core.objectives import ASIntroVAE, SoftIntroVAE
from sivae_core.viz.grids import make_grid

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(tmp_path, iters, resume_at=None, ema=0.0, objective=lambda: SoftIntroVAE(beta_neg=8)):
    torch.manual_seed(0)
    data = (torch.rand(20, 1, 8, 8) * 255).to(torch.uint8)
    cfg = TrainConfig(iterations=iters, batch_size=6, lr_milestones=(), vae_warmup=2, progress=False, log_every=1,
                      ema_decay=ema, log_grad_norm=True)
    model = seeded(lambda: ResNetVAE(1, 8, (4, 4), 3), 0)
    ck = tmp_path / "ck.pt"
    if resume_at:
        t = Trainer(model, objective(), TensorSampler(data), cfg, checkpoint_path=ck)
        t.fit(resume_at)
        model = seeded(lambda: ResNetVAE(1, 8, (4, 4), 3), 5)  # different init: must be overwritten
    t = Trainer(model, objective(), TensorSampler(data), cfg, checkpoint_path=ck if resume_at else None)
    t.fit()
    return t


def test_resume_equals_uninterrupted(tmp_path):
    a = _run(tmp_path / "a", 9, ema=0.9)
    b = _run(tmp_path / "b", 9, resume_at=4, ema=0.9)  # 4 iterations: mid-epoch (3 batches per epoch)
    for (k, u), v in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(u, v), k
    assert a.ema.n_averaged.item() == b.ema.n_averaged.item() == 9
    for u, v in zip(a.ema.module.state_dict().values(), b.ema.module.state_dict().values()):
        assert torch.equal(u, v)
    assert not torch.equal(a.ema.module.state_dict()["fc.0.weight"], a.model.decoder.state_dict()["fc.0.weight"])
    assert a.samplers[0].epoch == b.samplers[0].epoch == 2
    assert "grad_norm/encoder" in a.history[-1]


def test_as_introvae_resume_continues_the_annealing(tmp_path):
    """c = 5 i / T must pick up at the resumed iteration; restarting i at 0 would change every later step."""
    make = lambda: ASIntroVAE(beta_neg=8, total_iters=35)  # 7 introspective iterations: c = 0, 1/7, ..., 6/7
    a = _run(tmp_path / "a", 9, objective=make)
    b = _run(tmp_path / "b", 9, resume_at=4, objective=make)
    assert a.objective.i == b.objective.i == 7
    for (k, u), v in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(u, v), k
    assert a.history[-1]["enc/c"] == b.history[-1]["enc/c"] == pytest.approx(6 / 7)


def test_bf16_autocast_on_cpu_trains_and_logs():
    """The autocast path (bf16 on a GPU, and on a CPU for the OOD fast budget) logs terms that come out of
    bf16 layers; numpy has no bf16, so logging once crashed at the first record. The losses stay close to
    fp32's on the same weights and batch."""
    torch.manual_seed(0)
    data = (torch.rand(20, 1, 8, 8) * 255).to(torch.uint8)
    runs = {}
    for amp in (None, "bf16"):
        cfg = TrainConfig(iterations=3, batch_size=6, lr_milestones=(), vae_warmup=0, progress=False, log_every=1,
                          amp_dtype=amp, channels_last=True)
        t = Trainer(seeded(lambda: ResNetVAE(1, 8, (4, 4), 3), 0), SoftIntroVAE(beta_neg=8), TensorSampler(data), cfg)
        t.fit()
        runs[amp] = t.history
    assert len(runs["bf16"]) == 3 and all(isinstance(r["loss_encoder"], float) for r in runs["bf16"])
    # Same first step (same weights, batch and noise): bf16 matmuls keep ~3 significant digits.
    assert runs["bf16"][0]["loss_encoder"] == pytest.approx(runs[None][0]["loss_encoder"], rel=2e-2)
    assert runs["bf16"][0]["loss_decoder"] == pytest.approx(runs[None][0]["loss_decoder"], rel=2e-2)


def test_sampler_epochs_cover_the_data():
    s = TensorSampler(torch.arange(10).float()[:, None])
    g = torch.Generator().manual_seed(0)
    seen = torch.cat([s(5, g), s(5, g)]).flatten()
    assert sorted(seen.tolist()) == list(range(10)) and s.epoch == 0
    s(5, g)
    assert s.epoch == 1


def test_make_grid_shape():
    g = make_grid(torch.rand(10, 1, 4, 4), nrow=5, pad=1)
    assert g.shape == (2 * 5 + 1, 5 * 5 + 1, 3)
