"""dpVAE: Eq. 5 KL vs closed form, each regularizer on a hand-checkable case, diagnostics, training runs."""

import math

import pytest
import torch

from sivae_core.dpvae import (BetaTCVAE, BetaVAEB, BetaVAEH, DPSoftIntroVAE, FactorVAE, InfoVAE, ToyDPVAE, capacity,
                              dp_kl, latent_kl, mmd_imq, permute_dims, prior_log_prob, tc_decomposition,
                              train_regularized)
from sivae_core.elbo import gaussian_log_prob, kl_to_standard_normal
from sivae_core.flows import standard_normal_log_prob
from sivae_core.models import ToyVAE
from sivae_core.objectives import OBJECTIVES, Noise, SoftIntroVAE
from sivae_core.toy2d.data import ToySampler


def test_dp_kl_matches_closed_form_with_identity_flow():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(3, 4, generator=g, dtype=torch.float64), 0.5 * torch.randn(3, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(200_000, 3, 4, generator=g, dtype=torch.float64)
    z = mu + eps * (0.5 * logvar).exp()
    est = dp_kl(mu, logvar, z, standard_normal_log_prob(z)).mean(0)
    assert torch.allclose(est, kl_to_standard_normal(mu, logvar), atol=0.02)
    # and it is log q(z|x) - log p(z) in expectation (the entropy is exact, only the cross-entropy is sampled)
    full = (gaussian_log_prob(z, mu, logvar) - standard_normal_log_prob(z)).mean(0)
    assert torch.allclose(est, full, atol=0.02)


def test_model_with_untrained_flow_has_the_standard_prior():
    torch.manual_seed(0)
    model = ToyDPVAE(hidden=16)
    z = torch.randn(7, 2)
    assert torch.allclose(prior_log_prob(model, z), standard_normal_log_prob(z))
    assert [n for n, _ in model.named_parameters() if "flow" in n][0].startswith("decoder.flow.")
    assert model.sample(5).shape == (5, 2)


def _out(obj, model, x, n=None):
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


def test_beta_vae_b_capacity():
    assert capacity(0, 5.0, 100) == 0.0 and capacity(50, 5.0, 100) == 2.5 and capacity(500, 5.0, 100) == 5.0
    torch.manual_seed(0)
    model, x = ToyVAE(hidden=16), torch.randn(8, 2)
    obj = BetaVAEB(gamma=10.0, c_max=5.0, c_iters=2)
    out, _ = _out(obj, model, x)  # i = 0: C = 0
    kl = out.terms["kl"]
    assert (out.loss - out.terms["rec"]).item() == pytest.approx(10.0 * abs(kl.item() - 0.0), rel=1e-5)
    _out(obj, model, x)
    out, _ = _out(obj, model, x)  # i = 2: C = 5
    assert out.terms["capacity"].item() == 5.0
    assert (out.loss - out.terms["rec"]).item() == pytest.approx(10.0 * abs(out.terms["kl"].item() - 5.0), rel=1e-5)


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
        log_qz = math.log(0.5 * (npdf(zi, 0.0) + npdf(zi, 1.0))) - math.log(1)  # MWS with N M = 2 -> log(1/2 sum)
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
    fac.ensure_discriminator(2)
    with torch.no_grad():
        fac.discriminator.net[-1].weight.zero_()
        fac.discriminator.net[-1].bias.zero_()
    out, eps = _out(fac, model, x)
    assert out.terms["tc"].item() == 0.0
    ref = BetaVAEH(beta_kl=1.0).encoder_loss(model, x, Noise(eps), {"beta_rec": 1.0, "beta_kl": 1.0})
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-6)
    assert fac.discriminator_loss(torch.randn(16, 2)).item() == pytest.approx(math.log(2), rel=1e-6)


def test_permute_dims_keeps_marginals():
    z = torch.randn(50, 3)
    zp = permute_dims(z, torch.Generator().manual_seed(0))
    assert torch.equal(zp.sort(0).values, z.sort(0).values) and not torch.equal(zp, z)


def test_factor_vae_discriminator_learns_to_detect_correlation():
    torch.manual_seed(0)
    fac = FactorVAE(disc_hidden=32)
    disc = fac.ensure_discriminator(2)
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(80):
        a = torch.randn(128, 1, generator=g)
        loss = fac.discriminator_loss(torch.cat([a, a], 1), g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.45  # well below log 2: the joint codes are told apart from the permuted ones


@pytest.mark.parametrize("name", ["betavae_h", "betavae_b", "betatcvae", "factorvae", "infovae"])
@pytest.mark.parametrize("dp", [False, True])
def test_every_regularizer_trains_with_and_without_decoupled_prior(name, dp):
    torch.manual_seed(0)
    model = ToyDPVAE(hidden=32, flow_layers=2, flow_hidden=16) if dp else ToyVAE(hidden=32)
    obj = OBJECTIVES[name](disc_hidden=32) if name == "factorvae" else OBJECTIVES[name]()
    flow0 = [p.clone() for n, p in model.named_parameters() if "flow" in n]
    hist = train_regularized(model, obj, ToySampler("moons"), iterations=15, batch_size=64, log_every=5)
    assert len(hist) == 3 and all(math.isfinite(h["loss"]) for h in hist)
    if dp:  # the flow is trained jointly
        assert any(not torch.equal(a, p) for a, (n, p) in zip(flow0, [(n, p) for n, p in model.named_parameters() if "flow" in n]))


def test_dp_soft_introvae_identity_flow_and_frozen_prior():
    torch.manual_seed(0)
    dp, plain = ToyDPVAE(hidden=16, flow_layers=2, flow_hidden=8), ToyVAE(hidden=16)
    plain.load_state_dict({k: v for k, v in dp.state_dict().items() if "flow" not in k} | {
        k.replace("decoder.net.", "decoder."): v for k, v in dp.state_dict().items() if k.startswith("decoder.net.")},
        strict=False)
    x = torch.randn(32, 2)
    # The encoder loss of the dp version with an identity flow equals S-IntroVAE's with Monte Carlo KLs:
    # check that the KLs agree on average instead, and that the decoder loss sends no fake-KL gradient to the flow.
    obj = DPSoftIntroVAE(beta_rec=0.2, beta_kl=0.3, beta_neg=0.9)
    out_e = obj.encoder_loss(dp, x, Noise(torch.randn(4, 32, 2)), obj.hparams)
    out_d = obj.decoder_loss(dp, x, Noise(torch.randn(2, 32, 2)), obj.hparams, out_e.carry)
    flow_params = list(dp.decoder.flow.parameters())
    fake_part = out_d.terms["kl_fake_rec"] + out_d.terms["kl_fake_sample"]
    grads = torch.autograd.grad(fake_part, flow_params, allow_unused=True)
    assert all(gr is None or gr.abs().max() == 0 for gr in grads)
    grads = torch.autograd.grad(out_d.terms["prior_nll"], flow_params, allow_unused=True)
    assert any(gr is not None and gr.abs().max() > 0 for gr in grads)
    mu, logvar = dp.encode(x)
    z = mu + torch.randn(20_000, *mu.shape) * (0.5 * logvar).exp()
    assert torch.allclose(latent_kl(dp, mu, logvar, z).mean(0), kl_to_standard_normal(mu, logvar), atol=0.05)
    assert isinstance(SoftIntroVAE(), SoftIntroVAE)


def test_make_regularizer_builds_each_regularizer_with_its_schedule():
    from sivae_core.dpvae import BetaTCVAE, BetaVAEB, BetaVAEH, make_regularizer

    vae = make_regularizer("vae", {"beta_rec": 1.0, "beta_kl": 1.0}, 100, 600)
    assert type(vae) is BetaVAEH and vae.hparams["beta_kl"] == 1.0
    b = make_regularizer("betavae_b", {"beta_rec": 1.0, "gamma": 100.0, "c_max": 25.0}, 100, 600)
    assert isinstance(b, BetaVAEB) and b.c_iters == 50 and b.hparams["c_max"] == 25.0
    tc = make_regularizer("betatcvae", {"beta_rec": 1.0, "beta": 6.0}, 100, 600)
    assert isinstance(tc, BetaTCVAE) and tc.dataset_size == 600 and tc.hparams["beta"] == 6.0
    with pytest.raises(ValueError, match="choose one of"):
        make_regularizer("wae", {}, 100, 600)
