"""The ``crm-features`` and ``materialize-features`` flows, and the training frame of a pipeline config with
or without a feature store.

Wiring only: the aggregation is ``models.features.activity``, which rows a materialisation writes is
``models.features.incremental``, the Feast calls are ``tasks.feature_store``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, runtime

from flows.config import PipelineConfig, load_config
from infra.home import ProjectHome
from models.errors import UserInputError
from models.features.incremental import InvalidFeatureBatchError, materialization_end
from models.features.materialization import MaterializationRecord, ViewWindow
from models.features.store import FeatureLookup, TrainingFrame
from tasks.data import load_data
from tasks.feature_store import (
    apply_repository,
    build_activity_table,
    feature_lookup,
    historical_frame,
    load_repository,
    plan_materialization,
    publish_materialization,
    record_materialization,
    use_wal_journal,
    validate_batches,
    write_online_store,
)


@dataclass(frozen=True)
class FeatureRefresh:
    """What one crm-features run wrote and registered."""

    repo: Path
    attributes_table: str  # where each table was written: its file, or its table in the stack's database
    activity_table: str
    leads: int
    activity_rows: int
    applied: list[str]


@flow(name="crm-features")
def crm_features(repo: str, source: str) -> FeatureRefresh:
    """Aggregate the CRM source's activity log into the tables the repository's views read, then apply
    the repository (as `feast apply` does). Tables and registry live under ``$MLOPS_HOME``."""
    ProjectHome.configured()  # the repository's paths read MLOPS_HOME
    repository = load_repository(Path(repo))
    tables = build_activity_table(Path(source), repository)
    applied = apply_repository(repository)
    return FeatureRefresh(
        Path(repo), tables.attributes, tables.activity, tables.leads, tables.activity_rows, applied
    )


@dataclass(frozen=True)
class Materialization:
    """What one materialize-features run refreshed and wrote into the online store."""

    refresh: FeatureRefresh
    record: MaterializationRecord  # per view written: rows, and the event-time interval they came from
    record_path: Path  # the project's record file, where ``record`` is the last line
    current: list[str]  # views already materialised up to the end: nothing to write
    table_latest: dict[str, datetime | None]  # per view written, the latest event time in its table
    journal_mode: str | None  # the SQLite online store's ("wal"); None for another online store


@flow(name="materialize-features")
def materialize_features(config_path: str, end: datetime | None = None) -> Materialization:
    """Refresh the feature tables (crm-features), then write into the online store what each view gained
    since its last materialisation, up to ``end`` (default now): per entity its latest row. Each view's
    batch must first pass ``feature_store.expectations``; if one fails, nothing is written and the run
    fails with `InvalidFeatureBatchError` naming the expectations. Every run not refused appends its record
    (the views it wrote; none when nothing was new) to
    ``$MLOPS_HOME/features/<Feast project>/materializations.jsonl``."""
    home = ProjectHome.configured()
    store = load_config(Path(config_path), home=home.root).feature_store
    if store is None:
        raise UserInputError(f"{config_path}: no feature_store section, so no features to materialise")
    until = materialization_end(end, datetime.now(UTC))
    refresh = crm_features(str(store.repo), str(store.source))
    plan = plan_materialization(store.repo, until)
    reports = validate_batches(plan, store.expectations) if store.expectations else {}
    publish_materialization(plan, reports)
    if not all(report.success for report in reports.values()):
        raise InvalidFeatureBatchError(reports)
    journal_mode = use_wal_journal(store.repo)
    write_online_store(store.repo, plan)
    views = {b.view: ViewWindow(len(b.rows), b.interval.start, b.interval.end) for b in plan.batches}
    record = MaterializationRecord(datetime.now(UTC), runtime.flow_run.id, views)
    path = record_materialization(home.materializations(plan.project), record)
    latest = {b.view: b.table_latest for b in plan.batches}
    return Materialization(refresh, record, path, plan.current, latest, journal_mode)


def training_frame(config: PipelineConfig) -> TrainingFrame:
    """The rows a pipeline trains on: the data file as it is or, with a ``feature_store`` section, the label
    spine at ``data.path`` with each row's features as of its ``data.time_column`` (point in time)."""
    data = load_data(config.data)
    store = config.feature_store
    if store is None:
        return TrainingFrame(data)
    crm_features(str(store.repo), str(store.source))
    assert config.data.time_column, "validated: a feature_store section needs data.time_column"
    return historical_frame(store.repo, data, store.service, config.data.time_column)


def model_lookup(config: PipelineConfig) -> FeatureLookup | None:
    """How a model of ``config`` reads its features by entity id: its feature service and repository, or None
    without a feature store (requests then carry every feature)."""
    store = config.feature_store
    if store is None:
        return None
    assert config.data.id_column, "validated: a feature_store section needs data.id_column"
    return feature_lookup(store.repo, store.service, config.data.id_column)
