"""Prefect tasks of the feature store: build the tables a Feast repository reads, apply it, retrieve
point-in-time training frames, materialise the online store. The one place that calls Feast.

The repository's ``definitions.py`` is loaded here as ``feast apply`` loads it, so its views and their
sources' paths are the single statement of where each table lives. Source and table I/O is local files:
no retries, a missing file will not appear by trying again. Writes to the online store retry: a second
writer (two materialisations at once) may hold SQLite's one write lock for a moment.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd
import yaml
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from models.data.suite import load_suite
from models.data.validation import ValidationReport, validate_frame
from models.errors import UserInputError
from models.features.activity import EVENT_TIMESTAMP, activity_features
from models.features.incremental import (
    ViewInterval,
    latest_rows,
    suite_for_columns,
    unknown_columns,
    view_interval,
)
from models.features.materialization import MaterializationRecord, append_record
from models.features.store import FeatureLookup, TrainingFrame, on_stack, retrieval_lineage
from monitoring.freshness import ViewMaterialization
from tasks.caching import IO_RETRIES, ONCE_PER_RUN, REPLAYABLE

if TYPE_CHECKING:  # Feast is imported where it is used: 5 s that a flat-file run (flows.training) never pays
    from feast import FeatureService, FeatureStore, FeatureView
    from feast.repo_config import RepoConfig

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


@dataclass(frozen=True)
class FeatureTables:
    """The tables written for the repository's views, with their row counts."""

    attributes: str  # where each table was written: its file, or its table in the stack's database
    activity: str
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


def repo_config(repo_dir: Path) -> RepoConfig:
    """The repository's feature_store.yaml as Feast reads it (variables expanded), on the stack's Redis and
    Postgres when this process is a client of the stack (`models.features.store.on_stack`)."""
    from feast.repo_config import RepoConfig

    path = Path(repo_dir) / "feature_store.yaml"
    raw = yaml.safe_load(os.path.expandvars(path.read_text()))
    config = RepoConfig(**on_stack(raw, os.environ))
    config.repo_path = Path(repo_dir)
    return config


def _store(repo_dir: Path) -> FeatureStore:
    """The repository's store; Feast creates a file registry's file but not its folder, so that comes first."""
    from feast import FeatureStore

    config = repo_config(repo_dir)
    if config.registry.registry_type == "file":
        Path(config.registry.path).parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=config)


def feature_lookup(repo_dir: Path, service: str, entity_column: str) -> FeatureLookup:
    """What a model trained from ``service`` saves to score by entity id: the service and the repository's
    config as written (its ``${MLOPS_HOME}`` is expanded where the model is served)."""
    config = Path(repo_dir) / "feature_store.yaml"
    if not config.is_file():
        raise UserInputError(f"{repo_dir}: not a Feast feature repository (feature_store.yaml)")
    return FeatureLookup(service, entity_column, config.read_text())


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
    attributes = write_view_table(repository.path, repository.views[ATTRIBUTES_VIEW], leads)
    activity = write_view_table(repository.path, repository.views[ACTIVITY_VIEW], table)
    return FeatureTables(attributes, activity, len(leads), len(table))


def write_view_table(repo_dir: Path, view: FeatureView, frame: pd.DataFrame) -> str:
    """Replace the table ``view``'s batch source reads with ``frame``; returns where it went. A file source's
    Parquet file, or a Postgres source's table in the offline store's database (the stack's), replaced in one
    transaction: a retrieval or materialisation meanwhile reads the old table or the new one, never half."""
    source = view.batch_source
    if _is_file_source(source):
        path = _file_path(repo_dir, source)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
        return str(path)
    table = _postgres_table(view)
    # Naive times are UTC, as Feast reads them from Parquet: stored as timestamptz they read back the same.
    frame = frame.assign(
        **{
            column: frame[column].dt.tz_localize(UTC)
            for column in frame.columns
            if pd.api.types.is_datetime64_dtype(frame[column]) and frame[column].dt.tz is None
        }
    )
    engine = _offline_engine(repo_dir)
    staging = f"{table}__new"
    try:
        with engine.begin() as connection:
            frame.to_sql(staging, connection, if_exists="replace", index=False, method=_copy_rows)
            connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}"')
            connection.exec_driver_sql(f'ALTER TABLE "{staging}" RENAME TO "{table}"')
    finally:
        engine.dispose()
    return f"table {table} of {engine.url.render_as_string(hide_password=True)}"


