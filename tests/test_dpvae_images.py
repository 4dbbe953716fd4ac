"""The MNIST dpVAE table's runner (sivae_core.experiments.dpvae_images): model construction, the prior used by
the NLL, and the command line's skip-what-is-done resume."""

import json

import torch

from sivae_core.cli import main
from sivae_core.elbo import standard_normal_log_prob
from sivae_core.experiments.dpvae_images import dpvae_settings, make_image_model, train_image_dpvae
from sivae_core.metrics import iw_log_likelihood
from sivae_core.metrics.likelihood import LOG_HALF
from sivae_core.priors import DecoupledPrior, StandardNormal

from .conftest import require_data


def test_the_dp_model_differs_from_the_vae_only_by_its_flow():
    s = dpvae_settings(True)
    vae, dp = make_image_model(False, s, (1, 28, 28)), make_image_model(True, s, (1, 28, 28))
    assert type(dp.prior) is DecoupledPrior and type(vae.prior) is StandardNormal
    n_flow = sum(p.numel() for p in dp.prior.parameters())
    assert sum(p.numel() for p in dp.parameters()) - n_flow == sum(p.numel() for p in vae.parameters())


def test_iw_log_likelihood_uses_the_decoupled_prior():
    """At initialization the coupling flow is the identity (zeroed last layers), so the decoupled prior is
    N(0, I) and both NLLs agree; after perturbing the flow they must differ."""
    torch.manual_seed(0)
    model = make_image_model(True, dpvae_settings(True), (1, 28, 28)).eval()
    x = torch.rand(8, 1, 28, 28)

    def iw():
        return iw_log_likelihood(model, x, 4, torch.Generator().manual_seed(1), LOG_HALF)

    def iw_standard_normal():
        flow, model.prior = model.prior, StandardNormal(model.z_dim)
        try:
            return iw()
        finally:
            model.prior = flow

    assert torch.allclose(model.prior.log_prob(x.new_ones(3, model.z_dim)), standard_normal_log_prob(x.new_ones(3, model.z_dim)))
    assert torch.allclose(iw(), iw_standard_normal(), atol=1e-4)
    with torch.no_grad():
        for p in model.prior.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert (iw() - iw_standard_normal()).abs().max() > 1e-2


def test_cli_writes_both_priors_and_skips_finished_runs(tmp_path, one_thread):
    require_data("mnist")
    out = tmp_path / "dp.json"
    args = ["dpvae-images", "--methods", "vae", "--fast", "--epochs", "0.01", "--n-fake", "500", "--iw-samples", "2",
            "--out", str(out)]
    assert main(args) == 0
    first = json.loads(out.read_text())
    assert [(r["method"], r["dp"]) for r in first["runs"]] == [("vae", False), ("vae", True)]
    for r in first["runs"]:
        assert r["iterations"] == 9 and all(torch.isfinite(torch.tensor(r[k])) for k in ("fd", "lp_fd", "skl", "nll"))
        assert r["nll"] > 0 and r["fd"] > 0
    assert main(args) == 0  # nothing left to do: the file's runs are kept as they are
    assert json.loads(out.read_text())["runs"] == first["runs"]


def test_dp_soft_introvae_trains_its_flow_through_the_shared_trainer(one_thread):
    """``sivae`` with ``dp`` runs DPSoftIntroVAE in the two-player trainer: the flow (zero-initialized last
    layers, i.e. the identity) must move, which only the decoder's prior-fit term can do."""
    require_data("mnist")
    s = dpvae_settings(True, iterations=3)
    model, budget = train_image_dpvae("sivae", True, s)
    assert type(model.prior) is DecoupledPrior and budget["iterations"] == 3
    last = [p for n, p in model.prior.named_parameters() if n.endswith(("net.4.weight", "net.4.bias"))]
    assert last and any(p.abs().max() > 0 for p in last)
