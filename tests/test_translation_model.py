"""The two-encoder AdaIN model: the IntroVAEModel contract, which encoder each loss term reaches, AdaIN,
and content transfer (class code of the first image, content code of the second)."""

import pytest
import torch

from sivae_core.elbo import reconstruction_error
from sivae_core.models.two_code import TwoCodeVAE, adain
from sivae_core.two_code_objectives import code_kls

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"class_dim": 6, "content_dim": 4, "enc_channels": (4, 8, 8, 8, 8), "enc_hidden": 16,
        "dec_channels": (8, 8, 4, 4), "dec_hidden": 4}


def tiny() -> TwoCodeVAE:
    torch.manual_seed(0)
    return TwoCodeVAE(**TINY)


def test_contract_shapes_and_code_order():
    model = tiny()
    x = torch.rand(3, 3, 64, 64)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, 10) and model.z_dim == 10
    # encode returns [class, content]: the class part is the class encoder's mean, the content part the other's.
    assert torch.equal(mu[:, :6], model.encoder.class_encoder(x).chunk(2, -1)[0])
    assert torch.equal(logvar[:, 6:], model.encoder.content_encoder(x).chunk(2, -1)[1])
    out = model.decode(mu).detach()
    assert out.shape == x.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    assert model.sample(2).shape == (2, 3, 64, 64)


def grads(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("code", ["class", "content"])
def test_kl_of_a_code_reaches_only_its_encoder(code):
    model = tiny()
    mu, logvar = model.encode(torch.rand(2, 3, 64, 64))
    kl_class, kl_content = code_kls(mu, logvar, model.class_dim)  # the split the objectives use
    (kl_class if code == "class" else kl_content).sum().backward()
    own, other = (model.encoder.class_encoder, model.encoder.content_encoder)[:: 1 if code == "class" else -1]
    assert grads(own) > 0
    assert grads(other) == 0 and grads(model.decoder) == 0


def test_reconstruction_reaches_both_encoders_and_the_decoder():
    model = tiny()
    x = torch.rand(2, 3, 64, 64)
    mu, _ = model.encode(x)
    reconstruction_error(x, model.decode(mu), 3).sum().backward()
    assert grads(model.encoder.class_encoder) > 0 and grads(model.encoder.content_encoder) > 0
    assert grads(model.decoder.modulation) > 0  # the class code enters the decoder through AdaIN only


def test_adain_normalizes_each_feature_map_then_applies_the_class_scale_and_shift():
    h = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]])  # one map: mean 4, variance 5
    out = adain(h, torch.tensor([[2.0]]), torch.tensor([[10.0]]), eps=0.0)
    expected = (h - 4.0) / 5.0 ** 0.5 * 2.0 + 10.0
    torch.testing.assert_close(out, expected)


def test_transfer_takes_the_class_code_of_the_first_image_and_the_content_code_of_the_second():
    model = tiny().eval()
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    mu_a, _ = model.encode(a)
    mu_b, _ = model.encode(b)
    with torch.no_grad():
        expected = model.decode(torch.cat([mu_a[:, :6], mu_b[:, 6:]], dim=1))
    torch.testing.assert_close(model.transfer(a, b), expected)
    assert not torch.allclose(model.transfer(a, b), model.transfer(b, a))


def test_the_decoder_builds_the_image_from_the_content_code_and_styles_it_with_the_class_code():
    """Changing only the class code changes the image (through AdaIN); the linear layers see content only."""
    model = tiny().eval()
    z = torch.randn(1, 10)
    z2 = z.clone()
    z2[:, :6] += 1.0
    with torch.no_grad():
        assert not torch.allclose(model.decode(z), model.decode(z2))
    assert model.decoder.fc[0].in_features == 4  # content_dim


def test_config_round_trip_and_size_errors():
    model = tiny()
    clone = TwoCodeVAE.from_config(model.config)
    clone.load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="not divisible"):
        TwoCodeVAE(size=40, **TINY)