def _is_file_source(source: object) -> bool:
    from feast import FileSource

    return isinstance(source, FileSource)


def _file_path(repo_dir: Path, source: object) -> Path:
    path = Path(source.path)  # type: ignore[attr-defined]
    return path if path.is_absolute() else repo_dir / path


def _postgres_table(view: FeatureView) -> str:
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

    source = view.batch_source
    if not isinstance(source, PostgreSQLSource) or not source.get_table_query_string().isidentifier():
        raise UserInputError(
            f"feature view {view.name!r}: its source must be a Parquet file or a Postgres table, not "
            f"{type(source).__name__} {getattr(source, 'name', '')!r}"
        )
    return source.get_table_query_string()


def _offline_engine(repo_dir: Path):
    """A SQLAlchemy engine on the repository's Postgres offline store (through psycopg2, as MLflow's)."""
    from sqlalchemy import URL, create_engine

    config = repo_config(repo_dir).offline_store
    if config.type != "postgres":
        raise UserInputError(
            f"{repo_dir}: the views read Postgres tables but the offline store is {config.type!r}: set "
            "MLOPS_FEAST_REGISTRY (the stack's `mlops` commands do) or apply the repository again"
        )
    url = URL.create(
        "postgresql+psycopg2",
        username=config.user,
        password=config.password,
        host=config.host,
        port=config.port,
        database=config.database,
        query={"sslmode": config.sslmode} if config.sslmode else {},
    )
    return create_engine(url, pool_pre_ping=True)


def _copy_rows(table, connection, keys, rows) -> int:
    """pandas ``to_sql`` writer through Postgres's COPY (CSV; an empty field is NULL): about 50x the rows per
    second of the default INSERTs on a 1.8M-row activity table."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    buffer.seek(0)
    columns = ", ".join(f'"{key}"' for key in keys)
    with connection.connection.cursor() as cursor:
        cursor.copy_expert(f'COPY "{table.name}" ({columns}) FROM STDIN WITH (FORMAT csv)', buffer)
        return cursor.rowcount


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
    retrieved_at = datetime.now(UTC)
    frame, service = _point_in_time(repo_dir, spine, service_name, time_column)
    views = [projection.name for projection in service.feature_view_projections]
    return TrainingFrame(frame, retrieval_lineage(service_name, views, retrieved_at))


def _point_in_time(
    repo_dir: Path, spine: pd.DataFrame, service_name: str, time_column: str
) -> tuple[pd.DataFrame, FeatureService]:
    """``spine`` with the service's features as of each row's ``time_column``, in the spine's order."""
    store = _store(repo_dir)
    try:
        service = store.get_feature_service(service_name)
    except Exception as exc:  # Feast raises its own not-found error per registry type
        raise UserInputError(f"feature service {service_name!r} not found in {repo_dir}: {exc}") from None
    as_of = pd.to_datetime(spine[time_column], utc=True)
    spine = spine.reset_index(drop=True)
    entities = spine.assign(
        **{EVENT_TIMESTAMP: as_of.to_numpy(), "as_of": as_of.to_numpy(), _ROW: range(len(spine))}
    )
    try:
        retrieved = store.get_historical_features(entity_df=entities, features=service).to_df()
    except TypeError as exc:
        # Feast 0.67's file offline store: when no entity row matches any row of a view, the joined
        # timestamps are all null and naive, and its ttl filter fails comparing them with the entity times.
        if "Invalid comparison" not in str(exc):
            raise
        keys = [entity.join_key for entity in store.list_entities() if entity.join_key in spine.columns]
        values = spine[keys[0]] if keys else spine.index.to_series()
        listed = ", ".join(map(str, values.head(5))) + (" ..." if len(values) > 5 else "")
        raise UserInputError(
            f"none of the {len(spine)} {keys[0] if keys else 'entity'} value(s) has any row in a view of "
            f"{service_name}: {listed}"
        ) from None
    # By the row number, not by position: Feast's join leaves out an entity row with no feature row at all
    # at its time (a lead scored before its creation), whose features are then missing.
    features = [c for c in retrieved.columns if c not in entities.columns]
    by_row = retrieved.set_index(_ROW)[features].reindex(range(len(spine))).reset_index(drop=True)
    return pd.concat([spine, by_row], axis=1), service


