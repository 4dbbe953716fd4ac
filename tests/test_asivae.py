"""AS-IntroVAE: the kernel of Eq. 8 against numerical integration, the distance, the schedule, the objective, and
the code form against a transcription of the authors' training step."""

import math

import numpy as np
import pytest
import torch

from sivae_core.experiments.as_table import setting_objective
from sivae_core.models import ToyVAE
from sivae_core.objectives import (
    OBJECTIVES,
    ASIntroVAE,
    Noise,
    SoftIntroVAE,
    annealing_c,
    as_distance,
    as_distance_per_dim,
    as_kernel,
)


def _normal_pdf(z, mu, var):
    return np.exp(-0.5 * (z - mu) ** 2 / var) / np.sqrt(2 * np.pi * var)


def test_kernel_is_the_integral_of_the_product_1d():
    mu_a, lv_a, mu_b, lv_b = 0.3, math.log(0.5), -0.7, math.log(1.7)
    z = np.linspace(-15, 15, 200_001)
    numeric = np.trapezoid(_normal_pdf(z, mu_a, math.exp(lv_a)) * _normal_pdf(z, mu_b, math.exp(lv_b)), z)
    k = as_kernel(torch.tensor([[mu_a]]), torch.tensor([[lv_a]]), torch.tensor([[mu_b]]), torch.tensor([[lv_b]]))
    assert float(k) == pytest.approx(numeric, rel=1e-6)


def test_kernel_is_the_integral_of_the_product_2d_and_pairwise():
    g = torch.Generator().manual_seed(0)
    f64 = {"generator": g, "dtype": torch.float64}
    mu_a, mu_b = torch.randn(3, 2, **f64), torch.randn(4, 2, **f64)
    lv_a, lv_b = 0.5 * torch.randn(3, 2, **f64), 0.5 * torch.randn(4, 2, **f64)
    K = as_kernel(mu_a, lv_a, mu_b, lv_b)
    assert K.shape == (3, 4)
    side = np.linspace(-9, 9, 1201)
    zz1, zz2 = np.meshgrid(side, side, indexing="ij")
    i, j = 2, 1
    qa = _normal_pdf(zz1, mu_a[i, 0].item(), lv_a[i, 0].exp().item()) * _normal_pdf(zz2, mu_a[i, 1].item(),
                                                                                     lv_a[i, 1].exp().item())
    qb = _normal_pdf(zz1, mu_b[j, 0].item(), lv_b[j, 0].exp().item()) * _normal_pdf(zz2, mu_b[j, 1].item(),
                                                                                     lv_b[j, 1].exp().item())
    numeric = np.trapezoid(np.trapezoid(qa * qb, side, axis=1), side)
    assert K[i, j].item() == pytest.approx(numeric, rel=1e-5)


def test_distance_is_the_l2_distance_between_the_mixtures():
    g = torch.Generator().manual_seed(1)
    f64 = {"generator": g, "dtype": torch.float64}
    mu_r, mu_g = torch.randn(3, 1, **f64), torch.randn(2, 1, **f64)
    lv_r, lv_g = 0.3 * torch.randn(3, 1, **f64), 0.3 * torch.randn(2, 1, **f64)
    z = np.linspace(-20, 20, 400_001)
    qr = np.mean([_normal_pdf(z, m.item(), l.exp().item()) for m, l in zip(mu_r[:, 0], lv_r[:, 0])], axis=0)
    qg = np.mean([_normal_pdf(z, m.item(), l.exp().item()) for m, l in zip(mu_g[:, 0], lv_g[:, 0])], axis=0)
    numeric = np.trapezoid((qr - qg) ** 2, z)
    assert as_distance(mu_r, lv_r, mu_g, lv_g).item() == pytest.approx(numeric, rel=1e-6)


