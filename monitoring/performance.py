"""Model performance on live data: realised when labels have arrived, estimated from the scores when not.

Labels of scored leads arrive weeks after the scores (a lead converts or goes cold), so monitoring needs
two views of the same batch:

- ``realised_performance``: the metrics against the labels, with percentile-bootstrap intervals (the
  count-weighted bootstrap of ``models.evaluation.bootstrap``).
- ``estimate_performance``: confidence-based performance estimation (CBPE, as NannyML calls it). If the
  scores are calibrated, each row's label is Bernoulli(score), which fixes the distribution of every
  metric on the batch without seeing one label. It holds while P(y | x) is unchanged (covariate shift:
  the feature mix moves, the calibrator still fits) and fails silently under concept drift (the same
  features convert at a different rate), which only realised performance can reveal.

Both reuse the count-weighted AUC kernel of ``models.evaluation.ranking``: the label-free estimate gives
every row a positive copy weighted ``p`` and a negative copy weighted ``1 - p`` at the same score, so the
kernel's sort-once, cumulative-sum AUC serves both the expectation and each simulated label vector.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from models.evaluation.bootstrap import MetricInterval, bootstrap_metrics, percentile_interval
from models.evaluation.checks import as_labels, as_scores
from models.evaluation.ranking import SortedScores, sort_scores, weighted_auc_ap

# Cells per (chunk, 2n) weight matrix of the label simulation: the same ~4 MB budget the evaluation
# bootstrap uses, small enough for its temporaries to stay in cache, large enough to amortise Python.
_CHUNK_CELLS = 500_000


@dataclass(frozen=True)
class RealisedPerformance:
    """Metrics of one labelled batch; each interval is a percentile bootstrap over its rows.

    An interval says how far the metric of the population this batch was drawn from may be from the
    batch's value. ``precision`` (of the rows with ``score >= threshold``) is NaN when no row reaches
    the threshold; ``to_dict`` writes every NaN as ``None``.
    """

    rows: int
    threshold: float
    flagged: int  # rows with score >= threshold: the ones the decision rule would contact
    roc_auc: MetricInterval
    pr_auc: MetricInterval  # average precision
    brier: MetricInterval
    positive_rate: MetricInterval
    precision: MetricInterval

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging: no NaN (undefined values are ``None``)."""
        return _json_safe(asdict(self))

    def flat_metrics(self) -> dict[str, float]:
        """``realised/roc_auc``, ``realised/roc_auc_low`` ... for MLflow; finite values only."""
        return _flat("realised", self.rows, self.flagged, self._intervals())

    def _intervals(self) -> dict[str, MetricInterval]:
        return {
            "roc_auc": self.roc_auc,
            "pr_auc": self.pr_auc,
            "brier": self.brier,
            "positive_rate": self.positive_rate,
            "precision": self.precision,
        }


