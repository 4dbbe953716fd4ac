"""AUROC of an OOD score (Table 7 of Daniel & Tamar 2021)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc

__all__ = ["auroc", "auroc_standard_error"]


def auroc(score_in: Tensor, score_out: Tensor) -> float:
    """Area under the ROC curve for telling in-distribution from OOD data by a score that should be
    *higher* on in-distribution data (a log-likelihood or an ELBO).

    It equals the probability that a random in-distribution sample scores above a random OOD sample
    (ties count one half). In-distribution samples are the positives, as in Table 7.
    """
    scores = torch.cat([score_in.flatten(), score_out.flatten()]).double()
    target = torch.cat([torch.ones(score_in.numel()), torch.zeros(score_out.numel())]).long()
    return float(binary_auroc(scores, target))


def auroc_standard_error(a: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUROC ``a`` measured on ``n_pos`` positives and ``n_neg`` negatives (Hanley & McNeil
    1982, Eq. 2, with their exponential approximation ``Q1 = a / (2 - a)``, ``Q2 = 2 a^2 / (1 + a)``).

    A single-seed AUROC difference smaller than a few of these is test-set noise; the chapters compare methods
    against it instead of reading an ordering into the third decimal.
    """
    if not 0.0 <= a <= 1.0 or n_pos < 1 or n_neg < 1:
        raise ValueError(f"need an AUROC in [0, 1] and at least one sample per class, got {a}, {n_pos}, {n_neg}")
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return ((a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)) ** 0.5
