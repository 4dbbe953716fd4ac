"""The regularized VAEs and the decoupled prior: Eq. 5 KL vs closed form, each regularizer on a hand-checkable
case, training through the one trainer (FactorVAE's discriminator included), and dp-Soft-IntroVAE."""

import math

import pytest
import torch

from sivae_core import TrainConfig, Trainer
from sivae_core.cli import main as cli
from sivae_core.data.toy2d import ToySampler, sample
from sivae_core.elbo import gaussian_log_prob, kl_to_standard_normal, standard_normal_log_prob
from sivae_core.models import Discriminator, ToyVAE
from sivae_core.objectives import (
    OBJECTIVES,
    VAE,
    ASIntroVAE,
    BetaTCVAE,
    BetaVAEB,
    BetaVAEH,
    DPSoftIntroVAE,
    FactorVAE,
    InfoVAE,
    Noise,
    make_objective,
)
from sivae_core.objectives.regularized import capacity, mmd_imq, permute_dims, tc_decomposition
from sivae_core.priors import monte_carlo_kl
from sivae_core.training import load_checkpoint_file


def test_monte_carlo_kl_matches_closed_form_with_identity_flow():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(3, 4, generator=g, dtype=torch.float64), 0.5 * torch.randn(3, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(200_000, 3, 4, generator=g, dtype=torch.float64)
    z = mu + eps * (0.5 * logvar).exp()
    est = monte_carlo_kl(logvar, standard_normal_log_prob(z)).mean(0)
    assert torch.allclose(est, kl_to_standard_normal(mu, logvar), atol=0.02)
    # and it is log q(z|x) - log p(z) in expectation (the entropy is exact, only the cross-entropy is sampled)
    full = (gaussian_log_prob(z, mu, logvar) - standard_normal_log_prob(z)).mean(0)
    assert torch.allclose(est, full, atol=0.02)


def test_model_with_untrained_flow_has_the_standard_prior():
    torch.manual_seed(0)
    model = ToyVAE(hidden=16, flow_layers=6)
    z = torch.randn(7, 2)
    assert torch.allclose(model.prior.log_prob(z), standard_normal_log_prob(z))
    flow = [n for n, _ in model.named_parameters() if "flow" in n]
    assert flow and all(n.startswith("prior.flow.") for n in flow)
    # the prior is on the generative player's side: its optimizer steps the flow
    assert {id(p) for p in model.prior.parameters()} <= {id(p) for p in model.player_parameters("decoder")}
    assert model.sample(5).shape == (5, 2)


def _out(obj, model, x):
    eps = torch.randn(obj.noise_draws[0], x.shape[0], model.z_dim)
    return obj.encoder_loss(model, x, Noise(eps), obj.hparams), eps


def test_beta_vae_h_by_hand():
    torch.manual_seed(0)
    model, x = ToyVAE(hidden=16), torch.randn(8, 2)
    out, eps = _out(BetaVAEH(beta_rec=1.0, beta_kl=4.0), model, x)
    mu, logvar = model.encode(x)
    z = mu + eps[0] * (0.5 * logvar).exp()
    rec = (model.decode(z) - x).pow(2).sum(-1)
    assert out.loss.item() == pytest.approx((rec + 4.0 * kl_to_standard_normal(mu, logvar)).mean().item(), rel=1e-6)


def test_beta_vae_b_capacity_and_its_schedule_survive_a_checkpoint():
    assert capacity(0, 5.0, 100) == 0.0 and capacity(50, 5.0, 100) == 2.5 and capacity(500, 5.0, 100) == 5.0
    torch.manual_seed(0)
    model, x = ToyVAE(hidden=16), torch.randn(8, 2)
    obj = BetaVAEB(gamma=10.0, c_max=5.0, c_iters=2)
    out, _ = _out(obj, model, x)  # i = 0: C = 0
    assert (out.loss - out.terms["rec"]).item() == pytest.approx(10.0 * abs(out.terms["kl"].item() - 0.0), rel=1e-5)
    _out(obj, model, x)
    out, _ = _out(obj, model, x)  # i = 2: C = 5
    assert out.terms["capacity"].item() == 5.0
    assert (out.loss - out.terms["rec"]).item() == pytest.approx(10.0 * abs(out.terms["kl"].item() - 5.0), rel=1e-5)
    fresh = BetaVAEB(gamma=10.0, c_max=5.0, c_iters=2)
    fresh.load_state_dict(obj.state_dict())
    assert fresh.i == 3


def test_beta_vae_b_resumes_its_capacity_schedule(tmp_path):
    """The capacity counter is checkpointed: an interrupted run continues the annealing, not from C = 0."""
    def trainer(path):
        torch.manual_seed(0)
        cfg = TrainConfig(iterations=20, batch_size=32, vae_warmup=0, lr_milestones=(), log_every=1, progress=False)
        return Trainer(ToyVAE(hidden=16), BetaVAEB(gamma=5.0, c_max=4.0, c_iters=20), ToySampler("moons"), cfg,
                       checkpoint_path=path)
    full = trainer(None).fit()
    half = trainer(tmp_path / "ck.pt")
    half.fit(iterations=10)
    resumed = trainer(tmp_path / "ck.pt").fit()
    assert resumed.objective.i == full.objective.i == 20
    assert resumed.history[-1]["joint/capacity"] == full.history[-1]["joint/capacity"] == pytest.approx(3.8)
    assert resumed.history[-1]["loss_joint"] == full.history[-1]["loss_joint"]


def test_tc_decomposition_by_hand():
    """Two posteriors in 1D with N = 2: log q(z_i) = log(1/2 (q(z_i|x_1) + q(z_i|x_2)))."""
    mu = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    logvar = torch.zeros(2, 1, dtype=torch.float64)
    z = torch.tensor([[0.2], [0.9]], dtype=torch.float64)
    log_prior = standard_normal_log_prob(z)
    t = tc_decomposition(z, mu, logvar, log_prior, dataset_size=1)

    def npdf(v, m):
        return math.exp(-0.5 * (v - m) ** 2) / math.sqrt(2 * math.pi)

    for i, zi in enumerate([0.2, 0.9]):
        log_qz = math.log(0.5 * (npdf(zi, 0.0) + npdf(zi, 1.0)))  # MWS with N M = 2 -> log(1/2 sum)
        log_qzx = math.log(npdf(zi, [0.0, 1.0][i]))
        assert t["mi"][i].item() == pytest.approx(log_qzx - log_qz, rel=1e-9)
        assert t["tc"][i].item() == pytest.approx(0.0, abs=1e-12)  # one dimension: no total correlation
        assert t["dimkl"][i].item() == pytest.approx(log_qz - log_prior[i].item(), rel=1e-9)
    total = t["mi"] + t["tc"] + t["dimkl"]
    assert torch.allclose(total, gaussian_log_prob(z, mu, logvar) - log_prior)


def test_tc_positive_for_correlated_codes():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(256, 1, generator=g, dtype=torch.float64)
    mu = torch.cat([a, a + 0.01 * torch.randn(256, 1, generator=g, dtype=torch.float64)], 1)
    logvar = torch.full_like(mu, -6.0)
    z = mu + torch.randn(mu.shape, generator=g, dtype=torch.float64) * math.exp(-3)
    t = tc_decomposition(z, mu, logvar, standard_normal_log_prob(z), dataset_size=256)
    assert t["tc"].mean() > 1.0


def test_mmd_by_hand():
    a = torch.tensor([[0.0], [0.0]])
    b = torch.tensor([[1.0], [1.0]])
    # C = 2 * dim = 2: k(0, 0) = 1, k(0, 1) = 2 / 3 -> 1 + 1 - 4/3
    assert mmd_imq(a, b).item() == pytest.approx(2 / 3, rel=1e-6)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g)
    assert abs(mmd_imq(x, y).item()) < 0.01 and mmd_imq(x, y + 2).item() > 0.1


