"""The ``drift-monitor`` flow (this module is not named ``monitoring``: Prefect runs a deployment's flow file
as a script, with ``flows/`` first on the path, where that name would shadow the ``monitoring`` package): check a batch (a table, or the champion's prediction log) against the champion's
drift reference, publish the verdict and the Evidently reports, and emit ``mlops.drift.detected`` on drift.

Wiring only: the checks are ``monitoring.check``, the I/O ``tasks.monitoring``. The event carries what the
training deployment's trigger needs to retrain: the labelled source (``monitoring.retrain_data`` or
``data.path``, never the unlabelled log) and its fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow

from flows.config import load_config
from infra.home import ProjectHome
from models.seeds import Seeds
from monitoring.check import MonitorResult
from tasks.lineage import file_fingerprint
from tasks.monitoring import (
    emit_drift,
    last_retraining,
    load_monitored,
    publish_result,
    read_batch,
    read_labels,
    record_dashboard,
    run_check,
    write_reports,
)
from tasks.tracking import TrackingTarget


@dataclass
class MonitorSummary:
    """What one check found and where its reports are; `result` None: nothing to check (an empty log)."""

    result: MonitorResult | None
    reports: list[str]
    source: str
    event_emitted: bool
    retraining: str = ""  # the training deployment's last run, in words
    dashboard: str = ""  # where the check's run is in the Evidently UI, in words


@flow(name="drift-monitor")
def drift_monitor(
    config_path: str, data_path: str | None = None, labels_path: str | None = None
) -> MonitorSummary:
    """Check the current batch against the champion's reference; on drift, emit the event that retrains."""
    home = ProjectHome.configured()
    config = load_config(Path(config_path), home=home.root)
    seeds = Seeds.from_root(config.seed)
    registry = config.registry
    target = TrackingTarget.for_store(
        home.active_tracking_uri(), registry.experiment or registry.model_name, home.mlflow_artifacts
    )
    model = load_monitored(target, registry.model_name)
    batch = read_batch(model, config.data, Path(data_path) if data_path else None, home.prediction_logs)
    if batch is None:
        return MonitorSummary(
            None, [], f"prediction log {home.prediction_logs} (no rows of v{model.version})", False
        )
    labels = read_labels(batch, config.data, Path(labels_path)) if labels_path else None
    result = run_check(model, batch, labels, config.monitoring, config.evaluation, seeds.bootstrap)
    checked_at = datetime.now(UTC)
    folder = home.reports / "drift" / f"{registry.model_name}-v{model.version}-{checked_at:%Y%m%dT%H%M%SZ}"
    reports = write_reports(model, batch, result.drift, labels, folder, seeds.diagnostics)
    dashboard = record_dashboard(
        result,
        home.evidently_workspace,
        checked_at,
        batch.source,
        reports,
        config.monitoring.dashboard_max_runs,
    )
    retraining = f"Last retraining run of training-pipeline/{config.name}: {last_retraining(f'training-pipeline/{config.name}')}"
    publish_result(result, reports, retraining, dashboard)
    retrain = Path(config.monitoring.retrain_data or config.data.path)
    if result.drifted:
        emit_drift(
            result,
            result.payload(
                report=str(reports[0]),
                data_source=batch.source,
                retrain_data=str(retrain),
                fingerprint=file_fingerprint(retrain),
            ),
        )
    return MonitorSummary(
        result, [str(p) for p in reports], batch.source, result.drifted, retraining, dashboard
    )
