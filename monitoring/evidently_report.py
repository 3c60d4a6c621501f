"""The human-readable drift report: Evidently's own HTML, on a bounded sample, with our thresholds.

The verdicts people act on come from `monitoring.drift` (the same tests, vectorised); this report is for
looking at distributions. It runs Evidently on at most `max_rows` rows of each side (Evidently takes tens of
seconds per 100k rows) and passes each column's threshold as `detect_drift` used it, so on the same rows
the two agree. With labels, a second report shows Evidently's classification quality of the batch against the
reference's held-out rows (scores and labels only: those rows' features are not kept).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift
from evidently.presets import ClassificationPreset, DataDriftPreset

from monitoring.drift import DriftReport
from monitoring.reference import DriftReference

TARGET, PREDICTION = "target", "prediction"


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    return frame.sample(n=rows, random_state=seed).reset_index(drop=True)


def _run(
    metrics: list, current: pd.DataFrame, reference: pd.DataFrame, definition: DataDefinition, path: Path
) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Evidently's chi-square divides by zero counts
        snapshot = Report(metrics, include_tests=True).run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def write_drift_report(
    reference: DriftReference,
    current: pd.DataFrame,
    drift: DriftReport,
    path: Path,
    *,
    max_rows: int,
    seed: int,
) -> Path:
    """Evidently's data-drift HTML of the feature columns, each with the threshold `drift` used."""
    columns = [*reference.numeric, *reference.categorical]
    definition = DataDefinition(
        numerical_columns=reference.numeric, categorical_columns=reference.categorical
    )
    preset = DataDriftPreset(
        columns=columns, per_column_threshold={c.column: c.threshold for c in drift.columns}
    )
    return _run(
        [preset],
        _sample(current[columns], max_rows, seed),
        _sample(reference.features, max_rows, seed),
        definition,
        path,
    )


def write_quality_report(
    reference: DriftReference, labels: np.ndarray, scores: np.ndarray, path: Path, *, max_rows: int, seed: int
) -> Path:
    """Evidently's classification quality of the labelled batch against the reference's held-out rows."""
    definition = DataDefinition(
        numerical_columns=[PREDICTION],
        categorical_columns=[TARGET],
        classification=[BinaryClassification(target=TARGET, prediction_probas=PREDICTION, pos_label=1)],
    )
    current = pd.DataFrame({TARGET: np.asarray(labels, dtype=np.int64), PREDICTION: np.asarray(scores)})
    held = pd.DataFrame({TARGET: reference.holdout_labels, PREDICTION: reference.holdout_scores})
    return _run(
        [ClassificationPreset()],
        _sample(current, max_rows, seed),
        _sample(held, max_rows, seed),
        definition,
        path,
    )


@dataclass(frozen=True)
class EvidentlyColumn:
    method: str
    threshold: float
    score: float
    drifted: bool


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    score_column: str | None = None,
    thresholds: dict[str, float] | None = None,
) -> tuple[dict[str, EvidentlyColumn], float]:
    """Evidently's own per-column results (read from ``snapshot.dict()``) and its share of drifted columns:
    what the parity test and ``benchmarks/bench_drift.py`` compare ``detect_drift`` with."""
    definition = DataDefinition(
        numerical_columns=[*numeric, *([score_column] if score_column else [])],
        categorical_columns=categorical,
    )
    thresholds = thresholds or {}
    metrics: list = [
        DataDriftPreset(columns=[*numeric, *categorical], per_column_threshold=thresholds or None)
    ]
    if score_column is not None:
        metrics.append(ValueDrift(column=score_column, threshold=thresholds.get(score_column)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Evidently's chi-square divides by zero counts
        snapshot = Report(metrics, include_tests=True).run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
        )
    result = snapshot.dict()
    prefix = "Value Drift for column "
    failed = {
        t["name"].removeprefix(prefix): t["status"] == "FAIL"
        for t in result["tests"]
        if t["name"].startswith(prefix)
    }
    columns: dict[str, EvidentlyColumn] = {}
    share = float("nan")
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            columns[config["column"]] = EvidentlyColumn(
                method=config["method"],
                threshold=config["threshold"],
                score=metric["value"],
                drifted=failed[config["column"]],
            )
        elif config["type"].endswith(":DriftedColumnsCount"):
            share = metric["value"]["share"]
    return columns, share