@task(name="features-by-id", cache_policy=NO_CACHE)
def features_by_id(
    repo_dir: Path, rows: pd.DataFrame, service_name: str, entity_column: str, at: datetime
) -> pd.DataFrame:
    """``rows`` (entity ids, optionally an ``as_of`` column) with the service's features they do not carry, as
    each row's ``as_of`` (default ``at``) saw them: Feast's point-in-time retrieval, as training's. A row
    whose entity no view of the service knows is a `UserInputError` naming it (scoring it would score
    nothing but missing values)."""
    if entity_column not in rows.columns:
        raise UserInputError(f"the rows to score by id need their {entity_column!r} column")
    as_of = (
        pd.to_datetime(rows["as_of"], utc=True)
        if "as_of" in rows.columns
        else pd.Series(at, index=rows.index)
    )
    spine = pd.DataFrame(
        {entity_column: rows[entity_column].astype(str).to_numpy(), "as_of": as_of.to_numpy()}
    )
    frame, service = _point_in_time(repo_dir, spine, service_name, "as_of")
    store = _store(repo_dir)
    regular = {view.name for view in store.list_feature_views()}
    stored = [f.name for p in service.feature_view_projections if p.name in regular for f in p.features]
    unknown = frame.loc[frame[stored].isna().all(axis=1), entity_column]
    if len(unknown):
        listed = ", ".join(map(str, unknown.head(5))) + (" ..." if len(unknown) > 5 else "")
        raise UserInputError(
            f"{len(unknown)} {entity_column} value(s) have no features in any view of {service_name} at their "
            f"as-of time: {listed}"
        )
    served = [f.name for p in service.feature_view_projections for f in p.features]
    added = [c for c in served if c not in rows.columns]  # the service's features, not the on-demand inputs
    return pd.concat([rows.reset_index(drop=True), frame[added]], axis=1)


# Materialisation: the batch each view would write is read and checked first, then Feast writes it.


@dataclass(frozen=True)
class ViewBatch:
    """One view's rows a materialisation writes: the latest row of each entity in the view's interval."""

    interval: ViewInterval
    rows: pd.DataFrame  # join keys, features, event time: the columns Feast writes
    table_latest: datetime | None  # the latest event time in the view's table: why a batch may be empty

    @property
    def view(self) -> str:
        return self.interval.view


@dataclass(frozen=True)
class MaterializationPlan:
    """What one materialisation up to ``end`` writes, read before anything is written."""

    project: str  # the Feast project, which names the record file's folder
    end: datetime
    batches: list[ViewBatch]  # the views with an interval to write
    current: list[str]  # views already materialised up to ``end`` or past it: nothing to write


def _view_table(repo_dir: Path, view: FeatureView) -> tuple[pd.DataFrame, datetime | None]:
    """The columns of a view's file source that Feast writes, renamed as the source maps them, and the
    table's latest event time."""
    source = view.batch_source
    table = _read_view_table(repo_dir, view).rename(columns=source.field_mapping or {})
    created = [source.created_timestamp_column] if source.created_timestamp_column else []
    columns = [*view.join_keys, *(f.name for f in view.features), source.timestamp_field, *created]
    latest = pd.to_datetime(table[source.timestamp_field], utc=True).max()
    return table[list(dict.fromkeys(columns))], None if pd.isna(latest) else latest.to_pydatetime()


