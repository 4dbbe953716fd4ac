"""Each objective against a hand computation, and its gradients against a literal Algorithm 2."""

import math

import pytest
import torch
from torch import nn

from sivae_core import TensorSampler, TrainConfig, Trainer
from sivae_core.data.toy2d import ToySampler
from sivae_core.elbo import kl_to_standard_normal, reconstruction_error, reparameterize
from sivae_core.models import IntroVAEModel, ResNetVAE, ToyVAE, seeded
from sivae_core.objectives import OBJECTIVES, VAE, IntroVAE, Noise, SoftIntroVAE, register_objective
from sivae_core.objectives.soft_introvae import ENCODER_GRAD_READINGS

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


def reference_sivae(model, x, eps_e, eps_d, hp, sg_on_rerec=True, reading="printed"):
    """Algorithm 2 line by line, separate network calls. ``reading`` says which stop-gradients the encoder update
    gets on X_r: none ("printed", as the algorithm is printed), or X_r detached as input and as target ("detached")."""
    s, a = 1.0 / model.input_dim, hp["alpha"]
    mu, logvar = model.encoder(x).chunk(2, -1)
    z = reparameterize(mu, logvar, eps_e[0])
    z_f = eps_e[1]
    x_r, x_f = model.decoder(z), model.decoder(z_f)

    def energy(inp, target_rec, m, lv, beta_rec, beta_kl):
        return beta_rec * reconstruction_error(inp, target_rec, 1) + beta_kl * kl_to_standard_normal(m, lv)

    real = s * (hp["beta_rec"] * reconstruction_error(x, x_r, 1) + hp["beta_kl"] * kl_to_standard_normal(mu, logvar)).mean()
    exps = []
    fake_r = x_r.detach() if reading == "detached" else x_r
    for fake, e in ((fake_r, eps_e[2]), (x_f.detach(), eps_e[3])):
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


def _sse(a, b):
    return ((a - b) ** 2).flatten(1).sum(1)


def _kl(mu, logvar):
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def authors_step(model, x, eps_e, eps_d, hp):
    """The authors' training step, transcribed from taldatech/soft-intro-vae-pytorch (``train_soft_intro_vae.py``;
    the 2D code is the same step): ``requires_grad`` toggles select the player, the reconstruction error is a
    per-sample sum averaged over the batch, ``0.25 = 0.5 * 1/alpha``. Noise is passed in, in the order our
    objective consumes it. Returns the two losses and each player's gradient."""
    s, (b_rec, b_kl, b_neg, g_r) = 1.0 / model.input_dim, (hp[k] for k in ("beta_rec", "beta_kl", "beta_neg", "gamma_r"))
    enc, dec = list(model.encoder.parameters()), list(model.decoder.parameters())

    def encode(t, eps):
        mu, logvar = model.encoder(t).chunk(2, -1)
        return mu, logvar, model.decoder(reparameterize(mu, logvar, eps))

    for p in enc:  # =========== Update E ================
        p.requires_grad_(True)
    for p in dec:
        p.requires_grad_(False)
    fake = model.decoder(eps_e[1])
    real_mu, real_logvar = model.encoder(x).chunk(2, -1)
    z = reparameterize(real_mu, real_logvar, eps_e[0])
    rec = model.decoder(z)
    loss_rec, loss_real_kl = _sse(x, rec).mean(), _kl(real_mu, real_logvar).mean()
    fake_mu, fake_logvar, rec_fake = encode(fake.detach(), eps_e[3])
    rec_mu, rec_logvar, rec_rec = encode(rec.detach(), eps_e[2])
    exp_fake = (-2 * s * (b_rec * _sse(fake, rec_fake) + b_neg * _kl(fake_mu, fake_logvar))).exp().mean()
    exp_rec = (-2 * s * (b_rec * _sse(rec, rec_rec) + b_neg * _kl(rec_mu, rec_logvar))).exp().mean()
    loss_e = s * (b_kl * loss_real_kl + b_rec * loss_rec) + 0.25 * (exp_fake + exp_rec)
    g_e = torch.autograd.grad(loss_e, enc)
    for p in enc:  # ========= Update D ==================
        p.requires_grad_(False)
    for p in dec:
        p.requires_grad_(True)
    fake, rec = model.decoder(eps_e[1]), model.decoder(z.detach())
    loss_rec = _sse(x, rec).mean()
    rec_mu, rec_logvar = model.encoder(rec).chunk(2, -1)
    fake_mu, fake_logvar = model.encoder(fake).chunk(2, -1)
    rec_rec = model.decoder(reparameterize(rec_mu, rec_logvar, eps_d[0]).detach())
    rec_fake = model.decoder(reparameterize(fake_mu, fake_logvar, eps_d[1]).detach())
    loss_rec_rec, loss_fake_rec = _sse(rec.detach(), rec_rec).mean(), _sse(fake.detach(), rec_fake).mean()
    kls = _kl(rec_mu, rec_logvar).mean() + _kl(fake_mu, fake_logvar).mean()
    loss_d = s * (loss_rec * b_rec + kls * 0.5 * b_kl + g_r * 0.5 * b_rec * (loss_rec_rec + loss_fake_rec))
    g_d = torch.autograd.grad(loss_d, dec)
    for p in enc:
        p.requires_grad_(True)
    return loss_e, loss_d, g_e, g_d


