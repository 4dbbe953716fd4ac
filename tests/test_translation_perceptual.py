"""The perceptual loss as a view of the data: with VGG16 weights in torchvision's file layout (random here;
the ImageNet ones are not available offline) the book's unchanged objectives train on pixels plus VGG
features, and the squared error of a view is the pixel error plus the layer-weighted feature errors."""

import pytest
import torch

from sivae_core import TensorSampler, TrainConfig, Trainer
from sivae_core.elbo import reconstruction_error
from sivae_core.models.two_code import TwoCodeVAE
from sivae_core.translation.perceptual import (
    PerceptualSampler,
    PerceptualView,
    VGG16Features,
    require_vgg16,
)
from sivae_core.two_code_objectives import TwoCodeSoftIntroVAE

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def vgg(tmp_path):
    """A VGG16 feature net loaded from a torchvision-style state dict (classifier keys included and ignored)."""
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in VGG16Features().features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(state, tmp_path / "vgg16-397923af.pth")
    net = VGG16Features().load(require_vgg16(tmp_path / "vgg16-397923af.pth"))
    torch.testing.assert_close(net.features[0].weight, state["features.0.weight"])
    return net


def tiny() -> TwoCodeVAE:
    torch.manual_seed(1)
    return TwoCodeVAE(3, 64, 6, 4, (4, 8, 8, 8, 8), 16, (8, 8, 4, 4), 4)


def test_the_views_squared_error_is_pixels_plus_weighted_features(vgg):
    model = tiny()
    view = PerceptualView(model, vgg)
    x, z = torch.rand(2, 3, 64, 64), torch.randn(2, 10)
    with torch.no_grad():
        data = PerceptualSampler(TensorSampler(x), vgg)(2, torch.Generator().manual_seed(0))
        image = view.image(data)
        out = view.decode(z)
        feats_x, feats_y = vgg(image), vgg(model.decode(z))
    expected = ((model.decode(z) - image) ** 2).sum((1, 2, 3)) + sum(
        (a - b).pow(2).flatten(1).sum(1) * (3 * 64 * 64 / a[0].numel()) for a, b in zip(feats_x, feats_y))
    torch.testing.assert_close(reconstruction_error(data, out, view.event_dims), expected, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(view.encode(data)[0], model.encode(image)[0])


def test_the_objectives_train_through_the_view_and_vgg_stays_frozen(vgg):
    model = tiny()
    view = PerceptualView(model, vgg)
    frozen = vgg.features[0].weight.clone()
    sampler = PerceptualSampler(TensorSampler(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)), vgg)
    before = [p.clone() for p in model.decoder.parameters()]
    cfg = TrainConfig(iterations=1, batch_size=2, vae_warmup=0, lr_milestones=(), progress=False)
    Trainer(view, TwoCodeSoftIntroVAE(6, s=1 / model.input_dim), sampler, cfg).fit()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.decoder.parameters()))
    assert torch.equal(vgg.features[0].weight, frozen)
    assert not any("_vgg" in k or "features." in k for k in view.state_dict())


def test_missing_weights_name_the_file_and_the_url(tmp_path):
    with pytest.raises(RuntimeError, match=r"vgg16-397923af\.pth.*download\.pytorch\.org"):
        require_vgg16(tmp_path / "vgg16-397923af.pth")


def test_train_translation_trains_with_the_perceptual_loss_when_the_weights_are_there(vgg, tmp_path, monkeypatch):
    from sivae_core.data.cars3d import Cars3D
    from sivae_core.translation import perceptual, settings, train_translation

    weights = tmp_path / "vgg16-397923af.pth"  # written by the fixture
    monkeypatch.setattr(perceptual, "require_vgg16", lambda path=None: weights)
    cars = Cars3D(torch.randint(0, 256, (2, 96, 3, 64, 64), dtype=torch.uint8), ("a", "b"), tmp_path, "train")
    s = settings("sivae", fast=True, loss="perceptual", iterations=1, batch_size=2, class_dim=6, content_dim=4,
                 enc_channels=(4, 8, 8, 8, 8), enc_hidden=16, dec_channels=(8, 8, 4, 4), dec_hidden=4)
    model, trainer, info = train_translation(s, cars, progress=False, log_every=1)
    assert info["iterations"] == 1 and trainer.objective.scale(trainer.model) == 1 / (3 * 64 * 64)
    assert trainer.model.data_shape[0] > 3 * 64 * 64  # pixels and features
    assert isinstance(model, TwoCodeVAE)
