"""dpVAE on MNIST (Bhalodia, Lee & Elhabian 2020, Table 1): regularized VAEs with and without a decoupled prior.

    python -m sivae_core dpvae-images --fast --methods vae betavae_h factorvae infovae \\
        --out book/results/dpvae_mnist.json
    python -m sivae_core dpvae-images --fast --methods sivae --out book/results/dpvae_mnist_sivae.json

Every regularizer is trained twice with *the same* hyperparameters, once with the standard normal prior
and once with a coupling-flow prior (the paper tunes nothing for the dp versions). The model is the image
chapter's residual encoder/decoder (:func:`sivae_core.images.settings`, here with ``z_dim`` 16) and,
for the dp version, :class:`~sivae_core.flows.CouplingFlow` on its latent space. Table 1's metrics:

* ``fd``: Frechet distance of prior samples to the training set, on the book's offline MNIST feature
  network (not Inception: the numbers are on another scale than the paper's FID);
* ``lp_fd``: the same for *low-posterior* samples (the prior samples with the lowest aggregate posterior
  q(z), :func:`~sivae_core.metrics.latent.low_posterior`): samples from the latent pockets;
* ``skl``: KL(p || q) + KL(q || p) between the prior and q(z) in the representation space, by sampling;
* ``nll``: minus the importance-weighted log-likelihood of test images (nats per image, Gaussian decoder
  with variance 1 / (2 beta_rec), :func:`~sivae_core.metrics.iw_log_likelihood` with the model's prior).

``--methods sivae`` adds Soft-IntroVAE with and without a decoupled prior (the book's
:class:`~sivae_core.objectives.dp.DPSoftIntroVAE`) on the same networks and metrics.

The results file is rewritten after every run and runs already in it are skipped, so an interrupted
command loses at most the run in progress.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from ..data import load_dataset, to_float
from ..elbo import decoder_logvar
from ..metrics import frechet_distances, iw_log_likelihood, load_feature_net, recognized_classes
from ..metrics.latent import aggregate_log_prob, encode_all, leakage_score, sample_prior, symmetric_kl
from ..models.base import IntroVAEModel, seeded
from ..models.resnet import ResNetVAE
from ..objectives import Objective, make_objective
from ..results import budget_block, provenance, write_results
from ..training.samplers import TensorSampler
from ..training.trainer import Trainer
from .dpvae_2d import REGULARIZER_WEIGHTS
from .images import ImageSettings, settings
from .paper import PAPER_TABLE1_MNIST
from .schedules import train_config

__all__ = ["IMAGE_REGULARIZERS", "PAPER_TABLE1_MNIST", "LEAK_TAUS", "dpvae_settings", "make_image_model",
           "train_image_dpvae", "evaluate_image_dpvae", "add_arguments", "run"]

#: The MNIST settings: the book's per-image sum-of-squares reconstruction with ``beta_rec`` = 1, as in the image
#: chapter, and the weights of :data:`~sivae_core.experiments.dpvae_2d.REGULARIZER_WEIGHTS`.
IMAGE_REGULARIZERS: dict[str, dict[str, float]] = {m: {"beta_rec": 1.0, **w} for m, (_, w) in REGULARIZER_WEIGHTS.items()}

#: Thresholds of the leakage score LS(tau) for a 16-dimensional latent space (log N(0, I) at the origin
#: is -14.7 there).
LEAK_TAUS = [-40.0, -35.0, -30.0, -25.0, -20.0]


def dpvae_settings(fast: bool = True, **overrides: Any) -> ImageSettings:
    """The image budget (:func:`sivae_core.images.settings` for MNIST) with a 16-dimensional latent space."""
    return settings("mnist", "vae", fast=fast, **{"z_dim": 16, **overrides})


def make_image_model(dp: bool, s: ImageSettings, shape: tuple[int, int, int], flow_layers: int = 6,
                     flow_hidden: int = 128) -> IntroVAEModel:
    """The residual VAE of ``s``, with a ``flow_layers``-block coupling-flow prior when ``dp``."""
    c, res, _ = shape
    return seeded(lambda: ResNetVAE(c, res, s.channels, s.z_dim, s.norm, flow_layers if dp else 0, flow_hidden), s.seed)


def _objective(name: str, dp: bool, s: ImageSettings, iterations: int, n_train: int) -> Objective:
    if name == "sivae":
        hp = {"beta_rec": s.beta_rec, "beta_kl": s.beta_kl, "beta_neg": s.beta_neg, "gamma_r": s.gamma_r}
        return make_objective("dpsivae" if dp else "sivae", **hp)
    return make_objective(name, iterations=iterations, dataset_size=n_train, **IMAGE_REGULARIZERS[name])


def train_image_dpvae(name: str, dp: bool, s: ImageSettings, root: str | None = None,
                      progress: bool = False) -> tuple[IntroVAEModel, dict[str, Any]]:
    """Train regularizer ``name`` (with a decoupled prior when ``dp``) on ``s.dataset``; returns the model
    and its budget (iterations, CPU seconds).

    ``name == "sivae"`` trains Soft-IntroVAE (``dp``: :class:`~sivae_core.objectives.dp.DPSoftIntroVAE`, the
    book's decoupled-prior variant) with the image chapter's betas, so the introspective game and the decoupled
    prior are compared on the same networks, data and metrics. Every method runs through the one trainer."""
    data = load_dataset(s.dataset, "train", root, s.subset)
    model = make_image_model(dp, s, data.shape)
    iterations = s.planned_iterations(len(data))
    cfg = train_config(iterations, s.schedule(), batch_size=s.batch_size, lr_encoder=s.lr, lr_decoder=s.lr,
                       seed=s.seed, log_every=50, progress=progress)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    Trainer(model, _objective(name, dp, s, iterations, len(data)), TensorSampler(data.images), cfg).fit()
    model.eval()
    return model, {"iterations": iterations, "batch_size": s.batch_size, "epochs": iterations * s.batch_size / len(data),
                   "cpu_seconds": round(time.process_time() - cpu0, 1),
                   "wall_seconds": round(time.perf_counter() - wall0, 1), "torch_threads": torch.get_num_threads()}


@torch.no_grad()
def evaluate_image_dpvae(model: IntroVAEModel, dataset: str = "mnist", root: str | None = None, n_fake: int = 2000,
                         n_codes: int = 10_000, lp_pool: int = 20_000, n_test: int = 1000, iw_samples: int = 25,
                         seed: int = 0, beta_rec: float = 1.0) -> dict[str, Any]:
    """Table 1's metrics (``fd``, ``lp_fd``, ``skl``, ``nll``) plus the leakage score and the share of
    samples the feature network recognizes as digits (see the module docstring).

    q(z) is the mixture of ``n_codes`` encoded training images; the LP samples are the ``n_fake`` codes
    with the lowest q(z) out of ``lp_pool`` prior samples (the lowest 10% by default), so ``fd`` and
    ``lp_fd`` use the same number of images. ``nll`` uses ``iw_samples`` importance samples per test image
    (Bhalodia et al. 2020: 21,000; the estimate is a lower bound on log p(x) that tightens with more samples, for
    every model alike)."""
    model.eval()
    g = torch.Generator().manual_seed(10_000 + seed)
    train = to_float(load_dataset(dataset, "train", root).images[:n_codes])
    test = to_float(load_dataset(dataset, "test", root).images[:n_test])
    net = load_feature_net()
    mu, logvar = encode_all(model, train, batch_size=500)
    samples = torch.cat([model.sample(min(500, n_fake - i), g).float() for i in range(0, n_fake, 500)])
    z = sample_prior(model, lp_pool, g)
    lowest = aggregate_log_prob(z, mu, logvar, chunk=256).argsort()[:n_fake]
    lp_samples = torch.cat([model.decode(zc).float() for zc in z[lowest].split(500)])
    nll = -iw_log_likelihood(model, test, iw_samples, g, decoder_logvar(beta_rec))
    fd = frechet_distances(train, {"fd": samples, "lp_fd": lp_samples}, net)
    return {**fd, "skl": symmetric_kl(model, mu, logvar, 5000, g), "nll": float(nll.mean()),
            "leakage": leakage_score(model, mu, logvar, LEAK_TAUS, 5000, g).tolist(),
            "recognized": recognized_classes(samples, net, dataset)["recognized"],
            "lp_recognized": recognized_classes(lp_samples, net, dataset)["recognized"]}


def _budget(s: ImageSettings, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model: the image chapter's iterations; Bhalodia et al. (2020) do not state theirs, so no fraction."""
    cpu = [r["cpu_seconds"] for r in runs]
    text = (f"{runs[-1]['iterations']:,} iterations x batch {s.batch_size} ({runs[-1]['epochs']:.2f} epochs) per model, "
            f"channels {tuple(s.channels)}, z {s.z_dim}, {min(cpu) / 60:.0f}-{max(cpu) / 60:.0f} CPU-min each; "
            "the paper states no training budget")
    return budget_block(text, None)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", nargs="+", default=list(IMAGE_REGULARIZERS), choices=[*IMAGE_REGULARIZERS, "sivae"],
                   help="regularizers, and 'sivae' for Soft-IntroVAE with and without the decoupled prior")
    p.add_argument("--fast", action="store_true", help="the image chapter's CPU budget (1.3 epochs)")
    p.add_argument("--epochs", type=float)
    p.add_argument("--root", help="data root (default: $SIVAE_DATA, ./data, shared/data)")
    p.add_argument("--n-fake", type=int, default=2000, help="samples (and LP samples) per Frechet distance")
    p.add_argument("--iw-samples", type=int, default=25, help="importance samples per test image for the NLL")