@dataclass(frozen=True)
class EstimatedPerformance:
    """Label-free performance of one batch, valid as long as the scores stay calibrated on it.

    ``value`` is the expected metric under labels drawn as Bernoulli(score); ``low``/``high`` bound
    the metric the batch's labels will realise (a prediction interval from simulated label vectors),
    not a population parameter. ``precision`` is NaN when no row reaches the threshold.
    """

    rows: int
    threshold: float
    flagged: int  # rows with score >= threshold
    n_resamples: int  # simulated label vectors behind the intervals
    roc_auc: MetricInterval
    positive_rate: MetricInterval
    precision: MetricInterval

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging: no NaN (undefined values are ``None``)."""
        return _json_safe(asdict(self))

    def flat_metrics(self) -> dict[str, float]:
        """``estimated/roc_auc``, ``estimated/roc_auc_low`` ... for MLflow; finite values only."""
        intervals = {
            "roc_auc": self.roc_auc,
            "positive_rate": self.positive_rate,
            "precision": self.precision,
        }
        return _flat("estimated", self.rows, self.flagged, intervals)


def realised_performance(
    y: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> RealisedPerformance:
    """ROC AUC, PR AUC, Brier score, positive rate and precision at ``threshold`` of a labelled batch.

    ROC AUC, PR AUC and Brier come from ``bootstrap_metrics`` (its resamples skip single-class draws).
    Positive rate and precision depend on the rows only through the four confusion-matrix counts, and
    resampling ``n`` rows with replacement draws those counts from Multinomial(n, counts / n): sampling
    that directly is the same bootstrap at a fraction of the cost. It uses a child stream of ``seed``,
    so it never replays ``bootstrap_metrics``'s draws.

    Raises ValueError for mismatched lengths, labels other than 0/1, a single class (ROC AUC is then
    undefined), scores outside [0, 1] or NaN, and the invalid ``n_resamples``/``confidence`` that
    ``bootstrap_metrics`` rejects.
    """
    labels = as_labels(y, "y")
    s = _checked_scores(scores, labels.size)
    _check_threshold(threshold)
    boot = bootstrap_metrics(
        labels, s, threshold=threshold, n_resamples=n_resamples, seed=seed, confidence=confidence
    )
    flagged = s >= threshold
    tp = float(np.sum(labels * flagged))
    fp = float(np.sum((1.0 - labels) * flagged))
    fn = float(np.sum(labels * ~flagged))
    n = labels.size
    cells = np.array([tp, fp, fn, n - tp - fp - fn])
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    counts = rng.multinomial(n, cells / n, size=n_resamples).astype(np.float64)  # (r, 4)
    return RealisedPerformance(
        rows=n,
        threshold=float(threshold),
        flagged=int(flagged.sum()),
        roc_auc=boot["roc_auc"],
        pr_auc=boot["pr_auc"],
        brier=boot["brier"],
        positive_rate=percentile_interval((tp + fn) / n, (counts[:, 0] + counts[:, 2]) / n, confidence),
        precision=percentile_interval(
            _ratio(tp, tp + fp), _ratios(counts[:, 0], counts[:, 0] + counts[:, 1]), confidence
        ),
    )


def estimate_performance(
    scores: np.ndarray,
    *,
    threshold: float,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> EstimatedPerformance:
    """Expected ROC AUC, positive rate and precision at ``threshold`` of a batch, from its scores alone.

    Reads each score as the probability that its row converts (CBPE). Point estimates:

    - ROC AUC: the ratio of expectations ``E[U] / E[n_pos * n_neg]``, where ``U`` counts positive-negative
      pairs ranked correctly (half for ties). Over ordered pairs of distinct rows this is
      ``sum p_i (1 - p_j) ([s_i > s_j] + [s_i = s_j] / 2) / sum p_i (1 - p_j)``, the approximation
      NannyML's CBPE uses: the expectation of the ratio differs from it by O(1/n) (measured within
      3e-4 of the mean of 20,000 simulated label vectors at 200 and 2,000 rows). Sorted once, it
      costs O(n log n).
    - positive rate: the mean score.
    - precision: the mean score of the rows with ``score >= threshold``; NaN when there are none.

    Interval: a parametric bootstrap. ``n_resamples`` label vectors ``y* ~ Bernoulli(scores)`` are
    drawn (seeded, in chunks), each one's realised metrics computed; the percentile interval at
    ``confidence`` is a prediction interval for the value this batch's labels will realise. It covers
    the label noise of these rows only: it does not cover miscalibration, so it is valid under covariate
    shift (P(y | x) unchanged, the calibrated model still calibrated) but not under concept drift, where
    the realised metric can fall outside it however many rows there are. Draws with a single class
    are skipped for ROC AUC (``MetricInterval.skipped``).

    Raises ValueError for empty scores, scores outside [0, 1] or NaN, a non-finite threshold,
    ``n_resamples < 1`` or ``confidence`` outside (0, 1).
    """
    s = _checked_scores(scores)
    _check_threshold(threshold)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = s.size
    flagged = s >= threshold
    n_flagged = int(flagged.sum())
    # Every row twice at its own score: a positive copy, then a negative copy. Weights (p, 1 - p) give
    # expected pair counts, weights (y*, 1 - y*) give one simulated label vector's AUC.
    paired = sort_scores(np.concatenate([np.ones(n), np.zeros(n)]), np.concatenate([s, s]))

    rng = np.random.default_rng(seed)
    aucs, rates, precisions = [], [], []
    for rows in _chunks(n_resamples, 2 * n):
        y_star = (rng.random((rows, n)) < s).astype(np.float64)  # (rows, n) simulated labels
        auc, _ = weighted_auc_ap(np.concatenate([y_star, 1.0 - y_star], axis=1), paired, with_ap=False)
        aucs.append(auc)
        rates.append(y_star.mean(axis=1))
        precisions.append(
            y_star @ flagged.astype(np.float64) / n_flagged if n_flagged else np.full(rows, math.nan)
        )

    return EstimatedPerformance(
        rows=n,
        threshold=float(threshold),
        flagged=n_flagged,
        n_resamples=int(n_resamples),
        roc_auc=percentile_interval(_expected_auc(s, paired), np.concatenate(aucs), confidence),
        positive_rate=percentile_interval(float(s.mean()), np.concatenate(rates), confidence),
        precision=percentile_interval(
            float(s[flagged].mean()) if n_flagged else math.nan, np.concatenate(precisions), confidence
        ),
    )


def _expected_auc(s: np.ndarray, paired: SortedScores) -> float:
    """Ratio-of-expectations ROC AUC over pairs of distinct rows; NaN when no such pair can disagree.

    The kernel, weighted (p, 1 - p) on the paired copies, sums over *all* ordered pairs, a row with
    itself included as a tie worth ``p (1 - p) / 2`` of ``p (1 - p)``. A label vector never pairs a row
    with itself, so that diagonal is taken out of numerator and denominator.
    """
    auc_all, _ = weighted_auc_ap(np.concatenate([s, 1.0 - s])[None, :], paired, with_ap=False)
    pairs_all = float(s.sum() * (1.0 - s).sum())
    diagonal = float(np.sum(s * (1.0 - s)))
    pairs = pairs_all - diagonal
    if not math.isfinite(float(auc_all[0])) or pairs <= 0.0:
        return math.nan
    return (float(auc_all[0]) * pairs_all - 0.5 * diagonal) / pairs


def _checked_scores(scores: Any, n: int | None = None) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D positive-class probabilities, got shape {s.shape}")
    if s.size == 0 and n is None:  # with labels, as_scores reports the length mismatch instead
        raise ValueError("scores is empty")
    return as_scores(s, s.size if n is None else n, "scores")


def _check_threshold(threshold: float) -> None:
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")


def _chunks(n_resamples: int, cells_per_resample: int) -> list[int]:
    size = max(1, min(n_resamples, _CHUNK_CELLS // cells_per_resample))
    full, rest = divmod(n_resamples, size)
    return [size] * full + ([rest] if rest else [])


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def _ratios(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full_like(num, math.nan), where=den > 0)


def _flat(prefix: str, rows: int, flagged: int, intervals: dict[str, MetricInterval]) -> dict[str, float]:
    out = {f"{prefix}/rows": float(rows), f"{prefix}/flagged": float(flagged)}
    for name, m in intervals.items():
        out |= {f"{prefix}/{name}": m.value, f"{prefix}/{name}_low": m.low, f"{prefix}/{name}_high": m.high}
    return {k: float(v) for k, v in out.items() if math.isfinite(v)}


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
