"""Soft-IntroVAE with one beta_neg per code, and the autoencoder, against hand computations on a tiny linear
model whose code is [class (2 dims), content (1 dim)] and whose data are 3-d points."""

import torch
from torch import nn

from sivae_core import TensorSampler, TrainConfig, Trainer
from sivae_core.models.base import IntroVAEModel
from sivae_core.objectives import Noise, SoftIntroVAE
from sivae_core.two_code_objectives import Autoencoder, TwoCodeSoftIntroVAE, code_kls

B_REC, B_KL, B_NEG_CLASS, B_NEG_CONTENT, GAMMA_R = 0.5, 1.0, 3.0, 7.0, 0.1


class Tiny(IntroVAEModel):
    def __init__(self):
        torch.manual_seed(0)
        super().__init__(nn.Linear(3, 6), nn.Linear(3, 3), (3,), 3)
        self.class_dim = 2


def kl(mu, logvar):
    return 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).sum(-1)


def hand_encoder_loss(m, x, eps):
    """Algorithm 2's encoder loss written out, with beta_neg_class on dims 0-1 and beta_neg_content on dim 2."""
    s = 1 / 3
    h = m.encoder(x)
    mu, logvar = h[:, :3], h[:, 3:]
    z = mu + eps[0] * (0.5 * logvar).exp()
    x_r, x_f = m.decoder(z), m.decoder(eps[1])
    real = s * (B_REC * ((x_r - x) ** 2).sum(-1) + B_KL * kl(mu, logvar)).mean()
    exp_terms = []
    for fake, e in ((x_r.detach(), eps[2]), (x_f.detach(), eps[3])):
        hf = m.encoder(fake)
        mu_f, logvar_f = hf[:, :3], hf[:, 3:]
        rec = ((m.decoder(mu_f + e * (0.5 * logvar_f).exp()) - fake) ** 2).sum(-1)
        kl_class, kl_content = kl(mu_f[:, :2], logvar_f[:, :2]), kl(mu_f[:, 2:], logvar_f[:, 2:])
        energy = B_REC * rec + B_NEG_CLASS * kl_class + B_NEG_CONTENT * kl_content
        exp_terms.append(torch.exp(-2 * s * energy).mean() / 2)
    return real + 0.5 * (exp_terms[0] + exp_terms[1]), z.detach()


def hand_decoder_loss(m, x, z, z_f, eps):
    """Algorithm 2's decoder loss: the fakes' whole KL weighted by beta_kl (one beta_kl for both codes)."""
    s = 1 / 3
    x_r, x_f = m.decoder(z), m.decoder(z_f)
    total = 0
    for fake, e in ((x_r, eps[0]), (x_f, eps[1])):
        h = m.encoder(fake)
        mu, logvar = h[:, :3], h[:, 3:]
        with torch.no_grad():
            rerec = m.decoder(mu + e * (0.5 * logvar).exp())
        total = total + (GAMMA_R * B_REC * ((fake - rerec) ** 2).sum(-1) + B_KL * kl(mu, logvar)).mean()
    return s * (B_REC * ((x_r - x) ** 2).sum(-1).mean() + 0.5 * total)


def objective():
    return TwoCodeSoftIntroVAE(2, B_REC, B_KL, B_NEG_CLASS, B_NEG_CONTENT, GAMMA_R)


def test_encoder_and_decoder_losses_match_the_hand_computation():
    m, obj = Tiny(), objective()
    x = torch.randn(5, 3)
    eps_e, eps_d = torch.randn(4, 5, 3), torch.randn(2, 5, 3)
    out_e = obj.encoder_loss(m, x, Noise(eps_e), obj.hparams)
    expected_e, z = hand_encoder_loss(m, x, eps_e)
    torch.testing.assert_close(out_e.loss, expected_e)
    out_d = obj.decoder_loss(m, x, Noise(eps_d), obj.hparams, out_e.carry)
    torch.testing.assert_close(out_d.loss, hand_decoder_loss(m, x, z, eps_e[1], eps_d))
    # The per-code KLs of the fakes are logged and add up to the fakes' whole KL.
    torch.testing.assert_close(out_e.terms["kl_fake_rec_class"] + out_e.terms["kl_fake_rec_content"],
                               out_e.terms["kl_fake_rec"])


def test_equal_betas_give_soft_introvae_and_each_beta_neg_acts_on_its_own_code():
    m, x = Tiny(), torch.randn(5, 3)
    eps = torch.randn(4, 5, 3)
    plain = SoftIntroVAE(B_REC, B_KL, 5.0, GAMMA_R)
    same = TwoCodeSoftIntroVAE(2, B_REC, B_KL, 5.0, 5.0, GAMMA_R)
    torch.testing.assert_close(same.encoder_loss(m, x, Noise(eps), same.hparams).loss,
                               plain.encoder_loss(m, x, Noise(eps), plain.hparams).loss)
    swapped = TwoCodeSoftIntroVAE(2, B_REC, B_KL, B_NEG_CONTENT, B_NEG_CLASS, GAMMA_R)
    a = objective().encoder_loss(m, x, Noise(eps), objective().hparams).loss
    b = swapped.encoder_loss(m, x, Noise(eps), swapped.hparams).loss
    assert not torch.allclose(a, b)


def test_code_kls_split_the_whole_kl():
    mu, logvar = torch.randn(4, 5), torch.randn(4, 5)
    kl_class, kl_content = code_kls(mu, logvar, 3)
    torch.testing.assert_close(kl_class + kl_content, kl(mu, logvar))
    torch.testing.assert_close(kl_class, kl(mu[:, :3], logvar[:, :3]))


def test_autoencoder_loss_decodes_the_posterior_mean():
    m, obj = Tiny(), Autoencoder(beta_rec=B_REC)
    x = torch.randn(5, 3)
    out = obj.encoder_loss(m, x, Noise(torch.zeros(0, 5, 3)), obj.hparams)
    mu = m.encoder(x)[:, :3]
    torch.testing.assert_close(out.loss, B_REC * ((m.decoder(mu) - x) ** 2).sum(-1).mean())


def test_the_trainer_runs_both_objectives_on_the_tiny_model():
    for obj in (objective(), Autoencoder(B_REC)):
        m = Tiny()
        before = [p.clone() for p in m.parameters()]
        cfg = TrainConfig(iterations=3, batch_size=4, vae_warmup=0, lr_milestones=(), progress=False, log_every=1)
        trainer = Trainer(m, obj, TensorSampler(torch.randn(16, 3)), cfg).fit()
        assert len(trainer.history) == 3
        assert all(not torch.equal(a, b) for a, b in zip(before, m.parameters()))
