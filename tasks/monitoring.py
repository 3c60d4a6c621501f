"""Monitoring I/O: each version's drift reference, the batch to check, labels, reports, the drift event, and
the feature store's freshness and its event (pure code in ``monitoring/``)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter
from prefect.client.schemas.sorting import FlowRunSort
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound

from models.artifact.scorer import TabularScorer
from models.data.config import DataConfig
from models.data.io import read_table
from models.data.split import binary_labels
from models.errors import UserInputError
from models.evaluation.config import EvaluationConfig
from models.features.config import FeatureConfig
from models.features.materialization import as_utc, last_materialization
from models.features.store import FeatureStoreConfig
from models.governance.names import Alias, Variant
from monitoring.check import MonitorResult, check_batch, require_usable_batch
from monitoring.config import MonitoringConfig
from monitoring.drift import DriftReport
from monitoring.freshness import (
    FreshnessReport,
    ServedAges,
    ViewMaterialization,
    check_freshness,
    served_ages,
)
from monitoring.prediction_log import log_files, read_records
from monitoring.reference import SCORE_QUANTILES_TAG, DriftReference, reference_score_quantiles
from monitoring.workspace import dashboard_url, record_check
from tasks.caching import IO_RETRIES, PER_RUN_INPUTS, REPLAYABLE
from tasks.registry import RegisteredVersion, load_scorer, version_by_alias
from tasks.tracking import TrackingTarget

if TYPE_CHECKING:  # tasks.training imports Ray (the sweep): seconds at every `mlops monitor` start
    from tasks.training import PreparedData

REFERENCE_FOLDER = "drift_reference"
REFERENCE_TAG = "monitoring.reference"  # on the version: the artifact URI of its reference
DRIFT_EVENT = "mlops.drift.detected"
STALE_FEATURES_EVENT = "mlops.features.stale"  # one per stale feature view, on the model's resource
EVIDENTLY_UI_ENV = "MLOPS_EVIDENTLY_UI_URL"  # set by `mlops` commands while `mlops up`'s Evidently UI runs
REPORT_ROWS = 20_000  # rows per side in Evidently's HTML reports (it takes tens of seconds per 100k)


@task(name="save-drift-reference", cache_policy=PER_RUN_INPUTS, **REPLAYABLE, **IO_RETRIES)
def save_drift_reference(
    target: TrackingTarget,
    version: RegisteredVersion,
    prepared: PreparedData,
    scorer: TabularScorer,
    features: FeatureConfig,
    monitoring: MonitoringConfig,
    seed: int,
) -> str:
    """A training-split sample and the held-out validation scores and labels, as the version's run artifact
    `drift_reference/`; the version's tag `monitoring.reference` points at it, and `monitoring.score_quantiles`
    holds the held-out scores' quantiles the service exports for the score-shift alert. Returns the artifact
    URI."""
    split = prepared.split
    reference = DriftReference.of(
        scorer.transform.canonical_inputs(split.train),
        numeric=list(features.numeric),
        categorical=list(features.categorical),
        holdout_scores=scorer.predict_proba(split.val),
        holdout_labels=prepared.y_val,
        threshold=scorer.decision.threshold if scorer.decision is not None else None,
        rows=monitoring.reference_rows,
        seed=seed,
    )
    client = target.client()
    with tempfile.TemporaryDirectory() as tmp:
        folder = reference.save(Path(tmp) / REFERENCE_FOLDER)
        client.log_artifacts(version.run_id, str(folder), artifact_path=REFERENCE_FOLDER)
    uri = f"runs:/{version.run_id}/{REFERENCE_FOLDER}"
    client.set_model_version_tag(version.name, version.version, REFERENCE_TAG, uri)
    quantiles = reference_score_quantiles(reference.holdout_scores)
    client.set_model_version_tag(version.name, version.version, SCORE_QUANTILES_TAG, json.dumps(quantiles))
    return uri


def load_drift_reference(tracking_uri: str, uri: str) -> DriftReference:
    """The reference a version's `monitoring.reference` tag names, downloaded and loaded."""
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        return DriftReference.load(Path(local))


@dataclass(frozen=True)
class Monitored:
    """The champion under watch: its version, its scorer and its drift reference."""

    name: str
    version: str
    scorer: TabularScorer
    reference: DriftReference


@dataclass(frozen=True)
class Batch:
    """Current rows to check: raw features, the champion's scores, entity ids when known, and their source."""

    features: pd.DataFrame
    scores: np.ndarray
    ids: pd.Series | None
    source: str
    # Per feature view, the ages of the features the service read by entity id (from the log; none for a table).
    served: dict[str, ServedAges] = field(default_factory=dict)


