"""The ``drift-monitor`` flow (this module is not named ``monitoring``: Prefect runs a deployment's flow file
as a script, with ``flows/`` first on the path, where that name would shadow the ``monitoring`` package): check a batch (a table, or the champion's prediction log) against the champion's
drift reference, publish the verdict and the Evidently reports, and emit ``mlops.drift.detected`` on drift.
With a ``feature_store`` section it also checks each online feature view's freshness and emits
``mlops.features.stale`` per view older than its limit.

Wiring only: the checks are ``monitoring.check``, the I/O ``tasks.monitoring``. The event carries what the
training deployment's trigger needs to retrain: the labelled source (``monitoring.retrain_data`` or
``data.path``, never the unlabelled log) and its fingerprint. A stale view does not retrain: its cure is a
materialisation, not a new model; its event goes to the alert webhook only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow

from flows.config import PipelineConfig, load_config
from infra.home import ProjectHome
from models.seeds import Seeds
from monitoring.check import MonitorResult
from monitoring.freshness import FreshnessReport, ServedAges
from tasks.lineage import file_fingerprint
from tasks.monitoring import (
    emit_drift,
    emit_stale_features,
    last_retraining,
    load_monitored,
    publish_freshness,
    publish_result,
    read_batch,
    read_labels,
    record_dashboard,
    run_check,
    run_freshness_check,
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
    freshness: FreshnessReport | None = None  # None: the config has no feature store

    @property
    def findings(self) -> bool:
        """Drift, or a stale feature view: what `mlops monitor` exits 1 on."""
        drifted = self.result is not None and self.result.drifted
        return drifted or bool(self.freshness and self.freshness.stale)


@flow(name="drift-monitor")
def drift_monitor(
    config_path: str, data_path: str | None = None, labels_path: str | None = None
) -> MonitorSummary:
    """Check the current batch against the champion's reference; on drift, emit the event that retrains. With a
    feature store, check each feature view's freshness too; a stale view emits its event."""
    home = ProjectHome.configured()
    config = load_config(Path(config_path), home=home.root)
    seeds = Seeds.from_root(config.seed)
    registry = config.registry
    target = TrackingTarget.for_store(
        home.active_tracking_uri(), registry.experiment or registry.model_name, home.mlflow_artifacts
    )
    model = load_monitored(target, registry.model_name)
    batch = read_batch(model, config.data, Path(data_path) if data_path else None, home.prediction_logs)
    served = batch.served if batch is not None else {}
    freshness = feature_freshness(config, home, model.name, served, datetime.now(UTC))
    if batch is None:
        source = f"prediction log {home.prediction_logs} (no rows of v{model.version})"
        return MonitorSummary(None, [], source, False, freshness=freshness)
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
        result, [str(p) for p in reports], batch.source, result.drifted, retraining, dashboard, freshness
    )


def feature_freshness(
    config: PipelineConfig, home: ProjectHome, model_name: str, served: dict[str, ServedAges], now: datetime
) -> FreshnessReport | None:
    """Each online view of the config's feature service against its age limit at ``now``, published on the
    run; each stale view emits ``mlops.features.stale`` on the model's resource. None without a feature store.
    ``served``: per view, the ages the service read in the rows checked."""
    store = config.feature_store
    if store is None:
        return None
    # Imported here: tasks.feature_store loads Great Expectations (2 s) that a flat-file check never needs.
    from tasks.feature_store import service_materializations

    registered = service_materializations(store.repo, store.service)
    records = home.materializations(registered.project)
    report = run_freshness_check(registered.views, records, store, served, now)
    publish_freshness(report, model_name)
    emit_stale_features(report, model_name)
    return report