def test_distance_zero_iff_same_batch_and_nonnegative():
    g = torch.Generator().manual_seed(2)
    mu, lv = torch.randn(16, 8, generator=g), 0.2 * torch.randn(16, 8, generator=g)
    assert as_distance(mu, lv, mu, lv).abs().item() < 1e-6
    assert as_distance(mu, lv, mu[torch.randperm(16, generator=g)], lv).abs().item() < 1e-6  # order-free
    assert as_distance(mu, lv, mu + 0.5, lv).item() > 0
    # Large latent dimension, narrow posteriors: Eq. 8's product kernel is astronomically large (k(i, i) =
    # (4 pi var)^(-L/2) ~ e^220 here after averaging, beyond float32), the per-dimension mean of the authors' code is not.
    args = (torch.randn(8, 128), torch.full((8, 128), -6.0), torch.randn(8, 128), torch.full((8, 128), -6.0))
    assert as_distance(*(a.double() for a in args)).item() > 1e90
    assert 0 < as_distance_per_dim(*args).item() < 100
    assert as_distance_per_dim(mu, lv, mu, lv).abs().item() < 1e-6


def test_annealing_schedules():
    assert annealing_c(0, 100) == 0.0
    assert annealing_c(10, 100) == pytest.approx(0.5)
    assert annealing_c(20, 100) == 1.0 and annealing_c(90, 100) == 1.0
    assert annealing_c(10, 100, "tanh") == pytest.approx(math.tanh(0.5))
    with pytest.raises(ValueError):
        annealing_c(1, 10, "cosine")


def _losses(obj, model, x, eps_e, eps_d):
    out_e = obj.encoder_loss(model, x, Noise(eps_e), obj.hparams)
    out_d = obj.decoder_loss(model, x, Noise(eps_d), obj.hparams, out_e.carry)
    return out_e, out_d


def test_with_c_equal_one_it_is_soft_introvae():
    torch.manual_seed(0)
    model = ToyVAE(hidden=32)
    x = torch.randn(64, 2)
    eps_e, eps_d = torch.randn(4, 64, 2), torch.randn(2, 64, 2)
    hp = dict(beta_rec=0.3, beta_kl=0.1, beta_neg=0.9)
    a_e, a_d = _losses(ASIntroVAE(**hp, c=1.0), model, x, eps_e, eps_d)
    s_e, s_d = _losses(SoftIntroVAE(**hp), model, x, eps_e, eps_d)
    assert a_e.loss.item() == pytest.approx(s_e.loss.item(), rel=1e-6)
    assert a_d.loss.item() == pytest.approx(s_d.loss.item(), rel=1e-6)


def test_adversarial_directions_of_the_distance():
    """The encoder loss decreases when D grows (it maximizes D); the decoder loss increases with D."""
    torch.manual_seed(0)
    model = ToyVAE(hidden=32)
    x = torch.randn(64, 2)
    eps_e, eps_d = torch.randn(4, 64, 2), torch.randn(2, 64, 2)
    obj = ASIntroVAE(beta_rec=0.3, beta_kl=0.1, beta_neg=0.9, c=0.0)
    base_e, base_d = _losses(obj, model, x, eps_e, eps_d)
    obj.distance = lambda *a, **k: ASIntroVAE.distance(obj, *a, **k) + 1.0  # type: ignore[method-assign]
    up_e, up_d = _losses(obj, model, x, eps_e, eps_d)
    assert up_e.loss.item() < base_e.loss.item()
    assert up_d.loss.item() > base_d.loss.item()


def test_counter_schedule_and_forms():
    obj = ASIntroVAE(total_iters=10)
    model = ToyVAE(hidden=16)
    x = torch.randn(32, 2)
    assert obj.c() == 0.0
    for _ in range(2):
        _losses(obj, model, x, torch.randn(4, 32, 2), torch.randn(2, 32, 2))
    assert obj.i == 2 and obj.c() == pytest.approx(1.0)
    code = ASIntroVAE(form="code")
    assert code.anneal == "tanh" and code.squash and code.kernel == "per_dim"
    out_e, out_d = _losses(code, model, x, torch.randn(4, 32, 2), torch.randn(2, 32, 2))
    assert torch.isfinite(out_e.loss) and torch.isfinite(out_d.loss)
    assert OBJECTIVES["asivae"] is ASIntroVAE