def _read_view_table(repo_dir: Path, view: FeatureView) -> pd.DataFrame:
    """The whole table ``view``'s batch source reads: its Parquet file or its Postgres table."""
    source = view.batch_source
    if _is_file_source(source):
        path = _file_path(repo_dir, source)
        if not path.is_file():
            raise UserInputError(f"{path}: the table of feature view {view.name!r} is missing")
        return pd.read_parquet(path)
    table = _postgres_table(view)
    engine = _offline_engine(repo_dir)
    try:
        from sqlalchemy import inspect

        if not inspect(engine).has_table(table):
            raise UserInputError(
                f"table {table} of feature view {view.name!r} is missing from the offline store: run the "
                "crm-features flow (or `mlops features materialize`) first"
            )
        return pd.read_sql_table(table, engine)
    finally:
        engine.dispose()


@task(name="plan-materialization", cache_policy=NO_CACHE)
def plan_materialization(repo_dir: Path, end: datetime) -> MaterializationPlan:
    """Per online feature view in the registry: the interval a run up to ``end`` materialises (from the view's
    last materialisation, or its ttl before ``end``) and the rows it will write there."""
    store = _store(repo_dir)
    batches, current = [], []
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        if not view.online:
            continue
        interval = view_interval(view.name, view.ttl, view.most_recent_end_time, end)
        if interval.empty:
            current.append(view.name)
            continue
        table, table_latest = _view_table(repo_dir, view)
        source = view.batch_source
        rows = latest_rows(
            table, view.join_keys, source.timestamp_field, interval, source.created_timestamp_column or None
        )
        batches.append(ViewBatch(interval, rows, table_latest))
    return MaterializationPlan(store.project, end, batches, current)


@task(name="validate-feature-batches", cache_policy=NO_CACHE)
def validate_batches(plan: MaterializationPlan, suite_path: Path) -> dict[str, ValidationReport]:
    """Each view's batch against the expectations of the suite at ``suite_path`` on its columns (an empty
    batch writes nothing and is not checked). A suite naming a column no view has is a user error."""
    suite = load_suite(suite_path)
    unknown = unknown_columns(suite, {column for batch in plan.batches for column in batch.rows.columns})
    if plan.batches and unknown:
        raise UserInputError(
            f"{suite_path}: the suite checks columns no feature view has: {', '.join(unknown)}"
        )
    return {
        batch.view: validate_frame(batch.rows, suite_for_columns(suite, batch.rows.columns))
        for batch in plan.batches
        if len(batch.rows)
    }


@task(name="online-store-wal", cache_policy=NO_CACHE)
def use_wal_journal(repo_dir: Path) -> str | None:
    """Put the SQLite online store in write-ahead-log mode; returns its journal mode (None for another store).

    SQLite allows one writer. In its default rollback-journal mode a commit locks the whole file and a
    reader waits (Python's sqlite3: up to 5 s, then "database is locked"); in WAL mode readers read the
    last committed state while the writer appends, and never wait. The mode is stored in the file, so
    setting it once holds for every later connection, the service's included; setting it again is a no-op.
    """
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    config = repo_config(repo_dir).online_store
    if not isinstance(config, SqliteOnlineStoreConfig):
        return None
    path = Path(config.path)
    path = path if path.is_absolute() else repo_dir / path
    path.parent.mkdir(parents=True, exist_ok=True)
    # Switching takes the write lock: wait for a reader mid-transaction rather than fail.
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise RuntimeError(f"{path}: SQLite kept journal mode {mode!r}; readers would wait on every write")
    return mode


