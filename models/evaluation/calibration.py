"""Reliability curve and expected calibration error of predicted probabilities."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from models.evaluation.checks import as_labels, as_scores


@dataclass(frozen=True)
class Calibration:
    """Reliability-diagram data with the expected calibration error.

    ``bin_edges`` has ``n_bins + 1`` entries; the other lists have one entry per bin, aligned with the
    edges. Empty bins keep their place with ``count == 0`` and ``None`` for ``mean_predicted`` and
    ``fraction_positive`` (not NaN, which JSON cannot carry); they contribute nothing to the ECE.
    """

    ece: float
    bin_edges: list[float]
    mean_predicted: list[float | None]
    fraction_positive: list[float | None]
    counts: list[int]

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging."""
        return asdict(self)


def calibration(y_true: np.ndarray, y_score: np.ndarray, *, n_bins: int = 10) -> Calibration:
    """Reliability curve over equal-width probability bins and the expected calibration error.

    ECE is the count-weighted mean of ``|mean predicted - fraction positive|`` over non-empty bins; it
    says how far predicted probabilities are from observed frequencies, which matters whenever the
    score is used as a probability (pricing, expected value) and not just for ranking. A score of
    exactly 1.0 falls in the last bin. Empty bins are kept with count 0 and ``None`` statistics.
    """
    y = as_labels(y_true)
    s = as_scores(y_score, y.size)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.minimum((s * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    sum_pred = np.bincount(bins, weights=s, minlength=n_bins)
    sum_pos = np.bincount(bins, weights=y, minlength=n_bins)
    filled = counts > 0
    mean_pred = np.divide(sum_pred, counts, out=np.zeros(n_bins), where=filled)
    frac_pos = np.divide(sum_pos, counts, out=np.zeros(n_bins), where=filled)
    ece = float(np.sum(counts * np.abs(mean_pred - frac_pos)) / y.size)
    return Calibration(
        ece=ece,
        bin_edges=[float(e) for e in edges],
        mean_predicted=[float(m) if f else None for m, f in zip(mean_pred, filled, strict=True)],
        fraction_positive=[float(p) if f else None for p, f in zip(frac_pos, filled, strict=True)],
        counts=[int(c) for c in counts],
    )