def test_distance_refuses_a_sum_it_cannot_take():
    """The product kernel (Eq. 8) has no per-dimension sum: asked for one, the distance says so instead of
    returning its mean; the per-dimension kernel's sum is its mean times B^2 L (B = 3 pairs per side, L = 2)."""
    mu, lv = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64) * 0.1
    with pytest.raises(ValueError, match="per_dim"):
        ASIntroVAE().distance(mu, lv, mu + 1, lv, reduce="sum")
    with pytest.raises(ValueError, match="reduce"):
        ASIntroVAE(form="code").distance(mu, lv, mu + 1, lv, reduce="none")
    code = ASIntroVAE(form="code")
    pairs = (code.distance(mu, lv, mu + 1, lv, reduce="sum"), code.distance(mu, lv, mu + 1, lv))
    assert pairs[0].item() == pytest.approx(3 * 3 * 2 * pairs[1].item(), rel=1e-12)


def _authors_gaussian_distance(mu_a, logvar_a, mu_b, logvar_b, reduce):
    """LOUEY233/AS-IntroVAE utils.Gaussian_Distance, transcribed: 1-D kernels over all pairs and dimensions, their
    mean for reduce='mean' and their sum otherwise."""
    def k(m1, v1, m2, v2):
        res = torch.exp(-0.5 * (m1[:, None] - m2[None]) ** 2 / (v1[:, None] + v2[None])) / torch.sqrt(v1[:, None] + v2[None])
        return res.mean() if reduce == "mean" else res.sum()

    va, vb = logvar_a.exp(), logvar_b.exp()
    return k(mu_a, va, mu_a, va) + k(mu_b, vb, mu_b, vb) - 2 * k(mu_a, va, mu_b, vb)


def _authors_as_step(model, x, eps_e, eps_d, hp, c):
    """The losses of one iteration of LOUEY233/AS-IntroVAE A_VAE.py (Train_AVAE), transcribed with the noise given
    and a fixed c: the encoder's distance summed, the decoder's averaged and weighed once."""
    s = 1.0 / x[0].numel()
    b_rec, b_kl, b_neg, g_r = hp["beta_rec"], hp["beta_kl"], hp["beta_neg"], hp["gamma_r"]
    sse = lambda a, b: ((a - b) ** 2).flatten(1).sum(1)  # noqa: E731
    kl = lambda m, lv: -0.5 * (1 + lv - lv.exp() - m ** 2).sum(1)  # noqa: E731
    rep = lambda m, lv, e: m + e * (0.5 * lv).exp()  # noqa: E731
    # update E
    fake = model.decode(eps_e[1])
    real_mu, real_logvar = model.encode(x)
    z = rep(real_mu, real_logvar, eps_e[0])
    rec = model.decode(z)
    loss_rec, real_kl = sse(x, rec).mean(), kl(real_mu, real_logvar).mean()
    rec_mu, rec_logvar = model.encode(rec.detach())
    rec_rec = model.decode(rep(rec_mu, rec_logvar, eps_e[2]))
    fake_mu, fake_logvar = model.encode(fake.detach())
    rec_fake = model.decode(rep(fake_mu, fake_logvar, eps_e[3]))
    kl_rec, kl_fake = kl(rec_mu, rec_logvar), kl(fake_mu, fake_logvar)
    l_rr, l_rf = sse(rec, rec_rec), sse(fake, rec_fake)
    dis = _authors_gaussian_distance(*(torch.tanh(t) for t in (rec_mu, rec_logvar, fake_mu, fake_logvar)), "none")
    exp_rec = (-2 * s * (b_rec * l_rr + b_neg * (c * kl_rec + (1 - c) * dis))).exp().mean()
    exp_fake = (-2 * s * (b_rec * l_rf + b_neg * (c * kl_fake + (1 - c) * dis))).exp().mean()
    loss_e = s * (b_rec * loss_rec + b_kl * real_kl) + 0.25 * (exp_rec + exp_fake)
    # update D
    fake, rec = model.decode(eps_e[1]), model.decode(z.detach())
    loss_rec = sse(x, rec).mean()
    rec_mu, rec_logvar = model.encode(rec)
    fake_mu, fake_logvar = model.encode(fake)
    rec_rec = model.decode(rep(rec_mu, rec_logvar, eps_d[0]).detach())
    rec_fake = model.decode(rep(fake_mu, fake_logvar, eps_d[1]).detach())
    l_rr, l_fr = sse(rec.detach(), rec_rec).mean(), sse(fake.detach(), rec_fake).mean()
    rec_mu, rec_logvar, fake_mu, fake_logvar = (torch.tanh(t) for t in (rec_mu, rec_logvar, fake_mu, fake_logvar))
    kl_r, kl_f = kl(rec_mu, rec_logvar).mean(), kl(fake_mu, fake_logvar).mean()
    dis = _authors_gaussian_distance(rec_mu, rec_logvar, fake_mu, fake_logvar, "mean")
    loss_d = s * (loss_rec * b_rec + (c * (kl_r + kl_f) + (1 - c) * dis) * 0.5 * b_kl
                  + g_r * 0.5 * b_rec * (l_rr + l_fr))
    return loss_e, loss_d