@task(name="materialize-online-store", cache_policy=NO_CACHE, **IO_RETRIES)
def write_online_store(repo_dir: Path, plan: MaterializationPlan) -> None:
    """Write the planned views into the online store; Feast records their intervals in the registry.

    Views materialised before go through Feast's ``materialize_incremental``, which starts each at its last
    end as the plan did; a view's first run goes through ``materialize`` over the planned interval (Feast's
    incremental start for it, ``now - ttl``, would leave out a backfill's rows). Only planned views are
    written.
    """
    store = _store(repo_dir)
    first: dict[datetime, list[str]] = {}
    for batch in plan.batches:
        if batch.interval.first:
            first.setdefault(batch.interval.start, []).append(batch.view)
    later = [batch.view for batch in plan.batches if not batch.interval.first]
    # Feast prints progress lines for its own command line; the flow reports what it wrote itself.
    with contextlib.redirect_stdout(io.StringIO()):
        for start, views in first.items():
            store.materialize(start_date=start, end_date=plan.end, feature_views=views)
        if later:
            store.materialize_incremental(end_date=plan.end, feature_views=later)


@task(name="record-materialization", cache_policy=NO_CACHE)
def record_materialization(path: Path, record: MaterializationRecord) -> Path:
    """Append the run's record to the project's record file; returns the file."""
    append_record(path, record)
    return path


def materialization_markdown(plan: MaterializationPlan, reports: dict[str, ValidationReport]) -> str:
    """The run as markdown: per view the rows, interval and the suite's verdict; what failed, if anything."""
    lines = [
        f"## Materialisation of `{plan.project}` up to {plan.end.isoformat()}",
        "",
        "| view | rows | from | to | suite |",
        "|---|---|---|---|---|",
    ]
    for batch in plan.batches:
        report = reports.get(batch.view)
        verdict = "not checked" if report is None else "passed" if report.success else "FAILED"
        start, end = batch.interval.start.isoformat(), batch.interval.end.isoformat()
        lines.append(f"| {batch.view} | {len(batch.rows):,} | {start} | {end} | {verdict} |")
    lines += [f"| {view} | 0 | already materialised up to the end | | |" for view in plan.current]
    failed = [(view, f) for view, report in sorted(reports.items()) for f in report.failed]
    if failed:
        lines += ["", "**Nothing was written**: the online store is unchanged.", ""]
        lines += ["| view | column | expectation | detail |", "|---|---|---|---|"]
        lines += [
            f"| {view} | {f.column or '(table)'} | {f.expectation} | {f.detail} |" for view, f in failed
        ]
    return "\n".join(lines)


@task(name="publish-materialization", cache_policy=NO_CACHE)
def publish_materialization(plan: MaterializationPlan, reports: dict[str, ValidationReport]) -> None:
    """Attach the run's views, rows, intervals and checks to the flow run as a markdown artifact."""
    create_markdown_artifact(
        markdown=materialization_markdown(plan, reports),
        key=f"materialize-features-{plan.project}".lower().replace("_", "-"),
        description="Feature materialisation into the online store",
    )


# Freshness: what the registry records of each view's materialisations, for `mlops monitor`.


@dataclass(frozen=True)
class ServiceMaterializations:
    """The online views a feature service reads, each with its ttl and the end of its furthest materialisation."""

    project: str  # the Feast project, which names the materialisation record file's folder
    views: list[ViewMaterialization]


@task(name="read-view-materializations", cache_policy=NO_CACHE)
def service_materializations(repo_dir: Path, service_name: str) -> ServiceMaterializations:
    """Per online feature view of ``service_name``, in the service's order: its ttl (None for Feast's 0, no
    expiry) and the latest end of the materialisation intervals the registry records (None: never
    materialised). On-demand views are computed per request and have no age: they are left out."""
    store = _store(repo_dir)
    try:
        service = store.get_feature_service(service_name)
    except Exception as exc:  # Feast raises its own not-found error per registry type
        raise UserInputError(
            f"feature service {service_name!r} is not in the registry of {repo_dir} ({exc}); `mlops features "
            "materialize` (or `mlops run`) applies the repository"
        ) from None
    regular = {view.name: view for view in store.list_feature_views()}
    views = []
    for projection in service.feature_view_projections:
        view = regular.get(projection.name)
        if view is None or not view.online:
            continue
        # A ttl of 0 (a false timedelta) is Feast's "never expires".
        views.append(ViewMaterialization(view.name, view.ttl or None, view.most_recent_end_time))
    return ServiceMaterializations(store.project, views)