def test_info_vae_and_factor_vae_reduce_to_vae():
    torch.manual_seed(0)
    model, x = ToyVAE(hidden=16), torch.randn(16, 2)
    info = InfoVAE(alpha=0.0, lam=1.0)  # (alpha + lambda - 1) = 0: no MMD
    out, eps = _out(info, model, x)
    ref = BetaVAEH(beta_kl=1.0).encoder_loss(model, x, Noise(eps[:1]), {"beta_rec": 1.0, "beta_kl": 1.0})
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-6)
    fac = FactorVAE(gamma=10.0)
    fac.auxiliary_modules(model, seed=0)
    with torch.no_grad():
        fac.discriminator.net[-1].weight.zero_()
        fac.discriminator.net[-1].bias.zero_()
    out, eps = _out(fac, model, x)
    assert out.terms["tc"].item() == 0.0
    ref = BetaVAEH(beta_kl=1.0).encoder_loss(model, x, Noise(eps), {"beta_rec": 1.0, "beta_kl": 1.0})
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-6)
    assert fac.discriminator_loss(torch.randn(16, 2)).item() == pytest.approx(math.log(2), rel=1e-6)


def test_factor_vae_refuses_to_run_with_an_untrained_discriminator():
    with pytest.raises(RuntimeError, match="Trainer"):
        _out(FactorVAE(), ToyVAE(hidden=8), torch.randn(4, 2))