def run(a: argparse.Namespace) -> int:
    s = dpvae_settings(a.fast, epochs=a.epochs, seed=a.seed)
    out = Path(a.out)
    runs = json.loads(out.read_text())["runs"] if out.exists() else []
    prov = provenance()
    evaluation = {"n_fake": a.n_fake, "lp_pool": 10 * a.n_fake, "n_codes": 10_000, "iw_samples": a.iw_samples,
                  "n_test": 1000}
    for method in a.methods:
        for dp in (False, True):
            if any(r["method"] == method and r["dp"] == dp and r["seed"] == a.seed for r in runs):
                continue
            model, budget = train_image_dpvae(method, dp, s, a.root, progress=True)
            rec = {"method": method, "dp": dp, "seed": a.seed, "commit": prov["commit"], **budget,
                   **evaluate_image_dpvae(model, s.dataset, a.root, **evaluation, beta_rec=s.beta_rec)}
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rec.items() if k != "leakage"}, flush=True)
            runs.append(rec)
            write_results(out, {"dataset": s.dataset, "settings": {k: v for k, v in vars(s).items() if k != "extra"},
                                "regularizers": IMAGE_REGULARIZERS, "leak_taus": LEAK_TAUS,
                                "evaluation": {**evaluation, "feature_net": "FeatureNet (sivae_core/assets), eval mode"},
                                "runs": runs, "budget": _budget(s, runs)},
                          provenance_override=prov)
    print(f"wrote {out}")
    return 0
