"""Possible target leakage: features that predict the label too well to be known when the prediction is made.

A column written after the outcome (a sales rep's tag such as "lost to a competitor", a grade set after the
call) separates the classes almost perfectly in historical data and not at all in production. Two signals:

- power alone: a cross-validated one-feature model's ROC AUC. The model is a target encoding of the
  feature's values (numbers in quantile bins, missing values a bin of their own) fitted on the other folds,
  so a column with a distinct value per row (an identifier) scores 0.5 instead of memorising the labels;
- after training, the feature's share of the model's permutation importance.

Either above its limit (``LeakageConfig``) flags the feature with the question that decides it. Only a
person can answer; a feature they confirm (``leakage.confirmed_safe``) is still shown, never flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.data.config import LeakageConfig

QUESTION = "is this value known when the prediction is made?"
# Quantile bins of a numeric feature: a 20-leaf step function, enough to follow any monotone or U-shaped
# relation; a leak is rarely subtler than that.
NUMERIC_BINS = 20
# Pseudo-rows of the base rate added to every value's count: a value seen in a handful of training rows is
# pulled toward the base rate instead of scoring 0 or 1.
SMOOTHING_ROWS = 10.0


@dataclass(frozen=True)
class FeatureLeakage:
    """One feature's figures and, when above a limit, why it may be leakage."""

    feature: str
    auc: float  # cross-validated one-feature ROC AUC, as max(auc, 1 - auc)
    importance_share: float | None = None  # share of the model's permutation importance; None before training
    reasons: list[str] = field(default_factory=list)  # the limits it passed, in words; empty: not suspicious
    confirmed_safe: bool = False

    @property
    def flagged(self) -> bool:
        """Above a limit and not confirmed safe: a person has to answer the question."""
        return bool(self.reasons) and not self.confirmed_safe

    def sentence(self) -> str:
        """The reasons and the question, for a note or a comment."""
        return f"possible target leakage: {'; '.join(self.reasons)}. Ask: {QUESTION}"


@dataclass(frozen=True)
class LeakageReport:
    """Every checked feature, strongest alone first, with the limits it was held to."""

    target: str
    features: list[FeatureLeakage]
    auc_limit: float
    share_limit: float | None  # None: no model yet (the profile)
    rows: int  # rows the one-feature models were cross-validated on
    folds: int

    @property
    def flagged(self) -> list[FeatureLeakage]:
        return [f for f in self.features if f.flagged]

    @property
    def confirmed(self) -> list[FeatureLeakage]:
        """Above a limit but confirmed safe by a person."""
        return [f for f in self.features if f.reasons and f.confirmed_safe]

    def of(self, feature: str) -> FeatureLeakage | None:
        return next((f for f in self.features if f.feature == feature), None)

    def human_reason(self) -> str | None:
        """Why a person must look before promotion, or None when nothing is flagged."""
        if not self.flagged:
            return None
        names = ", ".join(f.feature for f in self.flagged)
        return (
            f"possible target leakage in {names}: {QUESTION} If it is, list it under leakage.confirmed_safe; "
            "if not, drop it from the features"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self, level: int = 3) -> str:
        """A section (heading of ``level``) for the evaluation, the gate's evidence and the model card."""
        limits = f"one-feature ROC AUC at least {self.auc_limit:.2f}"
        if self.share_limit is not None:
            limits += f", or at least {self.share_limit:.0%} of the model's permutation importance"
        how = (
            f"Each feature alone, as a {self.folds}-fold cross-validated one-feature model on {self.rows:,} "
            f"training rows; flagged when {limits}."
        )
        lines = [f"{'#' * level} Possible target leakage", ""]
        if not self.flagged:
            lines.append(f"No feature flagged. {how}")
        else:
            lines += [
                f"**{len(self.flagged)} feature(s) predict `{self.target}` too well: {QUESTION}** If yes, list "
                "the feature under `leakage.confirmed_safe`; if it is written after the outcome, drop it from "
                f"the features and retrain. {how}",
                "",
                "| feature | one-feature AUC | importance share | why |",
                "|---|---|---|---|",
                *[
                    f"| {f.feature} | {f.auc:.3f} | {_share(f.importance_share)} | {'; '.join(f.reasons)} |"
                    for f in self.flagged
                ],
            ]
        if self.confirmed:
            shown = ", ".join(f"{f.feature} (AUC {f.auc:.3f})" for f in self.confirmed)
            lines += ["", f"Above a limit but confirmed safe in the config: {shown}."]
        return "\n".join(lines)


def _share(share: float | None) -> str:
    return "" if share is None else f"{share:.0%}"


