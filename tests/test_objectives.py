"""Each objective against a hand computation, and its gradients against a literal Algorithm 2."""

import math

import pytest
import torch
from torch import nn

from sivae_core.elbo import kl_to_standard_normal, reconstruction_error, reparameterize
from sivae_core.models import IntroVAEModel, ToyVAE, seeded
from sivae_core.objectives import OBJECTIVES, VAE, IntroVAE, Noise, SoftIntroVAE, register_objective

# A 1-D model small enough to compute by hand: mu = 0.5 x + 0.1, logvar = log 0.25 (sigma = 0.5), D(z) = 2 z - 0.5.
W_MU, B_MU, SIGMA, V, C = 0.5, 0.1, 0.5, 2.0, -0.5


def tiny_model() -> IntroVAEModel:
    enc, dec = nn.Linear(1, 2, dtype=torch.float64), nn.Linear(1, 1, dtype=torch.float64)
    with torch.no_grad():
        enc.weight.copy_(torch.tensor([[W_MU], [0.0]], dtype=torch.float64))
        enc.bias.copy_(torch.tensor([B_MU, math.log(SIGMA**2)], dtype=torch.float64))
        dec.weight.fill_(V)
        dec.bias.fill_(C)
    return IntroVAEModel(enc, dec, data_shape=(1,), z_dim=1)


def hand_kl(mu: float) -> float:
    return 0.5 * (mu**2 + SIGMA**2 - math.log(SIGMA**2) - 1)


def enc_mu(x: float) -> float:
    return W_MU * x + B_MU


def dec(z: float) -> float:
    return V * z + C


X, E0, ZF, ER, EF = 1.0, 0.2, -0.3, 0.4, -1.1
XB = torch.tensor([[X]], dtype=torch.float64)


def noise(*values: float) -> Noise:
    return Noise(torch.tensor(values, dtype=torch.float64).reshape(-1, 1, 1))


def test_vae_loss_by_hand():
    mu = enc_mu(X)
    z = mu + SIGMA * E0
    expected = 2.0 * (X - dec(z)) ** 2 + 0.5 * hand_kl(mu)
    out = VAE(beta_rec=2.0, beta_kl=0.5).encoder_loss(tiny_model(), XB, noise(E0), {"beta_rec": 2.0, "beta_kl": 0.5})
    assert out.loss.item() == pytest.approx(expected, rel=1e-12)


def test_introvae_losses_by_hand():
    hp = {"beta_rec": 0.7, "beta_kl": 0.4, "beta_neg": 1.3, "m": 0.9}
    obj, model = IntroVAE(**hp), tiny_model()
    mu = enc_mu(X)
    z = mu + SIGMA * E0
    x_r, x_f = dec(z), dec(ZF)
    kl_r, kl_f = hand_kl(enc_mu(x_r)), hand_kl(enc_mu(x_f))
    rec = (X - x_r) ** 2
    exp_e = 0.7 * rec + 0.4 * hand_kl(mu) + 1.3 * 0.5 * (max(0.0, 0.9 - kl_r) + max(0.0, 0.9 - kl_f))
    out_e = obj.encoder_loss(model, XB, noise(E0, ZF), obj.hparams)
    assert out_e.loss.item() == pytest.approx(exp_e, rel=1e-12)
    exp_d = 0.7 * rec + 1.3 * 0.5 * (kl_r + kl_f)
    out_d = obj.decoder_loss(model, XB, noise(), obj.hparams, out_e.carry)
    assert out_d.loss.item() == pytest.approx(exp_d, rel=1e-12)


def test_soft_introvae_losses_by_hand():
    hp = {"beta_rec": 0.7, "beta_kl": 0.4, "beta_neg": 1.3, "gamma_r": 0.25, "alpha": 2.0}
    obj, model = SoftIntroVAE(**hp), tiny_model()
    s, a = 1.0, 2.0  # s = 1 / input_dim = 1
    mu = enc_mu(X)
    z = mu + SIGMA * E0
    x_r, x_f = dec(z), dec(ZF)

    def fake_energy(y: float, eps: float, beta_kl: float, beta_rec: float) -> float:
        m = enc_mu(y)
        return beta_rec * (y - dec(m + SIGMA * eps)) ** 2 + beta_kl * hand_kl(m)

    real = s * (0.7 * (X - x_r) ** 2 + 0.4 * hand_kl(mu))
    exp_terms = [math.exp(-a * s * fake_energy(y, e, 1.3, 0.7)) / a for y, e in ((x_r, ER), (x_f, EF))]
    exp_e = real + 0.5 * sum(exp_terms)
    out_e = obj.encoder_loss(model, XB, noise(E0, ZF, ER, EF), obj.hparams)
    assert out_e.loss.item() == pytest.approx(exp_e, rel=1e-12)

    er2, ef2 = 0.6, 0.05
    fakes = 0.5 * (fake_energy(x_r, er2, 0.4, 0.25 * 0.7) + fake_energy(x_f, ef2, 0.4, 0.25 * 0.7))
    exp_d = s * (0.7 * (X - x_r) ** 2 + fakes)
    out_d = obj.decoder_loss(model, XB, noise(er2, ef2), obj.hparams, out_e.carry)
    assert out_d.loss.item() == pytest.approx(exp_d, rel=1e-12)


