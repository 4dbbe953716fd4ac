"""The style-based model: equalized lr, fused resampling, fade-in, split-independent randomness, the
paper's size, and training steps with the book's Soft-IntroVAE objective."""

import math
import os
import time

import pytest
import torch
import torch.nn.functional as F

from sivae_core.models import seeded
from sivae_core.models.style import (
    ADAM_BETAS,
    StyleConfig,
    StyleVAE,
    cpu_config,
    fade_real,
    gpu_config,
    paper_config,
)
from sivae_core.models.style.layers import EqualConv2d, EqualLinear
from sivae_core.objectives import Noise, SoftIntroVAE

pytestmark = pytest.mark.usefixtures("one_thread")

#: The paper's model as the authors' code builds it for configs/celeba-hq256.yaml (counted there).
PAPER_PARAMETERS = 53_926_805


def tiny(resolution: int = 16, mixing: float = 0.9) -> StyleVAE:
    """A small model with *non-zero* noise weights: with the zero initialisation a test of the noise
    would pass even if the noise were wrong."""
    widths = (16, 16, 8, 8, 8)[: resolution.bit_length() - 2]
    cfg = StyleConfig(resolution=resolution, channels=widths, z_dim=8, w_dim=8, mapping_units=8,
                      style_mixing_prob=mixing)
    model = seeded(lambda: StyleVAE(cfg), 0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("noise.weight"):
                p.normal_()
    return model


# ---------------------------------------------------------------------------------------------- layers
@pytest.mark.parametrize("fan_in", [16, 1024])
def test_equalized_linear_scales_stored_weights_at_run_time(fan_in):
    torch.manual_seed(0)
    layer = EqualLinear(fan_in, 256, gain=math.sqrt(2.0), lr_mul=0.1)
    assert layer.weight.std().item() == pytest.approx(10.0, rel=0.05)  # stored N(0, 1 / lr_mul^2)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(4, fan_in)
    scale = math.sqrt(2.0) / math.sqrt(fan_in) * 0.1
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight * scale, layer.bias * 0.1))
    # effective weights: He initialisation
    assert (layer.weight * scale).std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.05)


def test_equalized_lr_moves_every_layer_at_the_same_relative_speed():
    """The point of the run-time scale: one Adam step changes each layer's effective weights by the same
    fraction of their initial size, whatever the fan-in (plain He-initialised weights would not)."""
    torch.manual_seed(0)
    relative = []
    for fan_in in (16, 4096):
        layer = EqualLinear(fan_in, 64)
        w0 = (layer.weight * layer.scale).detach().clone()
        opt = torch.optim.Adam(layer.parameters(), lr=1e-2, betas=ADAM_BETAS)
        layer(torch.randn(32, fan_in)).square().mean().backward()
        opt.step()
        change = (layer.weight * layer.scale).detach() - w0
        relative.append((change.abs().mean() / w0.abs().mean()).item())
    assert relative[0] == pytest.approx(relative[1], rel=0.05)


def test_conv_scale_uses_the_fan_in_of_the_kernel():
    conv = EqualConv2d(8, 4, 3, gain=0.03)
    x = torch.randn(2, 8, 5, 5)
    expected = F.conv2d(x, conv.weight * 0.03 / math.sqrt(8 * 9), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)