def _stratified_folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold number per row, each class dealt round-robin in a random order: equal label rates per fold."""
    fold = np.empty(len(y), dtype=np.int64)
    for label in (0, 1):
        rows = rng.permutation(np.flatnonzero(y == label))
        fold[rows] = np.arange(len(rows)) % folds
    return fold


def _numeric_codes(series: pd.Series) -> np.ndarray:
    """Quantile-bin codes; missing (or unparseable) values get a code of their own."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    present = np.isfinite(values)
    if not present.any():
        return np.zeros(len(values), dtype=np.int64)
    inner = np.linspace(0.0, 1.0, NUMERIC_BINS + 1)[1:-1]
    edges = np.unique(np.quantile(values[present], inner))
    codes = np.searchsorted(edges, np.where(present, values, 0.0), side="right")
    return np.where(present, codes, len(edges) + 1).astype(np.int64)


def _categorical_codes(series: pd.Series) -> np.ndarray:
    """One code per distinct value, missing values one more."""
    codes, uniques = pd.factorize(series.astype(object), use_na_sentinel=True)
    return np.where(codes < 0, len(uniques), codes).astype(np.int64)


def _grouped_auc(scores: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC when every row of a group shares its group's score (ties count a half)."""
    values, group = np.unique(scores, return_inverse=True)
    p = np.bincount(group, weights=pos, minlength=len(values))
    n = np.bincount(group, weights=neg, minlength=len(values))
    below = np.cumsum(n) - n  # negatives scored strictly lower
    total = p.sum() * n.sum()
    return float((p * (below + 0.5 * n)).sum() / total) if total else 0.5


def _cross_validated_auc(codes: np.ndarray, y: np.ndarray, fold: np.ndarray, folds: int) -> float:
    """Mean held-out AUC of target encodings fitted on the other folds, as max(auc, 1 - auc)."""
    k = int(codes.max()) + 1
    aucs = []
    for f in range(folds):
        held = fold == f
        fit_codes, fit_y = codes[~held], y[~held]
        prior = fit_y.mean()
        positives = np.bincount(fit_codes, weights=fit_y, minlength=k)
        counts = np.bincount(fit_codes, minlength=k)
        encoding = (positives + SMOOTHING_ROWS * prior) / (counts + SMOOTHING_ROWS)  # [k]
        # Score per code seen in the held-out fold, with that fold's positives and negatives per code.
        held_pos = np.bincount(codes[held], weights=y[held], minlength=k)
        held_all = np.bincount(codes[held], minlength=k)
        aucs.append(_grouped_auc(encoding, held_pos, held_all - held_pos))
    auc = float(np.mean(aucs))
    return max(auc, 1.0 - auc)


def single_feature_auc(
    frame: pd.DataFrame,
    y: np.ndarray,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    folds: int,
    max_rows: int,
    seed: int,
) -> tuple[dict[str, float], int]:
    """Each feature's cross-validated one-feature ROC AUC, and the rows it was measured on.

    ``y`` holds 0/1 labels by position. Beyond ``max_rows`` rows a sample drawn with ``seed`` is used; the
    folds are stratified and drawn with the same seed. Vectorised per fold: a few bincounts per feature.
    """
    labels = np.asarray(y, dtype=np.float64)
    if len(frame) != len(labels):
        raise ValueError(f"length mismatch: {len(frame)} rows but {len(labels)} labels")
    rng = np.random.default_rng(seed)
    if len(frame) > max_rows:
        rows = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
        frame, labels = frame.iloc[rows], labels[rows]
    positives = int(labels.sum())
    if min(positives, len(labels) - positives) < folds:
        return {}, len(labels)  # too few of a class to cross-validate anything
    fold = _stratified_folds(labels, folds, rng)
    aucs = {}
    for column in numeric:
        aucs[column] = _cross_validated_auc(_numeric_codes(frame[column]), labels, fold, folds)
    for column in categorical:
        aucs[column] = _cross_validated_auc(_categorical_codes(frame[column]), labels, fold, folds)
    return aucs, len(labels)


def importance_shares(importance: dict[str, float]) -> dict[str, float]:
    """Each feature's share of the positive permutation importances (drops in AUC); zeros when none is positive."""
    positive = {k: max(v, 0.0) for k, v in importance.items()}
    total = sum(positive.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in positive.items()}


def leakage_report(
    aucs: dict[str, float],
    config: LeakageConfig,
    *,
    target: str,
    rows: int,
    shares: dict[str, float] | None = None,
) -> LeakageReport:
    """Hold each feature's one-feature AUC (and, after training, importance share) to ``config``'s limits."""
    features = []
    for name, auc in sorted(aucs.items(), key=lambda kv: -kv[1]):
        share = None if shares is None else shares.get(name, 0.0)
        reasons = []
        if auc >= config.single_feature_auc:
            reasons.append(
                f"alone it predicts {target} with ROC AUC {auc:.3f} (cross-validated; limit "
                f"{config.single_feature_auc:.2f})"
            )
        if share is not None and share >= config.importance_share:
            reasons.append(
                f"it carries {share:.0%} of the model's permutation importance (limit {config.importance_share:.0%})"
            )
        features.append(FeatureLeakage(name, auc, share, reasons, name in config.confirmed_safe))
    return LeakageReport(
        target=target,
        features=features,
        auc_limit=config.single_feature_auc,
        share_limit=None if shares is None else config.importance_share,
        rows=rows,
        folds=config.folds,
    )
