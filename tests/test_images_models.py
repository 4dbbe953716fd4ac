"""The residual image models: the block against the authors' order, shapes at several resolutions, eval() ==
train(), conditional labels."""

import pytest
import torch
import torch.nn.functional as F

from sivae_core.models.resnet import ConditionalResNetVAE, ResidualBlock, ResNetVAE, build_model
from sivae_core.objectives import Noise, SoftIntroVAE


@pytest.mark.parametrize("in_ch,out_ch", [(8, 8), (4, 8)])
def test_residual_block_normalizes_the_branch_before_the_addition(in_ch, out_ch):
    """The Soft-IntroVAE authors' block, transcribed: out = relu2(bn2(conv2(relu1(bn1(conv1(x))))) + identity),
    with leaky ReLUs, GroupNorm for BatchNorm and a 1x1 convolution as the identity when the width changes."""
    torch.manual_seed(0)
    block = ResidualBlock(in_ch, out_ch, norm="group")
    for norm in (block.norm1, block.norm2):  # non-trivial affine parameters, so a swapped order shows
        torch.nn.init.normal_(norm.weight, 1.0, 0.5)
        torch.nn.init.normal_(norm.bias, 0.0, 0.5)
    x = torch.randn(2, in_ch, 6, 6)
    identity = x if in_ch == out_ch else block.shortcut(x)
    out = F.leaky_relu(block.norm1(block.conv1(x)), 0.2)
    out = F.leaky_relu(block.norm2(block.conv2(out)) + identity, 0.2)
    torch.testing.assert_close(block(x), out, rtol=0, atol=0)
    summed = F.leaky_relu(block.norm2(block.conv2(F.leaky_relu(block.norm1(block.conv1(x)), 0.2)) + identity), 0.2)
    assert (block(x) - summed).abs().max() > 0.1  # IntroVAE's order (normalizing the sum) is a different function


@pytest.mark.parametrize("c,res,channels", [(1, 28, (8, 16)), (3, 32, (8, 16, 32)), (3, 64, (4, 8, 8, 8))])
def test_shapes(c, res, channels):
    m = ResNetVAE(c, res, channels, z_dim=6)
    x = torch.rand(3, c, res, res)
    mu, logvar, rec = m(x)
    assert mu.shape == logvar.shape == (3, 6)
    assert rec.shape == x.shape
    assert m.sample(2).shape == (2, c, res, res)
    assert m.input_dim == c * res * res  # s = 1 / input_dim in SoftIntroVAE


def test_paper_cifar_model_and_bad_resolution():
    m = ResNetVAE(3, 32, (64, 128, 256), 128)
    assert m.encoder.fc.in_features == 256 * 4 * 4 and m.z_dim == 128
    with pytest.raises(ValueError, match="divisible"):
        ResNetVAE(1, 28, (8, 16, 32), 4)
    with pytest.raises(ValueError, match="BatchNorm"):
        ResNetVAE(1, 28, (8, 16), 4, norm="batch")


def test_eval_mode_equals_train_mode_and_batches_are_independent():
    """The official code's BatchNorm gave garbage after eval(); GroupNorm is per sample."""
    torch.manual_seed(0)
    m = ResNetVAE(1, 28, (8, 16), 4)
    x = torch.rand(5, 1, 28, 28)
    z = torch.randn(5, 4)
    m.train()
    a = m(x), m.decode(z)
    m.eval()
    b = m(x), m.decode(z)
    for u, v in zip(a[0], b[0]):
        torch.testing.assert_close(u, v)
    torch.testing.assert_close(a[1], b[1])
    # encoding a concatenation == encoding each part (encode_both relies on it)
    torch.testing.assert_close(m.encode(x)[0][:2], m.encode(x[:2])[0], atol=1e-5, rtol=1e-5)


def test_conditional_model_uses_labels_and_tiles_them():
    torch.manual_seed(0)
    m = ConditionalResNetVAE(1, 28, (8, 16), 4, n_classes=10)
    x = torch.rand(4, 1, 28, 28)
    with pytest.raises(RuntimeError, match="set_labels"):
        m.encode(x)
    m.set_labels(torch.tensor([0, 1, 2, 3]))
    mu, _ = m.encode(torch.cat([x, x]))  # two batches: labels repeated
    torch.testing.assert_close(mu[:4], mu[4:])
    z = torch.randn(1, 4).repeat(2, 1)
    m.set_labels(torch.tensor([0, 7]))
    out = m.decode(z)
    assert not torch.allclose(out[0], out[1])  # the label changes the sample
    # one S-IntroVAE step runs with the model holding the labels
    m.set_labels(torch.tensor([0, 1, 2, 3]))
    obj = SoftIntroVAE(beta_neg=4)
    o = obj.encoder_loss(m, x, Noise(torch.randn(4, 4, 4)), obj.hparams)
    assert torch.isfinite(o.loss)
    assert build_model(m.config).n_classes == 10
