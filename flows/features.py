"""The ``crm-features`` flow, and the training frame of a pipeline config with or without a feature store.

Wiring only: the aggregation is ``models.features.activity``, the Feast calls are ``tasks.feature_store``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import flow

from flows.config import PipelineConfig
from infra.home import ProjectHome
from models.features.store import TrainingFrame
from tasks.data import load_data
from tasks.feature_store import apply_repository, build_activity_table, historical_frame, load_repository


@dataclass(frozen=True)
class FeatureRefresh:
    """What one crm-features run wrote and registered."""

    repo: Path
    attributes_table: Path
    activity_table: Path
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
