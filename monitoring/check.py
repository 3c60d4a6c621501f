"""One monitoring check of a batch against a version's drift reference: drift, performance, the verdict.

Pure: the flow (`flows/monitor.py`) reads the batch and the reference, calls `check_batch`, writes the
reports and emits the event. A batch is drifted when its features are (Evidently's dataset rule: the share
of drifted columns reaches `drift_share`) or when its score distribution is (prediction drift).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from models.errors import UserInputError
from monitoring.config import MonitoringConfig
from monitoring.drift import DriftReport, detect_drift
from monitoring.performance import (
    EstimatedPerformance,
    RealisedPerformance,
    estimate_performance,
    realised_performance,
)
from monitoring.reference import DriftReference

SCORE_COLUMN = "score"
DEFAULT_THRESHOLD = 0.5  # precision of a model saved without a decision rule is read at this threshold


@dataclass
class MonitorResult:
    """What one check found, for the verdict table, the event and the exit code."""

    model_name: str
    version: str
    drift: DriftReport
    estimated: EstimatedPerformance  # from the batch's calibrated scores alone
    reference_estimated: EstimatedPerformance  # the same estimate on the reference's held-out rows
    reference_realised: RealisedPerformance  # what those held-out rows' labels said
    realised: RealisedPerformance | None  # with labels for the batch
    threshold: float

    @property
    def prediction_drift(self) -> bool:
        return self.drift.prediction is not None and self.drift.prediction.drifted

    @property
    def drifted(self) -> bool:
        return self.drift.dataset_drift or self.prediction_drift

    def payload(
        self, *, report: str | None, data_source: str, retrain_data: str, fingerprint: str
    ) -> dict[str, Any]:
        """The `mlops.drift.detected` event's payload: what drifted, the estimate, where to look, what to retrain on."""
        return {
            "model": self.model_name,
            "version": self.version,
            "drifted_columns": self.drift.drifted_columns,
            "drifted_share": self.drift.drifted_share,
            "prediction_drift": self.prediction_drift,
            "estimated_roc_auc": self.estimated.roc_auc.value,
            "realised_roc_auc": None if self.realised is None else self.realised.roc_auc.value,
            "rows": self.drift.rows_current,
            "report": report,
            "data_source": data_source,
            "retrain_data": retrain_data,
            "retrain_data_fingerprint": fingerprint,
        }

    def markdown(self) -> str:
        est, ref = self.estimated, self.reference_estimated
        held = self.reference_realised
        lines = [
            f"## Drift monitor: {self.model_name} v{self.version}: {'DRIFT' if self.drifted else 'no drift'}",
            "",
            self.drift.markdown(),
            "",
            f"### Performance (decision threshold {self.threshold:.4f})",
            "",
            "| | ROC AUC | interval | precision at threshold | positive rate |",
            "|---|---|---|---|---|",
            f"| estimated from this batch's scores (no labels) | {est.roc_auc.value:.4f} | "
            f"{est.roc_auc.low:.4f} – {est.roc_auc.high:.4f} | {est.precision.value:.4f} | {est.positive_rate.value:.4f} |",
            f"| estimated on the reference's held-out rows | {ref.roc_auc.value:.4f} | "
            f"{ref.roc_auc.low:.4f} – {ref.roc_auc.high:.4f} | {ref.precision.value:.4f} | {ref.positive_rate.value:.4f} |",
            f"| realised on the reference's held-out rows | {held.roc_auc.value:.4f} | "
            f"{held.roc_auc.low:.4f} – {held.roc_auc.high:.4f} | {held.precision.value:.4f} | {held.positive_rate.value:.4f} |",
        ]
        if self.realised is not None:
            r = self.realised
            lines.append(
                f"| realised on this batch (labels) | {r.roc_auc.value:.4f} | {r.roc_auc.low:.4f} – {r.roc_auc.high:.4f} | "
                f"{r.precision.value:.4f} | {r.positive_rate.value:.4f} |"
            )
        lines += [
            "",
            "The estimate assumes the scores stay calibrated on live data: it holds when only the features move "
            "(covariate shift), not when what a feature means for the outcome changes (concept drift).",
        ]
        return "\n".join(lines)


def require_usable_batch(
    frame: pd.DataFrame, *, numeric: list[str], categorical: list[str], source: str
) -> None:
    """Raise `UserInputError` naming what is wrong with a batch: no rows, missing feature columns, or a numeric
    feature holding text. Checked before any run starts, so an unusable batch writes no run and emits nothing."""
    if frame.empty:
        raise UserInputError(f"{source}: the batch has no rows")
    missing = [c for c in [*numeric, *categorical] if c not in frame.columns]
    if missing:
        raise UserInputError(f"{source}: the batch lacks feature columns {', '.join(missing)}")
    for column in numeric:
        dtype = frame[column].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            raise UserInputError(f"{source}: numeric column {column!r} has non-numeric dtype {dtype}")


def check_batch(
    reference: DriftReference,
    current: pd.DataFrame,
    scores: np.ndarray,
    labels: np.ndarray | None,
    *,
    model_name: str,
    version: str,
    config: MonitoringConfig,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> MonitorResult:
    """Drift of `current`'s features and of `scores` against the reference; performance with and without labels."""
    threshold = reference.threshold if reference.threshold is not None else DEFAULT_THRESHOLD
    ref_frame = reference.features.copy()
    cur_frame = current[[*reference.numeric, *reference.categorical]].copy()
    # Prediction drift compares live scores with the held-out scores (not training rows'), so the score
    # column is checked on its own frames, with the feature frames' drift computed alongside.
    drift = detect_drift(
        ref_frame, cur_frame, numeric=reference.numeric, categorical=reference.categorical, config=config
    )
    prediction = detect_drift(
        pd.DataFrame({SCORE_COLUMN: reference.holdout_scores}),
        pd.DataFrame({SCORE_COLUMN: scores}),
        numeric=[SCORE_COLUMN],
        categorical=[],
        config=config,
    ).columns[0]
    drift = replace(drift, prediction=prediction)
    boot = dict(threshold=threshold, n_resamples=n_resamples, seed=seed, confidence=confidence)
    return MonitorResult(
        model_name=model_name,
        version=version,
        drift=drift,
        estimated=estimate_performance(scores, **boot),
        reference_estimated=estimate_performance(reference.holdout_scores, **boot),
        reference_realised=realised_performance(reference.holdout_labels, reference.holdout_scores, **boot),
        realised=None if labels is None else realised_performance(labels, scores, **boot),
        threshold=threshold,
    )
