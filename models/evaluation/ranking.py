"""Count-weighted ROC AUC and average precision: the kernel of the vectorised bootstrap.

Each row of a weight matrix ``w`` of shape ``(r, n)`` holds one resample's multiplicity per original
row. With the scores sorted once, both metrics become count-weighted sums and cumulative sums along
those rows, so no per-resample Python loop or sort is needed. A row of ones gives the point metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SortedScores:
    """Scores sorted ascending once, with tie groups, so weighted AUC/AP need only cumulative sums."""

    order: np.ndarray  # (n,) permutation sorting the scores ascending
    y_sorted: np.ndarray  # (n,) labels in that order
    group_starts: np.ndarray | None  # start of each tie group, or None when all scores are distinct


def sort_scores(y: np.ndarray, s: np.ndarray) -> SortedScores:
    """Sort validated labels ``y`` and scores ``s`` by score once, for every resample to reuse."""
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    is_start = np.empty(s.size, dtype=bool)
    is_start[0] = True
    np.not_equal(s_sorted[1:], s_sorted[:-1], out=is_start[1:])
    starts = np.flatnonzero(is_start)
    return SortedScores(order, y[order], None if starts.size == s.size else starts)


def _group_weights(w_sorted: np.ndarray, sorted_scores: SortedScores) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative weight per tie group, shape (r, g) each, groups in ascending score."""
    pos = w_sorted * sorted_scores.y_sorted
    neg = w_sorted - pos
    if sorted_scores.group_starts is not None:
        pos = np.add.reduceat(pos, sorted_scores.group_starts, axis=1)
        neg = np.add.reduceat(neg, sorted_scores.group_starts, axis=1)
    return pos, neg


def weighted_auc_ap(
    w: np.ndarray, sorted_scores: SortedScores, *, with_ap: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """ROC AUC (Mann-Whitney with half credit for ties) and average precision per row of ``w``.

    Returns NaN for rows whose resample holds a single class. AP follows sklearn's step-wise
    definition: sum over thresholds of (recall increment) * precision.
    """
    pos, neg = _group_weights(w[:, sorted_scores.order], sorted_scores)  # (r, g) each
    n_pos = pos.sum(axis=1)  # (r,)
    n_neg = neg.sum(axis=1)
    valid = (n_pos > 0) & (n_neg > 0)
    cum_neg = np.cumsum(neg, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # each positive beats the negatives strictly below its group and half of the tied ones
        auc = (np.einsum("rg,rg->r", pos, cum_neg) - 0.5 * np.einsum("rg,rg->r", pos, neg)) / (n_pos * n_neg)
    auc[~valid] = np.nan
    if not with_ap:
        return auc, None
    # Thresholds run from the highest score down, so counts "at or above group g" are totals minus the
    # ascending cumulative sums; this avoids reversing the matrices. The arithmetic is done in place
    # because these (r, g) temporaries dominate the run time.
    tp = np.cumsum(pos, axis=1)
    np.subtract(n_pos[:, None], tp, out=tp)
    tp += pos
    predicted = cum_neg  # reused: becomes the count of rows scored at or above group g
    np.subtract(n_neg[:, None], predicted, out=predicted)
    predicted += neg
    predicted += tp
    # Counts are integers, so predicted is 0 or >= 1; where it is 0, tp is 0 too and precision is 0.
    np.maximum(predicted, 1.0, out=predicted)
    precision = np.divide(tp, predicted, out=tp)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.einsum("rg,rg->r", pos, precision) / n_pos
    ap[~valid] = np.nan
    return auc, ap


def roc_auc(y: np.ndarray, s: np.ndarray) -> float | None:
    """Point ROC AUC on validated arrays, or None with a single class."""
    n_pos = y.sum()
    if n_pos == 0 or n_pos == y.size:
        return None
    auc, _ = weighted_auc_ap(np.ones((1, y.size)), sort_scores(y, s), with_ap=False)
    return float(auc[0])