def test_soft_introvae_scale_is_inverse_input_dim():
    assert SoftIntroVAE().scale(ToyVAE()) == 0.5
    assert SoftIntroVAE(s=0.1).scale(ToyVAE()) == 0.1


# ----------------------------------------------------------------------------------------------
# Gradients: our (batched, merged-call) implementation vs a literal transcription of Algorithm 2.


def reference_sivae(model, x, eps_e, eps_d, hp, sg_on_rerec=True):
    """Algorithm 2 line by line, separate network calls, stop-gradients exactly as written."""
    s, a = 1.0 / model.input_dim, hp["alpha"]
    mu, logvar = model.encoder(x).chunk(2, -1)
    z = reparameterize(mu, logvar, eps_e[0])
    z_f = eps_e[1]
    x_r, x_f = model.decoder(z), model.decoder(z_f)

    def energy(inp, target_rec, m, lv, beta_rec, beta_kl):
        return beta_rec * reconstruction_error(inp, target_rec, 1) + beta_kl * kl_to_standard_normal(m, lv)

    real = s * (hp["beta_rec"] * reconstruction_error(x, x_r, 1) + hp["beta_kl"] * kl_to_standard_normal(mu, logvar)).mean()
    exps = []
    for fake, e in ((x_r.detach(), eps_e[2]), (x_f.detach(), eps_e[3])):
        m, lv = model.encoder(fake).chunk(2, -1)
        rr = model.decoder(reparameterize(m, lv, e))
        exps.append((torch.exp(-a * s * energy(fake, rr, m, lv, hp["beta_rec"], hp["beta_neg"])) / a).mean())
    loss_e = real + 0.5 * (exps[0] + exps[1])

    z_d = z.detach()
    x_r, x_f = model.decoder(z_d), model.decoder(z_f)
    rec = reconstruction_error(x, x_r, 1).mean()
    fakes = []
    for fake, e in ((x_r, eps_d[0]), (x_f, eps_d[1])):
        m, lv = model.encoder(fake).chunk(2, -1)
        rr = model.decoder(reparameterize(m, lv, e))
        if sg_on_rerec:
            rr = rr.detach()
        fakes.append(energy(fake, rr, m, lv, hp["gamma_r"] * hp["beta_rec"], hp["beta_kl"]).mean())
    loss_d = s * (hp["beta_rec"] * rec + 0.5 * (fakes[0] + fakes[1]))
    return loss_e, loss_d


def grads(loss, params):
    return torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)


@pytest.mark.parametrize("gamma_r", [1e-8, 1.0])
def test_soft_introvae_gradients_match_algorithm_2(gamma_r):
    model = seeded(lambda: ToyVAE(hidden=16, n_hidden_layers=1), 3).double()
    hp = {"beta_rec": 0.6, "beta_kl": 0.3, "beta_neg": 0.9, "gamma_r": gamma_r, "alpha": 2.0}
    obj = SoftIntroVAE(**hp)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 2, generator=g, dtype=torch.float64)
    eps_e = torch.randn(4, 8, 2, generator=g, dtype=torch.float64)
    eps_d = torch.randn(2, 8, 2, generator=g, dtype=torch.float64)
    out_e = obj.encoder_loss(model, x, Noise(eps_e), obj.hparams)
    out_d = obj.decoder_loss(model, x, Noise(eps_d), obj.hparams, out_e.carry)
    ref_e, ref_d = reference_sivae(model, x, eps_e, eps_d, hp)
    torch.testing.assert_close(out_e.loss, ref_e)
    torch.testing.assert_close(out_d.loss, ref_d)
    enc, dec = list(model.encoder.parameters()), list(model.decoder.parameters())
    for ours, ref in ((out_e.loss, ref_e), (out_d.loss, ref_d)):
        for params in (enc, dec):
            for a, b in zip(grads(ours, params), grads(ref, params)):
                torch.testing.assert_close(a, b)
    # Negative control: without the stop-gradient on X_rf the decoder gradient differs (for large gamma_r),
    # so the comparison above can detect a misplaced stop-gradient.
    _, no_sg = reference_sivae(model, x, eps_e, eps_d, hp, sg_on_rerec=False)
    diff = max((a - b).abs().max().item() for a, b in zip(grads(out_d.loss, dec), grads(no_sg, dec)))
    assert (diff > 1e-6) == (gamma_r == 1.0)


def test_noise_overdraw_is_an_error():
    with pytest.raises(RuntimeError, match="noise draws"):
        n = noise(0.1)
        n.next()
        n.next()


def test_registry_holds_the_three_core_methods_and_refuses_duplicates():
    assert {"vae", "introvae", "sivae"} <= set(OBJECTIVES)

    class Fake(VAE):
        name = "vae"

    with pytest.raises(ValueError, match="already registered"):
        register_objective(Fake)


def test_wrong_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="expects a batch of samples of shape"):
        ToyVAE().encode(torch.zeros(4, 3))