@task(name="load-monitored-model", **IO_RETRIES)
def load_monitored(target: TrackingTarget, name: str) -> Monitored:
    """The champion of `name` with its scorer and drift reference; a clear error when there is none."""
    version = version_by_alias(target, name, Alias.CHAMPION)
    if version is None:
        raise UserInputError(
            f"model {name!r} has no champion yet: nothing to monitor (run `mlops run` first)"
        )
    tags = target.client().get_model_version(name, version.version).tags
    if REFERENCE_TAG not in tags:
        raise UserInputError(
            f"{name} v{version.version} has no drift reference (tag {REFERENCE_TAG}): it was registered before "
            "monitoring existed; retrain to get one"
        )
    scorer = load_scorer(target.tracking_uri, version.uri)
    return Monitored(
        name, version.version, scorer, load_drift_reference(target.tracking_uri, tags[REFERENCE_TAG])
    )


@task(name="read-current-batch")
def read_batch(model: Monitored, data: DataConfig, data_path: Path | None, log_dir: Path) -> Batch | None:
    """A table (`data_path`, read with the config's CSV options and scored by the champion) or, without one,
    the champion's rows of the prediction log (their logged features and scores); None when the log holds
    no row of this version (nothing to check, not an error)."""
    if data_path is not None:
        frame = read_table(
            data_path, delimiter=data.delimiter, na_values=data.na_values, parse_dates=data.parse_dates
        )
        reference = model.reference
        require_usable_batch(
            frame, numeric=reference.numeric, categorical=reference.categorical, source=str(data_path)
        )
        canonical = model.scorer.transform.canonical_inputs(frame)
        ids = frame[data.id_column] if data.id_column and data.id_column in frame.columns else None
        return Batch(canonical, model.scorer.predict_proba(frame), ids, str(data_path))
    records = [
        r
        for r in read_records(log_files(log_dir))
        if r.variant == Variant.CHAMPION.value
        and r.model_version == model.version
        and r.model_name in (model.name, "")  # "": written before records named their model
    ]
    if not records:
        return None
    frame = pd.DataFrame([r.features for r in records])
    canonical = model.scorer.transform.canonical_inputs(frame)
    # Entity ids join outcomes (--labels) to logged rows; a log without them cannot be joined.
    entities = [r.entity_id for r in records]
    ids = pd.Series(entities, name=data.id_column) if all(e is not None for e in entities) else None
    scores = np.array([r.score for r in records])
    return Batch(canonical, scores, ids, f"prediction log {log_dir}", served_ages(records))


@task(name="read-labels")
def read_labels(batch: Batch, data: DataConfig, labels_path: Path) -> np.ndarray:
    """Labels of the batch's rows, joined by the config's id column; every row must have one."""
    if batch.ids is None or not data.id_column:
        raise UserInputError(
            f"--labels needs the batch's {data.id_column or 'id'} column to join on (data.id_column)"
        )
    labels = read_table(labels_path, delimiter=data.delimiter, na_values=data.na_values)
    for column in (data.id_column, data.target):
        if column not in labels.columns:
            raise UserInputError(f"{labels_path}: no column {column!r} to join labels on")
    by_id = labels.drop_duplicates(data.id_column).set_index(data.id_column)[data.target]
    # Compared as text: the prediction log keeps entity ids as strings, a table may read them as numbers.
    by_id.index = by_id.index.astype(str)
    joined = batch.ids.astype(str).map(by_id)
    if joined.isna().any():
        raise UserInputError(f"{labels_path}: {int(joined.isna().sum())} batch rows have no label")
    return binary_labels(joined.to_frame(data.target), data.target, data.positive_class)


@task(name="write-drift-reports")
def write_reports(
    model: Monitored, batch: Batch, drift: DriftReport, labels: np.ndarray | None, folder: Path, seed: int
) -> list[Path]:
    """Evidently's HTML reports (data drift; with labels, classification quality) under `folder`."""
    # Imported here: Evidently's import (about 3 s) is paid by the monitor, not by every training run.
    from monitoring.evidently_report import write_drift_report, write_quality_report

    paths = [
        write_drift_report(
            model.reference, batch.features, drift, folder / "drift.html", max_rows=REPORT_ROWS, seed=seed
        )
    ]
    if labels is not None:
        paths.append(
            write_quality_report(
                model.reference,
                labels,
                batch.scores,
                folder / "quality.html",
                max_rows=REPORT_ROWS,
                seed=seed,
            )
        )
    return paths