def test_permute_dims_keeps_marginals():
    z = torch.randn(50, 3)
    zp = permute_dims(z, torch.Generator().manual_seed(0))
    assert torch.equal(zp.sort(0).values, z.sort(0).values) and not torch.equal(zp, z)


def _discriminator_accuracy(disc: Discriminator, z: torch.Tensor) -> float:
    """Share of joint codes called joint (logit > 0) and of dimension-permuted codes called permuted."""
    zp = permute_dims(z, torch.Generator().manual_seed(1))
    with torch.no_grad():
        return 0.5 * (float((disc(z) > 0).float().mean()) + float((disc(zp) <= 0).float().mean()))


def test_factor_vae_through_the_2d_cli_trains_its_discriminator(tmp_path, one_thread):
    """``python -m sivae_core toy2d --method factorvae`` offers FactorVAE, so it must train the discriminator: after
    training, it tells the model's joint codes from permuted ones above chance, where the untrained one (all the
    old CLI ever used) scores 0.5. beta_rec = 10 keeps the 2D posterior from collapsing onto the prior, whose
    codes would be independent and give any discriminator nothing to find."""
    out = tmp_path / "fvae"
    cli(["toy2d", "--dataset", "moons", "--method", "factorvae", "--iters", "600", "--vae-warmup", "0",
         "--batch-size", "256", "--beta-rec", "10", "--out", str(out)])
    state = load_checkpoint_file(out / "checkpoint.pt")
    disc = Discriminator(2)
    disc.load_state_dict(state["auxiliaries"]["discriminator"])
    untrained = Discriminator(2)
    model = ToyVAE()
    model.load_state_dict(state["model"])
    with torch.no_grad():
        z, _ = model.encode(sample("moons", 4000, torch.Generator().manual_seed(7)))
    assert _discriminator_accuracy(disc, z) > 0.55 > 0.53 > _discriminator_accuracy(untrained, z)


@pytest.mark.parametrize("name", ["betavae_h", "betavae_b", "betatcvae", "factorvae", "infovae"])
@pytest.mark.parametrize("dp", [False, True])
def test_every_regularizer_trains_with_and_without_decoupled_prior(name, dp, one_thread):
    torch.manual_seed(0)
    model = ToyVAE(hidden=32, flow_layers=2 if dp else 0, flow_hidden=16)
    obj = OBJECTIVES[name](disc_hidden=32) if name == "factorvae" else OBJECTIVES[name]()
    flow0 = [p.clone() for p in model.prior.parameters()]
    cfg = TrainConfig(iterations=15, batch_size=64, lr_encoder=1e-3, lr_decoder=1e-3, vae_warmup=0, lr_milestones=(),
                      log_every=5, progress=False)
    trainer = Trainer(model, obj, ToySampler("moons"), cfg).fit()
    assert len(trainer.history) == 3 and all(math.isfinite(h["loss_joint"]) for h in trainer.history)
    assert ("aux/discriminator" in trainer.history[-1]) == (name == "factorvae")
    if dp:  # the flow is trained jointly
        assert any(not torch.equal(a, p) for a, p in zip(flow0, model.prior.parameters()))


