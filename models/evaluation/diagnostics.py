"""Where and how a model fails: per-segment metrics, robustness to perturbed inputs and permutation
importance. The last two only need a score function, so they work for every model family."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.evaluation.checks import as_labels, as_scores, require_both_classes
from models.evaluation.ranking import roc_auc

ScoreFn = Callable[[pd.DataFrame], np.ndarray]
"""Maps raw feature rows to positive-class probabilities, one per row."""

MISSING_SLICE = "<missing>"


@dataclass(frozen=True)
class SliceMetric:
    """Size, base rate and ROC AUC of the rows where ``column == value``."""

    column: str
    value: str
    count: int
    positive_rate: float
    roc_auc: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging."""
        return asdict(self)


@dataclass(frozen=True)
class RobustnessResult:
    """ROC AUC under one perturbation at one level; ``delta`` is that AUC minus the clean AUC."""

    perturbation: str
    level: float
    roc_auc: float
    delta: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging."""
        return asdict(self)


@dataclass(frozen=True)
class FeatureImportance:
    """Mean drop in ROC AUC when ``feature`` is shuffled, with its standard deviation over repeats."""

    feature: str
    importance: float
    std: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging."""
        return asdict(self)


def _slice_labels(column: pd.Series) -> np.ndarray:
    """String label per row, with every kind of missing value mapped to ``MISSING_SLICE``."""
    labels = column.astype(object).where(column.notna(), MISSING_SLICE)
    return labels.map(str).to_numpy()


def slice_metrics(
    slices: pd.DataFrame,
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    min_count: int,
) -> list[SliceMetric]:
    """Per-segment size, base rate and ROC AUC for every value of every column in ``slices``.

    A model can look fine overall while failing a segment (a region, a plan, a channel); this lists
    each segment so a gate or a reviewer can spot it. Rows are matched by position, not index.
    Values are compared as strings, missing values form the slice ``"<missing>"``. ``roc_auc`` is
    None when a slice has fewer than ``min_count`` rows or a single class. Output is ordered by
    column, then by descending count, then by value.
    """
    y = as_labels(y_true)
    s = as_scores(y_score, y.size)
    if len(slices) != y.size:
        raise ValueError(f"length mismatch: y_true has {y.size} rows but slices has {len(slices)}")
    results: list[SliceMetric] = []
    for column in slices.columns:
        labels = _slice_labels(slices[column])
        values, counts = np.unique(labels, return_counts=True)
        for value, count in sorted(zip(values, counts, strict=True), key=lambda vc: (-vc[1], vc[0])):
            mask = labels == value
            y_slice = y[mask]
            auc = roc_auc(y_slice, s[mask]) if count >= min_count else None
            results.append(
                SliceMetric(
                    column=str(column),
                    value=str(value),
                    count=int(count),
                    positive_rate=float(y_slice.mean()),
                    roc_auc=auc,
                )
            )
    return results


def _scored_auc(score_fn: ScoreFn, features: pd.DataFrame, y: np.ndarray) -> float:
    """ROC AUC of ``score_fn`` on ``features``, validating what the model returned."""
    scores = as_scores(np.asarray(score_fn(features)).reshape(-1), y.size, "score_fn output")
    auc = roc_auc(y, scores)
    assert auc is not None, "both classes were checked by the caller"
    return auc


def _check_columns(features: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise ValueError(f"columns not in features: {missing}")


def _with_noise(
    features: pd.DataFrame, numeric: Sequence[str], level: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Copy with Gaussian noise of ``level`` times each numeric column's std added."""
    out = features.copy()
    for column in numeric:
        values = out[column].to_numpy(dtype=np.float64, na_value=np.nan)
        std = float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else 0.0
        scale = level * std
        out[column] = values + rng.normal(0.0, scale, size=len(out))
    return out


def _with_missing(
    features: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    rate: float,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Copy with a random ``rate`` of values blanked: NaN in numeric columns, None in categorical."""
    out = features.copy()
    for column in numeric:
        drop = rng.random(len(out)) < rate
        out[column] = out[column].mask(drop)
    for column in categorical:
        drop = rng.random(len(out)) < rate
        series = out[column]
        if isinstance(series.dtype, pd.CategoricalDtype):
            out[column] = series.mask(drop)
        else:
            out[column] = series.astype(object).where(~drop, None)
    return out


def robustness(
    score_fn: ScoreFn,
    features: pd.DataFrame,
    y_true: np.ndarray,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    noise_levels: Sequence[float] = (0.1, 0.3),
    missing_rates: Sequence[float] = (0.1, 0.3),
    seed: int,
) -> list[RobustnessResult]:
    """ROC AUC under input noise and missing values, relative to the clean data.

    Production inputs are noisier and gappier than the test split; a model whose AUC collapses under
    mild perturbation is fragile even if its clean AUC is best. Two perturbations are applied, each on
    a fresh copy (the input frame is never mutated): ``"gaussian_noise"`` adds ``N(0, (level * std)^2)``
    to every numeric column, and ``"missing"`` blanks a random ``level`` fraction of every listed
    column. ``delta`` is the perturbed AUC minus the clean AUC (negative means worse).
    """
    y = as_labels(y_true)
    if len(features) != y.size:
        raise ValueError(f"length mismatch: y_true has {y.size} rows but features has {len(features)}")
    require_both_classes(y)
    _check_columns(features, [*numeric, *categorical])
    rng = np.random.default_rng(seed)
    baseline = _scored_auc(score_fn, features, y)
    results: list[RobustnessResult] = []
    for level in noise_levels:
        auc = _scored_auc(score_fn, _with_noise(features, numeric, level, rng), y)
        results.append(RobustnessResult("gaussian_noise", float(level), auc, auc - baseline))
    for rate in missing_rates:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"missing rates must be in [0, 1], got {rate}")
        auc = _scored_auc(score_fn, _with_missing(features, numeric, categorical, rate, rng), y)
        results.append(RobustnessResult("missing", float(rate), auc, auc - baseline))
    return results


def permutation_importance(
    score_fn: ScoreFn,
    features: pd.DataFrame,
    y_true: np.ndarray,
    *,
    columns: Sequence[str],
    n_repeats: int,
    seed: int,
) -> list[FeatureImportance]:
    """Drop in ROC AUC when each column is shuffled, most important first.

    Model-agnostic (it only needs ``score_fn``), so the same report works for every model family in a
    sweep. Shuffling breaks the column's link to the label while keeping its distribution; the mean
    drop over ``n_repeats`` shuffles is the importance and their standard deviation its noise.
    """
    y = as_labels(y_true)
    if len(features) != y.size:
        raise ValueError(f"length mismatch: y_true has {y.size} rows but features has {len(features)}")
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    require_both_classes(y)
    _check_columns(features, columns)
    rng = np.random.default_rng(seed)
    baseline = _scored_auc(score_fn, features, y)
    results: list[FeatureImportance] = []
    for column in columns:
        drops = np.empty(n_repeats)
        for repeat in range(n_repeats):
            shuffled = features.copy()
            # .array.take keeps extension dtypes (category, nullable ints) intact
            shuffled[column] = features[column].array.take(rng.permutation(len(features)))
            drops[repeat] = baseline - _scored_auc(score_fn, shuffled, y)
        results.append(FeatureImportance(str(column), float(drops.mean()), float(drops.std())))
    return sorted(results, key=lambda fi: fi.importance, reverse=True)
