"""Metrics for the image chapters: Frechet distances (FID), likelihood scores, AUROC and
reconstruction quality. Well-kept implementations (torchmetrics, scipy) do the numerics; this package
adds the conventions (feature network in eval mode, which features, the likelihood's constants)."""

from .auroc import auroc, auroc_standard_error
from .frechet import (
    FeatureNet,
    frechet_distance,
    frechet_distances,
    frechet_gaussians,
    inception_available,
    load_feature_net,
    recognized_classes,
)
from .likelihood import elbo_parts, elbo_score, grid_log_likelihood, iw_log_likelihood, log_px_given_z
from .recon import reconstruction_metrics

__all__ = [
    "auroc",
    "auroc_standard_error",
    "FeatureNet",
    "frechet_distance",
    "frechet_distances",
    "frechet_gaussians",
    "inception_available",
    "load_feature_net",
    "recognized_classes",
    "elbo_parts",
    "elbo_score",
    "grid_log_likelihood",
    "iw_log_likelihood",
    "log_px_given_z",
    "reconstruction_metrics",
]
