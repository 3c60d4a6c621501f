"""Percentile-bootstrap intervals of test metrics and the paired bootstrap of an AUC difference.

The bootstrap is vectorised. Each resample is represented by a row of *counts* (how many times every
original row was drawn), built from an index matrix of shape ``(chunk, n)``; every metric is then a
count-weighted sum (see ``ranking`` for ROC AUC and average precision), so no per-resample Python loop
or sort is needed. Chunks bound the memory to a few megabytes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from models.evaluation.checks import as_labels, as_scores, require_both_classes
from models.evaluation.ranking import sort_scores, weighted_auc_ap

# Cells per (chunk, n) matrix: 500k float64 cells is 4 MB, small enough for the handful of temporaries
# to stay cache-friendly (measured ~3x faster than 2M cells for 1000 x 10k) yet large enough that
# per-chunk Python overhead is negligible.
_CHUNK_CELLS = 500_000
# Same clipping as sklearn.metrics.log_loss: machine epsilon of float64.
_EPS = float(np.finfo(np.float64).eps)


def confidence_percent(confidence: float) -> str:
    """``0.9`` -> ``"90%"``, ``0.975`` -> ``"97.5%"``: the label of an interval's confidence level.

    ``g`` rather than ``.0%`` so a level such as 0.975 is not rounded into a different one.
    """
    return f"{confidence * 100:g}%"


@dataclass(frozen=True)
class MetricInterval:
    """A point estimate on the full data with a percentile-bootstrap interval at ``confidence``.

    ``skipped`` counts resamples that could not be scored (a single class present, which leaves
    ROC AUC and average precision undefined); the interval comes from the remaining resamples.
    ``low``/``high`` are NaN only if every resample was skipped.
    """

    value: float
    low: float
    high: float
    confidence: float  # e.g. 0.95; carried so every label of the interval states its real level
    skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging."""
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison:
    """Difference ``metric(a) - metric(b)`` with a paired-bootstrap interval and two-sided p-value."""

    metric: str
    diff: float
    low: float
    high: float
    confidence: float  # level of the ``low``/``high`` interval
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging."""
        return asdict(self)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _check_resamples(n_resamples: int) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")


def _additive_columns(y: np.ndarray, s: np.ndarray, threshold: float) -> np.ndarray:
    """Per-row statistics whose resample totals are plain count-weighted sums, shape (n, 5).

    Columns: log loss (clipped like sklearn), squared error, true positive, false positive, false
    negative at ``threshold``. Stacking them lets one matrix product serve every resample in a chunk.
    """
    p = np.clip(s, _EPS, 1.0 - _EPS)
    q = np.clip(1.0 - s, _EPS, 1.0 - _EPS)
    predicted = (s >= threshold).astype(np.float64)
    return np.column_stack(
        [
            -(y * np.log(p) + (1.0 - y) * np.log(q)),
            (s - y) ** 2,
            y * predicted,
            (1.0 - y) * predicted,
            y * (1.0 - predicted),
        ]
    )


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 from weighted counts; 0 when there are neither true nor predicted positives (as sklearn)."""
    denom = 2.0 * tp + fp + fn
    return np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def _resample_counts(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """Bootstrap multiplicities, shape (rows, n): row r counts how often each index was drawn."""
    idx = rng.integers(0, n, size=(rows, n))  # (rows, n) index matrix
    idx += (np.arange(rows) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)


def _chunks(n_resamples: int, n: int) -> list[int]:
    """Split the resamples into chunk sizes that keep each (chunk, n) matrix near ``_CHUNK_CELLS``."""
    size = max(1, min(n_resamples, _CHUNK_CELLS // max(n, 1)))
    full, rest = divmod(n_resamples, size)
    return [size] * full + ([rest] if rest else [])


def percentile_interval(value: float, samples: np.ndarray, confidence: float) -> MetricInterval:
    """Percentile interval over the finite samples; NaN samples are the skipped resamples."""
    finite = samples[np.isfinite(samples)]
    skipped = int(samples.size - finite.size)
    if finite.size == 0:
        return MetricInterval(float(value), math.nan, math.nan, confidence, skipped)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return MetricInterval(float(value), float(low), float(high), confidence, skipped)


def bootstrap_metrics(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    threshold: float,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> dict[str, MetricInterval]:
    """Point metrics on the full data with percentile-bootstrap intervals.

    Keys: ``roc_auc``, ``pr_auc`` (average precision), ``log_loss``, ``brier`` and ``f1`` (positive
    when ``y_score >= threshold``). Intervals tell an approval gate whether a difference between two
    models is larger than the noise of the test set. Resamples with a single class are skipped for
    ROC AUC and PR AUC and counted in ``MetricInterval.skipped``.

    Raises ValueError for mismatched lengths, labels other than 0/1, a single class, or scores that
    are not probabilities in [0, 1].
    """
    y = as_labels(y_true)
    s = as_scores(y_score, y.size)
    require_both_classes(y)
    _check_resamples(n_resamples)
    _check_confidence(confidence)
    n = y.size
    sorted_scores = sort_scores(y, s)
    columns = _additive_columns(y, s, threshold)  # (n, 5)

    def evaluate(w: np.ndarray) -> dict[str, np.ndarray]:
        auc, ap = weighted_auc_ap(w, sorted_scores, with_ap=True)
        assert ap is not None
        totals = w @ columns  # (r, 5); each resample has exactly n rows
        return {
            "roc_auc": auc,
            "pr_auc": ap,
            "log_loss": totals[:, 0] / n,
            "brier": totals[:, 1] / n,
            "f1": _f1(totals[:, 2], totals[:, 3], totals[:, 4]),
        }

    point = evaluate(np.ones((1, n)))
    rng = np.random.default_rng(seed)
    parts = [evaluate(_resample_counts(rng, rows, n)) for rows in _chunks(n_resamples, n)]
    return {
        name: percentile_interval(float(point[name][0]), np.concatenate([p[name] for p in parts]), confidence)
        for name in point
    }


def paired_bootstrap_auc(
    y_true: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    *,
    n_resamples: int,
    seed: int,
    confidence: float,
    groups: np.ndarray | None = None,
) -> PairedComparison:
    """Compare two models' ROC AUC on the same rows with a paired bootstrap.

    Both models are scored on identical resample indices, so the shared test-set noise cancels and
    the interval of ``AUC(a) - AUC(b)`` is much tighter than comparing two separate intervals. The
    two-sided p-value is ``2 * min(P(diff <= 0), P(diff >= 0))`` over resamples, clipped to
    ``[1 / n_used, 1]`` because a finite bootstrap cannot resolve smaller probabilities.

    With ``groups`` (one label per row, e.g. the cross-validation fold that scored it, and the test
    split), the difference is the row-weighted mean of the within-group AUC differences and rows are
    resampled within their group (a stratified bootstrap): scores of different fold models are never
    ranked against each other, and each group keeps its size.
    """
    y = as_labels(y_true)
    a = as_scores(score_a, y.size, "score_a")
    b = as_scores(score_b, y.size, "score_b")
    require_both_classes(y)
    _check_resamples(n_resamples)
    _check_confidence(confidence)
    labels = np.zeros(y.size, dtype=np.int64) if groups is None else np.asarray(groups)
    if labels.shape != y.shape:
        raise ValueError(f"groups must have one label per row ({y.size}), got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    point = 0.0
    diffs = np.zeros(n_resamples)
    for group in np.unique(labels):
        rows = labels == group
        yg = y[rows]
        require_both_classes(yg)
        n = yg.size
        sorted_a, sorted_b = sort_scores(yg, a[rows]), sort_scores(yg, b[rows])

        def diff(w: np.ndarray, sorted_a=sorted_a, sorted_b=sorted_b) -> np.ndarray:
            auc_a, _ = weighted_auc_ap(w, sorted_a, with_ap=False)
            auc_b, _ = weighted_auc_ap(w, sorted_b, with_ap=False)
            return auc_a - auc_b

        weight = n / y.size
        point += weight * float(diff(np.ones((1, n)))[0])
        diffs += weight * np.concatenate([diff(_resample_counts(rng, r, n)) for r in _chunks(n_resamples, n)])
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        return PairedComparison("roc_auc", point, math.nan, math.nan, confidence, math.nan)
    interval = percentile_interval(point, diffs, confidence)
    p = 2.0 * min(float(np.mean(diffs <= 0.0)), float(np.mean(diffs >= 0.0)))
    p_value = min(1.0, max(1.0 / diffs.size, p))
    return PairedComparison("roc_auc", point, interval.low, interval.high, confidence, p_value)