@task(name="record-dashboard-run", **IO_RETRIES)
def record_dashboard(
    result: MonitorResult,
    workspace: Path,
    timestamp: datetime,
    source: str,
    reports: list[Path],
    max_runs: int,
) -> str:
    """The check as one run of the model's project in the Evidently workspace; where to see it, in words."""
    recorded = record_check(
        workspace,
        result,
        timestamp=timestamp,
        source=source,
        reports=[str(p) for p in reports],
        max_runs=max_runs,
    )
    ui = os.environ.get(EVIDENTLY_UI_ENV)
    if ui:
        return f"Dashboard: {dashboard_url(ui, recorded.project_id)}"
    return (
        f"Dashboard: project {result.model_name} ({recorded.project_id}) in the Evidently workspace {workspace}; "
        "`mlops up` serves it"
    )


@task(name="publish-monitor-result")
def publish_result(result: MonitorResult, reports: list[Path], retraining: str, dashboard: str) -> None:
    """The verdict table as a Prefect markdown artifact, linking the HTML reports, the dashboard and the last
    retraining run."""
    links = "\n".join(f"- Evidently report: `{p}`" for p in reports) + f"\n- {dashboard}\n- {retraining}"
    key = re.sub(r"[^a-z0-9-]+", "-", f"drift-monitor-{result.model_name}".lower())
    create_markdown_artifact(key=key, markdown=f"{result.markdown()}\n\n{links}", description="Drift monitor")


@task(name="emit-drift-event")
def emit_drift(result: MonitorResult, payload: dict) -> None:
    """`mlops.drift.detected` on resource `mlops.model.<name>`: what the training deployment's trigger waits for."""
    emit_event(
        event=DRIFT_EVENT,
        resource={
            "prefect.resource.id": f"mlops.model.{result.model_name}",
            "prefect.resource.name": result.model_name,
        },
        payload=payload,
    )


@task(name="check-batch")
def run_check(
    model: Monitored,
    batch: Batch,
    labels: np.ndarray | None,
    monitoring: MonitoringConfig,
    evaluation: EvaluationConfig,
    seed: int,
) -> MonitorResult:
    """Drift of the batch against the version's reference, and its performance with and without labels."""
    return check_batch(
        model.reference,
        batch.features,
        batch.scores,
        labels,
        model_name=model.name,
        version=model.version,
        config=monitoring,
        n_resamples=evaluation.n_bootstrap,
        seed=seed,
        confidence=evaluation.confidence,
    )


@task(name="last-retraining-run")
def last_retraining(deployment: str) -> str:
    """The training deployment's latest run in words, so an operator sees why a new drift did not retrain."""
    with get_client(sync_client=True) as client:
        try:
            found = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            return "none (the training deployment is not registered: `mlops deploy` registers it)"
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id={"any_": [found.id]}),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
    if not runs:
        return "none yet"
    run = runs[0]
    started = run.start_time or run.expected_start_time
    when = f", started {started:%Y-%m-%d %H:%M} UTC" if started else ""
    return f"{run.name} ({run.state.name if run.state else 'unknown'}{when})"


@task(name="check-feature-freshness")
def run_freshness_check(
    views: list[ViewMaterialization],
    records: Path,
    store: FeatureStoreConfig,
    served: dict[str, ServedAges],
    now: datetime,
) -> FreshnessReport:
    """Each view's age at ``now`` against its limit (`monitoring.freshness.check_freshness`). When each view's
    materialisation last ran comes from the record file ``records``, for the views whose furthest run there
    ends where the registry's does (the registry is authoritative; a run outside the flow leaves no record)."""
    runs = last_materialization(records)
    known = [
        replace(view, ran_at=runs[view.view].at)
        if view.view in runs
        and view.last_end is not None
        and as_utc(runs[view.view].end) == as_utc(view.last_end)
        else view
        for view in views
    ]
    return check_freshness(
        known, service=store.service, max_age_minutes=store.max_age_minutes, served=served, now=now
    )


@task(name="publish-feature-freshness")
def publish_freshness(report: FreshnessReport, model_name: str) -> None:
    """The per-view freshness table as a Prefect markdown artifact."""
    key = re.sub(r"[^a-z0-9-]+", "-", f"feature-freshness-{model_name}".lower())
    create_markdown_artifact(key=key, markdown=report.markdown(), description="Feature freshness")


@task(name="emit-stale-features-events")
def emit_stale_features(report: FreshnessReport, model_name: str) -> list[str]:
    """`mlops.features.stale` per stale view, on resource `mlops.model.<name>` (where the alert automations
    listen) with the view as a related resource; returns the views it emitted for."""
    for view in report.stale:
        emit_event(
            event=STALE_FEATURES_EVENT,
            resource={
                "prefect.resource.id": f"mlops.model.{model_name}",
                "prefect.resource.name": model_name,
            },
            related=[
                {
                    "prefect.resource.id": f"mlops.feature-view.{view.view}",
                    "prefect.resource.role": "feature-view",
                    "prefect.resource.name": view.view,
                }
            ],
            payload=view.payload(model_name, report.service),
        )
    return [view.view for view in report.stale]
