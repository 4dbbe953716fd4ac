"""AUROC of an OOD score (Table 7 of Daniel & Tamar 2021)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc

__all__ = ["auroc"]


def auroc(score_in: Tensor, score_out: Tensor) -> float:
    """Area under the ROC curve for telling in-distribution from OOD data by a score that should be
    *higher* on in-distribution data (a log-likelihood or an ELBO).

    It equals the probability that a random in-distribution sample scores above a random OOD sample
    (ties count one half). In-distribution samples are the positives, as in Table 7.
    """
    scores = torch.cat([score_in.flatten(), score_out.flatten()]).double()
    target = torch.cat([torch.ones(score_in.numel()), torch.zeros(score_out.numel())]).long()
    return float(binary_auroc(scores, target))