def test_dp_soft_introvae_trains_its_prior_on_real_codes_only():
    torch.manual_seed(0)
    dp = ToyVAE(hidden=16, flow_layers=2, flow_hidden=8)
    with torch.no_grad():  # a flow that is not the identity
        for p in dp.prior.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(32, 2)
    obj = DPSoftIntroVAE(beta_rec=0.2, beta_kl=0.3, beta_neg=0.9)
    out_e = obj.encoder_loss(dp, x, Noise(torch.randn(4, 32, 2)), obj.hparams)
    out_d = obj.decoder_loss(dp, x, Noise(torch.randn(2, 32, 2)), obj.hparams, out_e.carry)
    flow_params = list(dp.prior.parameters())
    # the decoder may move the fakes but not the prior onto them: the fake KLs send the flow no gradient ...
    fake_part = out_d.terms["kl_fake_rec"] + out_d.terms["kl_fake_sample"]
    grads = torch.autograd.grad(fake_part, flow_params, allow_unused=True)
    assert all(gr is None or gr.abs().max() == 0 for gr in grads)
    # ... the prior's fit to the real codes does
    grads = torch.autograd.grad(out_d.terms["prior_nll"], flow_params, allow_unused=True)
    assert any(gr is not None and gr.abs().max() > 0 for gr in grads)
    # and with the standard normal prior the added term is a constant: dp-Soft-IntroVAE is Soft-IntroVAE
    plain = ToyVAE(hidden=16)
    torch.manual_seed(1)
    e, d = torch.randn(4, 32, 2), torch.randn(2, 32, 2)
    sivae = OBJECTIVES["sivae"](beta_rec=0.2, beta_kl=0.3, beta_neg=0.9)
    ref = sivae.decoder_loss(plain, x, Noise(d), sivae.hparams, sivae.encoder_loss(plain, x, Noise(e), sivae.hparams).carry)
    got = obj.decoder_loss(plain, x, Noise(d), obj.hparams, obj.encoder_loss(plain, x, Noise(e), obj.hparams).carry)
    g_ref = torch.autograd.grad(ref.loss, list(plain.decoder.parameters()))
    g_got = torch.autograd.grad(got.loss, list(plain.decoder.parameters()))
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(g_ref, g_got))
    assert got.loss.item() == pytest.approx(ref.loss.item() + 0.5 * 0.3 * got.terms["prior_nll"].item(), rel=1e-5)


def test_one_factory_builds_every_objective_for_its_run():
    """make_objective gives each objective what its schedule needs from the run and nothing else."""
    vae = make_objective("vae", iterations=100, dataset_size=600, beta_rec=1.0, beta_kl=1.0)
    assert type(vae) is VAE and vae.hparams == {"beta_rec": 1.0, "beta_kl": 1.0}
    b = make_objective("betavae_b", iterations=100, dataset_size=600, beta_rec=1.0, gamma=100.0, c_max=25.0)
    assert type(b) is BetaVAEB and b.c_iters == 50 and b.hparams["c_max"] == 25.0
    tc = make_objective("betatcvae", iterations=100, dataset_size=600, beta_rec=1.0, beta=6.0)
    assert type(tc) is BetaTCVAE and tc.dataset_size == 600 and tc.hparams["beta"] == 6.0
    a = make_objective("asivae", iterations=700, beta_neg=2.0, form="code")
    assert type(a) is ASIntroVAE and a.total_iters == 700 and a.form == "code"
    assert make_objective("betavae_b", beta_rec=1.0).c_iters == 10_000  # no run given: the class default
    with pytest.raises(ValueError, match="choose one of"):
        make_objective("wae")
