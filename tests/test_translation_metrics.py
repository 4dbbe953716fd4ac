"""Content-transfer metrics against a hand-computed case, the pair rule, the probes and the KL per code."""

import pytest
import torch

from sivae_core.metrics.transfer import (
    beats_baselines,
    code_kl,
    content_transfer,
    image_scores,
    linear_probe,
    lpips_scorer,
    transfer_pairs,
)


def constant_cars() -> torch.Tensor:
    """2 cars x 2 views of constant 8x8 RGB images: car c at view w has the value (1 + 2c + w) / 10."""
    values = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    return values[:, :, None, None, None].expand(2, 2, 3, 8, 8).clone()


def test_transfer_scores_match_a_hand_computation():
    images = constant_cars()
    pairs = torch.tensor([[0, 0, 1, 1], [1, 1, 0, 0]])  # (A, u, B, v): targets are car 0 at view 1, car 1 at view 0
    # A "transfer" that returns the content image plus 0.05: every pixel is off by (B's value + 0.05 - target).
    scores = content_transfer(lambda xc, xn: xn + 0.05, images, pairs)
    # Pair 1: target 0.2, content 0.4 -> error 0.25; pair 2: target 0.3, content 0.1 -> error -0.15.
    assert scores["transfer_mse"] == pytest.approx((0.25 ** 2 + 0.15 ** 2) / 2)
    assert scores["baseline_content_image_mse"] == pytest.approx((0.2 ** 2 + 0.2 ** 2) / 2)
    # Class image: car 0 at view 0 (0.1) vs 0.2, car 1 at view 1 (0.4) vs 0.3.
    assert scores["baseline_class_image_mse"] == pytest.approx(0.01)
    assert scores["baseline_class_image_psnr"] == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.01)
    assert scores["transfer_lpips"] is None
    # The transfer is worse than the class image (0.01) in MSE: it does not beat both baselines.
    assert beats_baselines(scores) == {"mse": False, "psnr": False, "ssim": False}
    assert beats_baselines({**scores, "transfer_mse": 0.005, "transfer_psnr": 30.0, "transfer_ssim": 1.0}) == {
        "mse": True, "psnr": True, "ssim": True}


def test_a_perfect_transfer_scores_zero_error_and_ssim_one():
    images = torch.rand(3, 4, 3, 16, 16)
    pairs = transfer_pairs(3, 4, 10, seed=1)

    def oracle(x_class, x_content):  # knows the answer: car of the class image at the view of the content image
        return torch.stack([images[a, v] for a, _, _, v in pairs])

    scores = content_transfer(oracle, images, pairs, batch_size=len(pairs))
    assert scores["transfer_mse"] == 0 and scores["transfer_ssim"] == pytest.approx(1.0)
    assert scores["baseline_class_image_mse"] > 0


def test_pairs_use_two_different_cars_and_views_and_are_reproducible():
    pairs = transfer_pairs(20, 96, 5000, seed=0)
    assert bool((pairs[:, 0] != pairs[:, 2]).all() and (pairs[:, 1] != pairs[:, 3]).all())
    assert set(pairs[:, 0].tolist()) == set(range(20)) and set(pairs[:, 2].tolist()) == set(range(20))
    assert torch.equal(pairs, transfer_pairs(20, 96, 5000, seed=0))


def test_image_scores_per_image():
    x = torch.zeros(2, 3, 16, 16)
    y = x.clone()
    y[1] += 0.1
    s = image_scores(y, x)
    assert s["mse"].tolist() == pytest.approx([0.0, 0.01])
    assert float(s["ssim"][0]) == pytest.approx(1.0)


def test_linear_probe_reads_separable_features_and_not_noise():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(50)
    informative = torch.nn.functional.one_hot(y, 4).float() + 0.1 * torch.randn(200, 4, generator=g)
    assert linear_probe(informative[:100], y[:100], informative[100:], y[100:], 4) == 1.0
    noise = torch.randn(200, 4, generator=g)
    assert linear_probe(noise[:100], y[:100], noise[100:], y[100:], 4) < 0.5


def test_code_kl_is_zero_at_the_prior_and_split_by_code():
    class Prior(torch.nn.Module):
        class_dim = 2

        def __init__(self, mu):
            super().__init__()
            self.mu = torch.nn.Parameter(mu)

        def encode(self, x):
            return self.mu.expand(len(x), -1), torch.zeros(len(x), 3)

    assert code_kl(Prior(torch.zeros(3)), torch.zeros(4, 1)) == {"kl_class": 0.0, "kl_content": 0.0}
    kl = code_kl(Prior(torch.tensor([1.0, 1.0, 2.0])), torch.zeros(4, 1))
    assert kl == pytest.approx({"kl_class": 1.0, "kl_content": 2.0})  # 0.5 * mu^2 summed per code


def test_lpips_says_what_to_download_when_it_cannot_run(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(RuntimeError, match="torchvision|alexnet-owt"):
        lpips_scorer()