@pytest.mark.parametrize("resample", ["up", "down"])
def test_fused_resampling_equals_resample_then_convolve(resample):
    torch.manual_seed(0)
    plain = EqualConv2d(6, 5, 3, resample=resample)
    fused = EqualConv2d(6, 5, 3, resample=resample, fused=True)
    fused.load_state_dict(plain.state_dict())
    with torch.no_grad():
        fused.bias.normal_()
        plain.bias.copy_(fused.bias)
    x = torch.randn(3, 6, 8, 8)
    reference = F.conv2d(F.interpolate(x, scale_factor=2.0) if resample == "up" else x,
                         plain.weight * plain.scale, plain.bias, padding=1)
    if resample == "down":
        reference = F.avg_pool2d(reference, 2)
    torch.testing.assert_close(plain(x), reference)
    torch.testing.assert_close(fused(x), reference, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- sizes
def test_paper_config_has_the_authors_parameter_count():
    model = StyleVAE(paper_config())
    n = model.num_parameters()
    print(f"paper config: {n:,} parameters")
    assert n == PAPER_PARAMETERS
    assert model.data_shape == (3, 256, 256) and model.z_dim == 512
    assert [b.conv.weight.shape[0] for b in model.decoder.blocks] == [512, 512, 512, 512, 256, 128, 64]


def test_presets_build_at_their_resolutions():
    for cfg, res in ((cpu_config(), 32), (gpu_config(64), 64), (gpu_config(128), 128)):
        model = StyleVAE(cfg)
        assert model.data_shape == (3, res, res)
        assert len(model.decoder.to_rgb) == len(model.encoder.from_rgb) == res.bit_length() - 2
    with pytest.raises(ValueError, match="channel counts"):
        StyleConfig(resolution=64, channels=(8, 8))


def test_stage_sets_data_shape_and_refuses_impossible_stages():
    model = tiny(16)
    model.set_stage(8, 0.25)
    assert model.data_shape == (3, 8, 8) and model.input_dim == 192
    assert model.encoder.stage == model.decoder.stage == model.stage
    mu, logvar = model.encode(torch.rand(2, 3, 8, 8))
    assert mu.shape == logvar.shape == (2, 8)
    with pytest.raises(ValueError, match="expects a batch"):
        model.encode(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="grows up to 16x16"):
        model.set_stage(32)
    with pytest.raises(ValueError, match="nothing to fade in"):
        model.set_stage(4, 0.5)


# ---------------------------------------------------------------------------------------------- fade-in
def decode_in_step(model: StyleVAE, z: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
    """Decode in the same step and call as every other decoding of the test: the same noise draws."""
    model.set_stage(resolution, alpha)
    model.begin_step(step=3, seed=11, per_rank_batch=z.shape[0])
    with torch.no_grad():
        out = model.decode(z)
    model.end_step()
    return out


def test_decoder_fade_in_at_alpha_0_is_the_previous_output_upsampled():
    model = tiny(16)
    z = torch.randn(4, 8)
    grown = decode_in_step(model, z, 16, 0.0)
    previous = decode_in_step(model, z, 8, 1.0)
    torch.testing.assert_close(grown, F.interpolate(previous, scale_factor=2.0), atol=1e-6, rtol=0)
    assert not torch.allclose(grown, decode_in_step(model, z, 16, 1.0))


def test_decoder_fade_in_at_alpha_1_is_the_new_block_and_blends_linearly_between():
    model = tiny(16)
    z = torch.randn(4, 8)
    new, old = decode_in_step(model, z, 16, 1.0), decode_in_step(model, z, 16, 0.0)
    with torch.no_grad():  # the old ToRGB must not matter once the new block is fully in
        model.decoder.to_rgb[1].weight.mul_(3.0)
    torch.testing.assert_close(decode_in_step(model, z, 16, 1.0), new, atol=0, rtol=0)
    assert not torch.allclose(decode_in_step(model, z, 16, 0.0), old)
    with torch.no_grad():
        model.decoder.to_rgb[1].weight.div_(3.0)
    torch.testing.assert_close(decode_in_step(model, z, 16, 0.3), torch.lerp(old, new, 0.3), atol=1e-6, rtol=1e-5)


def test_encoder_fade_in_at_alpha_0_reads_the_downsampled_image_through_the_old_path():
    model = tiny(16)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    model.set_stage(16, 0.0)
    grown = model.encoder(x)
    model.set_stage(8, 1.0)
    previous = model.encoder(F.avg_pool2d(x, 2))
    torch.testing.assert_close(grown, previous, atol=1e-6, rtol=1e-5)
    # the real images of a fade blend the same way: at alpha 0 the downsampled image, upsampled
    torch.testing.assert_close(fade_real(x, 0.0), F.interpolate(F.avg_pool2d(x, 2), scale_factor=2.0))
    torch.testing.assert_close(fade_real(x, 1.0), x)


def test_encoder_fade_in_at_alpha_1_ignores_the_old_from_rgb():
    model = tiny(16)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    model.set_stage(16, 1.0)
    new = model.encoder(x)
    with torch.no_grad():
        model.encoder.from_rgb[1].weight.mul_(3.0)
    torch.testing.assert_close(model.encoder(x), new, atol=0, rtol=0)
    model.set_stage(16, 0.5)
    half = model.encoder(x)
    with torch.no_grad():
        model.encoder.from_rgb[1].weight.div_(3.0)
    assert not torch.allclose(model.encoder(x), half)


def test_fade_in_runs_under_bf16_autocast():
    """Under autocast the old path (a 1x1 conv) comes out in bf16 and the new block (Instance Norm) in float32:
    the blend must accept both (the first GPU run failed there, in the encoder's torch.lerp)."""
    model = tiny(16)
    model.set_stage(16, 0.5)
    model.begin_step(0, 0, per_rank_batch=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mu, _ = model.encode(torch.rand(2, 3, 16, 16) * 2 - 1)
        image = model.decode(mu)
    assert image.shape == (2, 3, 16, 16) and torch.isfinite(image.float()).all()


# ---------------------------------------------------------------------------------------------- randomness
def one_step_calls(model: StyleVAE, z: torch.Tensor, z_f: torch.Tensor, rank: int, world: int) -> list[torch.Tensor]:
    """The decoder calls of one Soft-IntroVAE step: prior samples alone, reconstructions alone, both
    concatenated (``decode_both``); ``z``, ``z_f`` are this rank's rows."""
    model.begin_step(step=5, seed=7, rank=rank, world=world, per_rank_batch=z.shape[0])
    model.mark_prior(z_f)
    with torch.no_grad():
        out = [model.decode(z_f), model.decode(z), model.decode(torch.cat([z, z_f]))]
    model.end_step()
    return out


@pytest.mark.parametrize("world", [2, 4])
def test_random_draws_do_not_depend_on_how_the_batch_is_split(world):
    model = tiny(16, mixing=1.0)
    batch = 8
    b = batch // world
    torch.manual_seed(1)
    z, z_f = torch.randn(batch, 8), torch.randn(batch, 8)
    whole = one_step_calls(model, z, z_f, rank=0, world=1)
    ranks = [one_step_calls(model, z[r * b:(r + 1) * b], z_f[r * b:(r + 1) * b], r, world) for r in range(world)]
    for call in range(2):  # single calls: ranks' rows in order
        torch.testing.assert_close(torch.cat([out[call] for out in ranks]), whole[call], atol=1e-6, rtol=0)
    # the concatenated call: every rank holds [its z rows; its z_f rows]
    first = torch.cat([out[2][:b] for out in ranks])
    second = torch.cat([out[2][b:] for out in ranks])
    torch.testing.assert_close(torch.cat([first, second]), whole[2], atol=1e-6, rtol=0)


def losses_and_grads(model: StyleVAE, x, eps_e, eps_d, rank: int, world: int):
    """Both Soft-IntroVAE losses of one step on this rank's rows, and their gradients."""
    obj = SoftIntroVAE(beta_rec=0.05, beta_kl=0.2, beta_neg=512, s=5e-6)
    model.begin_step(step=2, seed=3, rank=rank, world=world, per_rank_batch=x.shape[0])
    out_e = obj.encoder_loss(model, x, Noise(eps_e), obj.hparams)
    g_e = torch.autograd.grad(out_e.loss, list(model.encoder.parameters()), allow_unused=True)
    out_d = obj.decoder_loss(model, x, Noise(eps_d), obj.hparams, out_e.carry)
    g_d = torch.autograd.grad(out_d.loss, list(model.decoder.parameters()), allow_unused=True)
    model.end_step()
    grads = [g for g in g_e + g_d if g is not None]
    return torch.stack([out_e.loss.detach(), out_d.loss.detach()]), grads


def test_a_whole_step_split_over_ranks_averages_to_the_one_process_step():
    """What data parallelism computes (per-rank losses and gradients, averaged) equals the one-process step,
    with the trainer's noise sliced by rank the same way (style mixing on, non-zero noise weights)."""
    model, batch, world = tiny(16, mixing=1.0), 4, 2
    b = batch // world
    torch.manual_seed(2)
    x = torch.rand(batch, 3, 16, 16) * 2 - 1
    eps_e, eps_d = torch.randn(4, batch, 8), torch.randn(2, batch, 8)
    loss, grads = losses_and_grads(model, x, eps_e, eps_d, 0, 1)
    parts = [losses_and_grads(model, x[r * b:(r + 1) * b], eps_e[:, r * b:(r + 1) * b], eps_d[:, r * b:(r + 1) * b],
                              r, world) for r in range(world)]
    torch.testing.assert_close(sum(p[0] for p in parts) / world, loss, rtol=1e-5, atol=0)
    for i, g in enumerate(grads):
        torch.testing.assert_close(sum(p[1][i] for p in parts) / world, g, rtol=1e-4, atol=1e-9)


def test_noise_and_mixing_are_really_drawn():
    """Guards the equivalence test against passing vacuously: the noise changes the output, differs between
    calls and steps, and prior samples are mixed (only they: reconstruction rows are not)."""
    model = tiny(16, mixing=1.0)
    torch.manual_seed(1)
    z, z_f = torch.randn(4, 8), torch.randn(4, 8)
    prior_alone, rec_alone, both = one_step_calls(model, z, z_f, 0, 1)
    again = one_step_calls(model, z, z_f, 0, 1)
    torch.testing.assert_close(again[0], prior_alone, atol=0, rtol=0)  # same step, same draws
    assert not torch.allclose(both[:4], rec_alone)  # another call: other noise
    model.use_noise = False
    model.set_stage(16)
    with torch.no_grad():
        plain_styles = model.decoder.styles(z_f)
        model.begin_step(step=5, seed=7, per_rank_batch=4)
        model.mark_prior(z_f)
        mixed_styles = model.decoder.styles(torch.cat([z, z_f]))
    model.end_step()
    assert model.decoder.plan is None  # end_step forgets the plan
    torch.testing.assert_close(mixed_styles[:4], model.decoder.styles(z), atol=0, rtol=0)
    differs = (mixed_styles[4:] != plain_styles).any(dim=(0, 2))
    assert differs.any() and not differs[0]  # the first layer always keeps w(z_f)
    assert bool(differs[int(differs.to(torch.int64).argmax()):].all())  # from the crossover on: w(z2)


def test_sampling_is_reproducible_with_a_generator_outside_steps():
    model = tiny(16)
    a = model.sample(3, torch.Generator().manual_seed(4))
    b = model.sample(3, torch.Generator().manual_seed(4))
    c = model.sample(5, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert c.shape == (5, 3, 16, 16)
    model.begin_step(step=0, seed=0, per_rank_batch=4)
    with pytest.raises(ValueError, match="whole per-rank batches"):
        model.decode(torch.randn(3, 8))
    model.end_step()


# ---------------------------------------------------------------------------------------------- training
def train_step(model: StyleVAE, x: torch.Tensor, opts, step: int) -> dict[str, float]:
    """One Algorithm-2 step as the trainer takes it (encoder update, then decoder update)."""
    obj = SoftIntroVAE(beta_rec=0.05, beta_kl=0.2, beta_neg=512, s=5e-6)
    g = torch.Generator().manual_seed(step)
    n_e, n_d = obj.noise_draws
    eps_e, eps_d = (torch.randn(k, x.shape[0], model.z_dim, generator=g) for k in (n_e, n_d))
    model.begin_step(step=step, seed=0, per_rank_batch=x.shape[0])
    out_e = obj.encoder_loss(model, x, Noise(eps_e), obj.hparams)
    opts[0].zero_grad(set_to_none=True)
    out_e.loss.backward(inputs=list(model.encoder.parameters()))
    opts[0].step()
    out_d = obj.decoder_loss(model, x, Noise(eps_d), obj.hparams, out_e.carry)
    opts[1].zero_grad(set_to_none=True)
    out_d.loss.backward(inputs=list(model.decoder.parameters()))
    opts[1].step()
    model.end_step()
    return {"enc": float(out_e.loss.detach()), "dec": float(out_d.loss.detach())}


def grow_and_train(model: StyleVAE, batch: int) -> dict[int, float]:
    """One step at every resolution, mid-fade (alpha 0.5) wherever there is a fade; seconds per step."""
    seconds = {}
    for r in model.config.resolutions:
        model.set_stage(r, 1.0 if r == 4 else 0.5)
        opts = [torch.optim.Adam(getattr(model, part).parameters(), lr=1.5e-3, betas=ADAM_BETAS)
                for part in ("encoder", "decoder")]
        before = [p.detach().clone() for p in (model.encoder.blocks[model.stage.level].conv.weight,
                                               model.decoder.blocks[model.stage.level].conv.weight)]
        x = fade_real(torch.rand(batch, 3, r, r) * 2 - 1, model.stage.alpha)
        start = time.perf_counter()
        losses = train_step(model, x, opts, step=r)
        seconds[r] = time.perf_counter() - start
        assert all(math.isfinite(v) for v in losses.values()), (r, losses)
        assert not torch.equal(before[0], model.encoder.blocks[model.stage.level].conv.weight)
        assert not torch.equal(before[1], model.decoder.blocks[model.stage.level].conv.weight)
    return seconds


def test_cpu_config_trains_one_step_at_every_resolution():
    seconds = grow_and_train(seeded(lambda: StyleVAE(cpu_config()), 0), batch=8)
    print("cpu32 batch 8 step seconds:", {r: round(s, 3) for r, s in seconds.items()})


def test_paper_config_trains_one_step_at_the_small_resolutions():
    """The paper's blocks at 4x4..16x16 (its widths, z = w = 512), in the default suite; every resolution
    up to 256x256 is the SIVAE_SLOW test below."""
    small = StyleConfig(resolution=16, channels=paper_config().channels[:3])
    seconds = grow_and_train(seeded(lambda: StyleVAE(small), 0), batch=2)
    print("paper widths at 4..16, batch 2 step seconds:", {r: round(s, 2) for r, s in seconds.items()})


@pytest.mark.skipif(not os.environ.get("SIVAE_SLOW"),
                    reason="the paper config at every resolution 4..256 takes minutes on a CPU; set SIVAE_SLOW=1")
def test_paper_config_trains_one_step_at_every_resolution():
    model = seeded(lambda: StyleVAE(paper_config()), 0)
    assert model.num_parameters() == PAPER_PARAMETERS
    seconds = grow_and_train(model, batch=2)
    print("paper batch 2 step seconds:", {r: round(s, 2) for r, s in seconds.items()})