@pytest.mark.parametrize("c", [0.0, 0.4])
def test_code_form_losses_are_the_authors(c):
    """form="code" (with c fixed) against the transcribed A_VAE.py step: both players' losses agree, including
    the encoder's summed distance and the decoder's single weight of it; the paper form's reductions do not."""
    torch.manual_seed(0)
    model = ToyVAE(hidden=16, z_dim=3).double()
    with torch.no_grad():  # spread the posteriors, so that the distance between the two batches is not negligible
        model.encoder[-1].weight.mul_(20)
        model.decoder[-1].weight.mul_(5)
    x = torch.randn(6, 2, dtype=torch.float64) * 2
    eps_e, eps_d = torch.randn(4, 6, 3, dtype=torch.float64), torch.randn(2, 6, 3, dtype=torch.float64)
    hp = dict(beta_rec=0.7, beta_kl=0.4, beta_neg=0.9, gamma_r=1e-8)
    ref_e, ref_d = _authors_as_step(model, x, eps_e, eps_d, hp, c)
    ours_e, ours_d = _losses(ASIntroVAE(**hp, form="code", c=c), model, x, eps_e, eps_d)
    torch.testing.assert_close(ours_e.loss, ref_e, rtol=1e-12, atol=0)
    torch.testing.assert_close(ours_d.loss, ref_d, rtol=1e-12, atol=0)
    # both steps see the same posteriors here: the encoder's D is the sum over 6 x 6 pairs and 3 dimensions
    torch.testing.assert_close(ours_e.terms["as_dist"], 6 * 6 * 3 * ours_d.terms["as_dist"], rtol=1e-9, atol=0)
    mean_e, mean_d = _losses(ASIntroVAE(**hp, form="code", c=c, code_reductions=False), model, x, eps_e, eps_d)
    if c < 1:  # with the distance in play, averaging it in the encoder or weighing it twice is another objective
        assert abs(mean_e.loss.item() - ref_e.item()) > 1e-5 and abs(mean_d.loss.item() - ref_d.item()) > 1e-8
    with pytest.raises(ValueError, match="per_dim"):
        ASIntroVAE(form="code", kernel="product")


def test_settings_map_to_objectives():
    assert setting_objective("vae", "8gaussians", "C1", 10).hparams == {"beta_rec": 0.3, "beta_kl": 0.1}
    intro = setting_objective("introvae", "checkerboard", "C3", 10).hparams
    assert intro["beta_neg"] == 0.9 and intro["m"] == 8.0
    assert setting_objective("asivae", "8gaussians", "C2", 10).total_iters == 10


def test_the_two_readings_of_the_printed_settings():
    """Lu et al. print C1 = (0.3, 0.1, 0.9) without naming the arguments: read in the order of their description
    it is beta_rec 0.3, beta_kl 0.1; in the argument order of the Soft-IntroVAE 2D code, beta_kl 0.3, beta_rec 0.1."""
    a = setting_objective("sivae", "8gaussians", "C1", 10, "rec_kl_neg").hparams
    b = setting_objective("sivae", "8gaussians", "C1", 10, "kl_rec_neg").hparams
    assert (a["beta_rec"], a["beta_kl"], a["beta_neg"]) == (0.3, 0.1, 0.9)
    assert (b["beta_rec"], b["beta_kl"], b["beta_neg"]) == (0.1, 0.3, 0.9)
