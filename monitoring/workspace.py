"""The monitoring dashboard: an Evidently workspace, one project per model, one run (snapshot) per check.

Each check's run is an Evidently report over the check's own figures: a one-row table whose columns are
the dataset drift share, the drifted-column count, the prediction drift score, the estimated (and, with
labels, realised) ROC AUC with their intervals and each feature's drift score, each read back by Evidently's
built-in ``MeanValue`` metric. The dashboard therefore plots exactly what the monitor decided on the whole
batch (not Evidently's re-run on a sample), and a snapshot holds only Evidently's own classes: ``evidently
ui`` loads the workspace without importing this project.

The project's dashboard is written on every check (so a new version of this code updates it), and the
oldest runs beyond ``max_runs`` are deleted: the workspace stays bounded however often the monitor runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from monitoring.check import MonitorResult

DRIFT_SHARE = "dataset_drift_share"
DRIFT_SHARE_LIMIT = "dataset_drift_share_limit"
DRIFTED_COLUMNS = "drifted_columns"
PREDICTION_SCORE = "prediction_drift_score"
PREDICTION_THRESHOLD = "prediction_drift_threshold"
ESTIMATED_AUC = "estimated_roc_auc"
REALISED_AUC = "realised_roc_auc"
ROWS = "rows"
MAX_TAGGED_COLUMNS = 12  # drifted columns named in a run's tags (all of them are in its metadata)
TAB = "Drift monitor"
METRIC = "MeanValue"


@dataclass(frozen=True)
class RecordedCheck:
    """Where one check went in the workspace."""

    workspace: Path
    project_id: str
    snapshot_id: str


def check_summary(result: MonitorResult) -> dict[str, float]:
    """The figures of one check that the dashboard plots, by summary column (finite numbers only)."""
    drift, estimated = result.drift, result.estimated
    figures: dict[str, float] = {
        DRIFT_SHARE: drift.drifted_share,
        DRIFT_SHARE_LIMIT: drift.drift_share,
        DRIFTED_COLUMNS: float(len(drift.drifted_columns)),
        ROWS: float(drift.rows_current),
        ESTIMATED_AUC: estimated.roc_auc.value,
        f"{ESTIMATED_AUC}_low": estimated.roc_auc.low,
        f"{ESTIMATED_AUC}_high": estimated.roc_auc.high,
    }
    if drift.prediction is not None:
        figures[PREDICTION_SCORE] = drift.prediction.score
        figures[PREDICTION_THRESHOLD] = drift.prediction.threshold
    if result.realised is not None:
        auc = result.realised.roc_auc
        figures |= {REALISED_AUC: auc.value, f"{REALISED_AUC}_low": auc.low, f"{REALISED_AUC}_high": auc.high}
    return {name: float(value) for name, value in figures.items() if math.isfinite(value)}


def _metric(column: str, legend: str):
    from evidently.sdk.models import PanelMetric

    return PanelMetric(metric=METRIC, metric_labels={"column": column}, legend=legend)


def dashboard_model():
    """The project's dashboard: counters of the last check, then each figure over time."""
    from evidently.sdk.models import DashboardModel, DashboardTabModel
    from evidently.sdk.panels import bar_plot_panel, counter_panel, line_plot_panel

    panels = [
        counter_panel(
            "Dataset drift share (last check)",
            [_metric(DRIFT_SHARE, "share of drifted columns")],
            size="half",
        ),
        counter_panel("Drifted columns (last check)", [_metric(DRIFTED_COLUMNS, "columns")], size="half"),
        line_plot_panel(
            "Dataset drift share",
            [_metric(DRIFT_SHARE, "drifted share"), _metric(DRIFT_SHARE_LIMIT, "drift at or above")],
            description="Share of feature columns whose test flagged drift; the dataset drifted "
            "when it reaches the limit (monitoring.drift_share).",
        ),
        bar_plot_panel(
            "Drifted columns",
            [_metric(DRIFTED_COLUMNS, "drifted columns")],
            description="How many feature columns drifted in each check.",
            size="half",
        ),
        line_plot_panel(
            "Prediction drift",
            [_metric(PREDICTION_SCORE, "score drift"), _metric(PREDICTION_THRESHOLD, "threshold")],
            description="Drift of the served scores against the held-out validation scores "
            "(a p-value under 1000 rows, a distance above).",
            size="half",
        ),
        line_plot_panel(
            "ROC AUC: estimated and realised",
            [
                _metric(ESTIMATED_AUC, "estimated (no labels)"),
                _metric(f"{ESTIMATED_AUC}_low", "estimated, interval low"),
                _metric(f"{ESTIMATED_AUC}_high", "estimated, interval high"),
                _metric(REALISED_AUC, "realised (with labels)"),
            ],
            description="The label-free estimate from calibrated scores, and the AUC the labels gave when "
            "a check had them.",
        ),
        line_plot_panel("Rows checked", [_metric(ROWS, "rows")], size="half"),
    ]
    return DashboardModel(tabs=[DashboardTabModel(title=TAB, panels=[p.id for p in panels])], panels=panels)


def _project(workspace, model_name: str):
    found = workspace.search_project(model_name)
    if found:
        return found[0]
    return workspace.create_project(
        model_name, description=f"Drift monitor of the registered model {model_name}"
    )


def record_check(
    workspace_dir: Path,
    result: MonitorResult,
    *,
    timestamp: datetime,
    source: str,
    reports: list[str],
    max_runs: int,
) -> RecordedCheck:
    """Add one check as a run of the model's project (created on its first check) in the workspace, and
    delete the oldest runs beyond ``max_runs``."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue
    from evidently.ui.workspace import Workspace

    workspace_dir = Path(workspace_dir)
    workspace_dir.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(str(workspace_dir))
    project = _project(workspace, result.model_name)
    workspace.save_dashboard(project.id, dashboard_model())

    summary = check_summary(result)
    columns = list(summary)
    frame = pd.DataFrame([summary], columns=columns)
    snapshot = Report([MeanValue(column=column) for column in columns]).run(
        current_data=Dataset.from_pandas(frame, data_definition=DataDefinition(numerical_columns=columns)),
        timestamp=timestamp,
        tags=[
            f"v{result.version}",
            "drift" if result.drifted else "no drift",
            *(f"drifted: {c}" for c in result.drift.drifted_columns[:MAX_TAGGED_COLUMNS]),
        ],
        metadata={
            "model": result.model_name,
            "version": result.version,
            "verdict": "drift" if result.drifted else "no drift",
            "drifted_columns": ", ".join(result.drift.drifted_columns) or "none",
            "source": source,
            **{f"report_{i}": path for i, path in enumerate(reports)},
        },
    )
    ref = workspace.add_run(
        project.id, snapshot, name=f"{result.model_name} v{result.version} {timestamp:%Y-%m-%d %H:%M:%S}"
    )
    _prune(workspace, project.id, max_runs)
    return RecordedCheck(workspace_dir, str(project.id), str(ref.id))


def _prune(workspace, project_id, max_runs: int) -> None:
    """Delete the oldest runs beyond ``max_runs`` (run ids are UUIDv7: they sort by creation time)."""
    runs = sorted(workspace.list_runs(project_id), key=str)
    for snapshot_id in runs[: max(len(runs) - max_runs, 0)]:
        workspace.delete_run(project_id, snapshot_id)


def dashboard_url(ui_url: str, project_id: str) -> str:
    """The project's dashboard page in an Evidently UI serving the workspace at ``ui_url``."""
    return f"{ui_url.rstrip('/')}/projects/{project_id}"
