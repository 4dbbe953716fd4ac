"""The OOD chapter's histograms of likelihood scores (Fig. 8 of Daniel & Tamar 2021)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

__all__ = ["plot_histograms"]


def plot_histograms(scores: dict[str, np.ndarray], in_dist: str, ood: str, title: str = "", ax: Axes | None = None) -> Axes:
    """Histograms of one score for in-distribution train/test and OOD test data (Fig. 8 of Daniel & Tamar 2021).

    The axis runs from the 0.5th to the 99.9th percentile of all scores pooled; scores outside are clipped into
    the edge bins, so a long OOD tail shows as a spike in the leftmost bin.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    allv = np.concatenate(list(scores.values()))
    lo, hi = np.percentile(allv, 0.5), np.percentile(allv, 99.9)
    bins = np.linspace(lo, hi, 60)
    for key, label in (("in_train", f"{in_dist} train"), ("in_test", f"{in_dist} test"), ("ood_test", f"{ood} test (OOD)")):
        ax.hist(np.clip(scores[key], lo, hi), bins=bins, alpha=0.5, density=True, label=label)
    ax.set_xlabel("score (nats)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax
