"""Prefect tasks of the feature store: build the tables a Feast repository reads, apply it, retrieve
point-in-time training frames. The one place that calls Feast.

The repository's ``definitions.py`` is loaded here as ``feast apply`` loads it, so its views and their
sources' paths are the single statement of where each table lives. Source and table I/O is local files:
no retries, a missing file will not appear by trying again.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from models.errors import UserInputError
from models.features.activity import EVENT_TIMESTAMP, activity_features
from models.features.store import TrainingFrame, retrieval_lineage
from tasks.caching import ONCE_PER_RUN, REPLAYABLE

if TYPE_CHECKING:  # Feast is imported where it is used: 5 s that a flat-file run (flows.training) never pays
    from feast import FeatureStore, FeatureView

# The views of the CRM repository whose tables the crm-features flow writes (feature_repo/crm/definitions.py).
ATTRIBUTES_VIEW = "lead_attributes"
ACTIVITY_VIEW = "lead_activity"
_ROW = "__spine_row"  # keeps the spine's row order through the retrieval, which reorders rows


@dataclass(frozen=True)
class FeatureRepository:
    """The objects a Feast repository's definitions declare, by name."""

    path: Path
    views: dict[str, FeatureView]
    on_demand_views: list[str]
    services: list[str]
    objects: list[object]

    def table(self, view: str) -> Path:
        """The Parquet file a view's file source reads."""
        return Path(self.views[view].batch_source.path)


@dataclass(frozen=True)
class FeatureTables:
    """The tables written for the repository's views, with their row counts."""

    attributes: Path
    activity: Path
    leads: int
    activity_rows: int


def _definitions(repo_dir: Path) -> ModuleType:
    path = repo_dir / "definitions.py"
    if not (repo_dir / "feature_store.yaml").is_file() or not path.is_file():
        raise UserInputError(
            f"{repo_dir}: not a Feast feature repository (feature_store.yaml, definitions.py)"
        )
    spec = importlib.util.spec_from_file_location(f"feast_repo_{abs(hash(str(path)))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _store(repo_dir: Path) -> FeatureStore:
    """The repository's store; Feast creates the registry's file but not its folder, so that comes first."""
    from feast import FeatureStore
    from feast.repo_config import load_repo_config

    config = load_repo_config(repo_dir, repo_dir / "feature_store.yaml")
    Path(config.registry.path).parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=config)


@task(name="load-feature-repository", cache_policy=NO_CACHE)
def load_repository(repo_dir: Path) -> FeatureRepository:
    """Import the repository's definitions (paths under ``$MLOPS_HOME``, read when imported)."""
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView

    kinds = (Entity, FeatureView, OnDemandFeatureView, FeatureService)
    objects = [obj for obj in vars(_definitions(repo_dir)).values() if isinstance(obj, kinds)]
    return FeatureRepository(
        path=repo_dir,
        views={o.name: o for o in objects if isinstance(o, FeatureView)},
        on_demand_views=[o.name for o in objects if isinstance(o, OnDemandFeatureView)],
        services=[o.name for o in objects if isinstance(o, FeatureService)],
        objects=objects,
    )


def _read_source_table(source_dir: Path, name: str) -> pd.DataFrame:
    path = source_dir / f"{name}.parquet"
    if not path.is_file():
        raise UserInputError(
            f"{path}: CRM source table not found; generate it with `mlops data generate --crm`"
        )
    return pd.read_parquet(path)


@task(name="build-feature-tables", cache_policy=NO_CACHE)
def build_activity_table(source_dir: Path, repository: FeatureRepository) -> FeatureTables:
    """Aggregate the activity log into daily snapshots and copy the leads' attributes, each to the file
    its view reads. Snapshots run to the source's latest event: nothing after it is known."""
    leads = _read_source_table(source_dir, "leads")
    activities = _read_source_table(source_dir, "activities")
    end = max(leads["created_at"].max(), activities["timestamp"].max())
    table = activity_features(activities, leads, end)
    attributes, activity = repository.table(ATTRIBUTES_VIEW), repository.table(ACTIVITY_VIEW)
    for frame, path in ((leads, attributes), (table, activity)):
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
    return FeatureTables(attributes, activity, len(leads), len(table))


@task(name="apply-feature-repository", cache_policy=NO_CACHE)
def apply_repository(repository: FeatureRepository) -> list[str]:
    """Register the repository's objects in its registry, as `feast apply` does; returns their names."""
    _store(repository.path).apply(repository.objects)
    return sorted(o.name for o in repository.objects)


# Replayable: a run resumed after an approval gate trains on the frame it was suspended with.
@task(name="historical-features", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def historical_frame(
    repo_dir: Path, spine: pd.DataFrame, service_name: str, time_column: str
) -> TrainingFrame:
    """The spine's rows with the service's features as of each row's ``time_column`` (Feast's point-in-time
    join: the latest feature row at or before that time, within the view's ttl). The as-of time is also
    the request value ``as_of`` of on-demand features. Returns the spine's columns plus the features,
    in the spine's order, and the retrieval's lineage tags."""
    if time_column not in spine.columns:
        raise UserInputError(f"label spine: the as-of column {time_column!r} (data.time_column) is missing")
    store = _store(repo_dir)
    try:
        service = store.get_feature_service(service_name)
    except Exception as exc:  # Feast raises its own not-found error per registry type
        raise UserInputError(f"feature service {service_name!r} not found in {repo_dir}: {exc}") from None
    as_of = pd.to_datetime(spine[time_column], utc=True)
    entities = spine.assign(**{EVENT_TIMESTAMP: as_of, "as_of": as_of, _ROW: range(len(spine))})
    retrieved_at = datetime.now(UTC)
    frame = store.get_historical_features(entity_df=entities, features=service).to_df()
    frame = frame.sort_values(_ROW).drop(columns=[_ROW, EVENT_TIMESTAMP]).reset_index(drop=True)
    if time_column != "as_of":
        frame = frame.drop(columns=["as_of"])
    views = [projection.name for projection in service.feature_view_projections]
    return TrainingFrame(frame, retrieval_lineage(service_name, views, retrieved_at))