def grads(loss, params):
    return torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)


def _trained(factory, data, iterations=60):
    """A model after a few training steps: the readings differ most once the decoder's output depends on z."""
    model = seeded(factory, 3)
    cfg = TrainConfig(iterations=iterations, batch_size=16, vae_warmup=10, lr_milestones=(), progress=False, log_every=10)
    Trainer(model, SoftIntroVAE(0.6, 0.3, 0.9), data, cfg).fit()
    return model.double()


@pytest.mark.parametrize("which", ["2d", "image"])
def test_default_soft_introvae_step_is_the_authors(which, one_thread):
    """Losses and both players' gradients of the default equal the transcribed authors' step, on the 2D model
    and on the image model after some training; the book's former reading (X_r detached) and Algorithm 2 as
    printed give other encoder gradients, so the comparison can tell them apart."""
    g = torch.Generator().manual_seed(5)
    if which == "2d":
        model, shape = _trained(lambda: ToyVAE(hidden=16, n_hidden_layers=1), ToySampler("8gaussians")), (2,)
    else:
        images = (torch.rand(64, 1, 8, 8, generator=g) * 255).to(torch.uint8)
        model, shape = _trained(lambda: ResNetVAE(1, 8, (4, 4), 3), TensorSampler(images)), (1, 8, 8)
    hp = {"beta_rec": 0.6, "beta_kl": 0.3, "beta_neg": 0.9, "gamma_r": 1e-8, "alpha": 2.0}
    x = torch.rand(8, *shape, generator=g, dtype=torch.float64)
    eps_e = torch.randn(4, 8, model.z_dim, generator=g, dtype=torch.float64)
    eps_d = torch.randn(2, 8, model.z_dim, generator=g, dtype=torch.float64)
    ref_e, ref_d, ref_ge, ref_gd = authors_step(model, x, eps_e, eps_d, hp)
    enc, dec = list(model.encoder.parameters()), list(model.decoder.parameters())
    norm = lambda gs: torch.sqrt(sum((t ** 2).sum() for t in gs))  # noqa: E731
    diff = {}
    for reading in ENCODER_GRAD_READINGS:
        obj = SoftIntroVAE(**hp, encoder_grad=reading)
        out_e = obj.encoder_loss(model, x, Noise(eps_e), obj.hparams)
        out_d = obj.decoder_loss(model, x, Noise(eps_d), obj.hparams, out_e.carry)
        torch.testing.assert_close(out_e.loss, ref_e)  # the losses agree under every reading
        torch.testing.assert_close(out_d.loss, ref_d)
        g_e, g_d = grads(out_e.loss, enc), grads(out_d.loss, dec)
        diff[reading] = (norm([a - b for a, b in zip(g_e, ref_ge)]) / norm(ref_ge)).item()
        # the decoder: the same up to the gamma_r-scaled term the authors route through D(Z_rf)
        torch.testing.assert_close(g_d, ref_gd, rtol=1e-6, atol=1e-9)
    assert diff["authors"] < 1e-10
    assert diff["detached"] > 1e-4 and diff["printed"] > 1e-4, diff


@pytest.mark.parametrize("gamma_r", [1e-8, 1.0])
@pytest.mark.parametrize("reading", ["detached", "printed"])
def test_soft_introvae_readings_match_algorithm_2_transcribed(gamma_r, reading):
    model = seeded(lambda: ToyVAE(hidden=16, n_hidden_layers=1), 3).double()
    hp = {"beta_rec": 0.6, "beta_kl": 0.3, "beta_neg": 0.9, "gamma_r": gamma_r, "alpha": 2.0}
    obj = SoftIntroVAE(**hp, encoder_grad=reading)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 2, generator=g, dtype=torch.float64)
    eps_e = torch.randn(4, 8, 2, generator=g, dtype=torch.float64)
    eps_d = torch.randn(2, 8, 2, generator=g, dtype=torch.float64)
    out_e = obj.encoder_loss(model, x, Noise(eps_e), obj.hparams)
    out_d = obj.decoder_loss(model, x, Noise(eps_d), obj.hparams, out_e.carry)
    ref_e, ref_d = reference_sivae(model, x, eps_e, eps_d, hp, reading=reading)
    torch.testing.assert_close(out_e.loss, ref_e)
    torch.testing.assert_close(out_d.loss, ref_d)
    enc, dec = list(model.encoder.parameters()), list(model.decoder.parameters())
    for ours, ref in ((out_e.loss, ref_e), (out_d.loss, ref_d)):
        for params in (enc, dec) if ours is out_d.loss else (enc,):
            for a, b in zip(grads(ours, params), grads(ref, params)):
                torch.testing.assert_close(a, b)
    # Negative control: without the stop-gradient on X_rf the decoder gradient differs (for large gamma_r),
    # so the comparison above can detect a misplaced stop-gradient.
    _, no_sg = reference_sivae(model, x, eps_e, eps_d, hp, sg_on_rerec=False, reading=reading)
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
