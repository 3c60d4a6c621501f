"""Scoring by entity id: a model trained from a Feast feature service reads the features a request leaves out
from the online store, in process, through that same service.

At load (`OnlineFeatures.load`, once per served version) the model's `FeatureLookup` is resolved against the
feature registry: the service's views, the features it takes from each, their ttl, and its on-demand views
(their inputs and request-time fields). Per request (`OnlineFeatures.complete`), rows that carry every feature
pass unchanged; the others are read with one online-store query per view for all their entities, the on-demand
views are computed, and each row becomes the service's features with the row's own values on top. So
validation, encoding and scoring stay what they are for full rows.

Per row and view, the age of what was read (the request's ``as_of``, default now, minus the row's event time)
is returned: older than the view's ttl flags the row ``stale:<view>``; a view with nothing for the entity
flags it ``missing:<view>`` (its features are missing values the model imputes); an entity no view knows
is an error naming it. Feast's own ``get_online_features`` answers the same; it is not called per request
because it cost about 3 ms per row here (its pandas on-demand step and its registry lookups), the reads
below about 0.1 ms.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import yaml

from models.features.store import FeatureLookup, on_stack, online_store_name
from monitoring.freshness import MISSING_FLAG, STALE_FLAG  # the row flags the freshness check counts

if TYPE_CHECKING:
    from feast import FeatureView
    from feast.infra.online_stores.online_store import OnlineStore
    from feast.repo_config import RepoConfig


class FeatureStoreUnavailable(RuntimeError):
    """The online store could not be read (not materialised yet, file or server gone): the service answers
    503, never 500."""


@dataclass(frozen=True)
class RowIssue:
    """A request row the lookup cannot complete, with the field to name in the 4xx."""

    row: int
    field: str
    message: str
    kind: str  # pydantic-style error type: missing_entity, invalid_as_of, unknown_entity, stale_features


class LookupRefused(ValueError):
    """Rows that cannot be scored by id: a 400 (no entity id, a bad request-time value), 404 (an entity no view
    knows) or 422 (stale features, when the service refuses them); ``status`` says which."""

    def __init__(self, status: int, issues: list[RowIssue]) -> None:
        super().__init__(f"{len(issues)} row(s): {issues[0].message}")
        self.status, self.issues = status, issues

    def body(self) -> dict[str, Any]:
        """The 4xx's JSON body: an error line and pydantic-shaped details, each ``loc`` naming the field."""
        return {
            "error": str(self),
            "detail": [
                {"type": issue.kind, "loc": ["rows", issue.row, issue.field], "msg": issue.message}
                for issue in self.issues
            ],
        }


@dataclass(frozen=True)
class _View:
    """One feature view as the lookup reads it."""

    view: FeatureView
    name: str
    served: tuple[str, ...]  # the features the service takes from it
    ttl: timedelta | None  # None: never stale


@dataclass(frozen=True)
class _OnDemand:
    name: str
    udf: Callable[[dict[str, list]], dict[str, list]]
    inputs: tuple[str, ...]  # the source views' features it reads
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Completed:
    """A request's rows after the lookup: each row read by id has every feature, and per row its flags and
    the age in seconds of each view's features (both empty for rows that carried every feature)."""

    rows: list[dict[str, Any]]
    flags: list[list[str]]
    ages: list[dict[str, float]]
    looked_up: int  # rows read by id


def stale_rows(completed: Completed, entity: str) -> LookupRefused | None:
    """The 422 refusing the rows flagged stale (``serving.stale_features: refuse``), each naming its entity and
    view; None when no row is stale."""
    issues = [
        RowIssue(
            i,
            entity,
            f"features of {completed.rows[i].get(entity)!r} in {flag.removeprefix(STALE_FLAG)} are older than "
            "the view's ttl",
            "stale_features",
        )
        for i, flags in enumerate(completed.flags)
        for flag in flags
        if flag.startswith(STALE_FLAG)
    ]
    return LookupRefused(422, issues) if issues else None


def _repo_config(lookup: FeatureLookup) -> RepoConfig:
    from feast.repo_config import RepoConfig

    if "${MLOPS_HOME}" in lookup.repo_config and not os.environ.get("MLOPS_HOME"):
        raise RuntimeError(
            f"feature service {lookup.service!r}: its repository lives under $MLOPS_HOME, which is not set"
        )
    return RepoConfig(**on_stack(yaml.safe_load(os.path.expandvars(lookup.repo_config)), os.environ))


def _as_of(value: object) -> datetime:
    """A request-time ``as_of``: an ISO 8601 string or Unix seconds; naive times are UTC."""
    if isinstance(value, bool):
        raise TypeError("not a time")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    raise TypeError("not a time")


_REGISTRY_READS = 3
_NULL_TIMESTAMP = -(2**63)  # feast.type_map.NULL_TIMESTAMP_INT_VALUE, NaT as int64
_SCALARS = frozenset(
    {"int32_val", "int64_val", "float_val", "double_val", "string_val", "bool_val", "bytes_val"}
)


def _python_value(value: Any) -> Any:
    """A stored Feast value as Python: scalars read directly (Feast's general converter cost a third of a
    64-lead lookup), a timestamp as an aware UTC datetime, anything else through Feast's converter."""
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind == "unix_timestamp_val":  # Feast writes a missing time (NaT) as the smallest int64
        seconds = value.unix_timestamp_val
        return None if seconds == _NULL_TIMESTAMP else datetime.fromtimestamp(seconds, UTC)
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(value)


def _fail_fast(store: OnlineStore, config: Any) -> None:
    """Redis reads that fail answer at once: redis-py retries a failed command three times with up to 10 s of
    back-off by default (2-10 s per request measured against a stopped server), which would hold every
    request of a worker while the store is down. One immediate retry is kept: it replaces a pooled connection
    that a restarted server closed. Feast's connection string cannot carry a retry policy, so it is set on
    the client Feast made (``_get_client``, where Feast's Redis store keeps it)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    store._get_client(config).set_retry(Retry(NoBackoff(), 1))  # type: ignore[attr-defined]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _never_written(event_time: datetime | None, found: dict[str, Any]) -> bool:
    """Whether an online read's row is one no materialisation wrote. Feast's SQLite store answers such an
    entity with None; its Redis store with every value unset and the event time of a timestamp never stored
    (the epoch), which read as a row would score an unknown lead on missing values, flagged stale."""
    at_epoch = (
        event_time is not None
        and (event_time.replace(tzinfo=UTC) if event_time.tzinfo is None else event_time) == _EPOCH
    )
    return at_epoch and not any(value.WhichOneof("val") for value in found.values())


class OnlineFeatures:
    """A served model's feature service, resolved once, reading the online store per request."""

    def __init__(
        self,
        lookup: FeatureLookup,
        config: RepoConfig,
        store: OnlineStore,
        views: list[_View],
        on_demand: list[_OnDemand],
        request_fields: tuple[str, ...],
    ) -> None:
        self.lookup, self.config, self.store = lookup, config, store
        self.views, self.on_demand, self.request_fields = views, on_demand, request_fields
        self.entity = lookup.entity_column
        self.store_name = online_store_name(config.online_store.model_dump())
        # What a read raises when the store cannot answer (a 503, never a 500): SQLite's file missing or
        # locked, or Redis down or unreachable (redis-py's errors are not OSErrors).
        unavailable: tuple[type[Exception], ...] = (sqlite3.Error, OSError)
        if config.online_store.type == "redis":
            from redis.exceptions import RedisError

            unavailable += (RedisError,)
        self.unavailable = unavailable
        self.features = frozenset(
            [f for v in views for f in v.served] + [f for d in on_demand for f in d.outputs]
        )

    @classmethod
    def load(cls, lookup: FeatureLookup) -> OnlineFeatures:
        """Resolve ``lookup``'s feature service in its registry (Feast imported here: a model without a lookup
        never pays for it). RuntimeError naming what is wrong when the service cannot serve by id."""
        from feast import FeatureStore
        from feast.infra.online_stores.helpers import get_online_store_from_config

        config = _repo_config(lookup)
        for attempt in range(_REGISTRY_READS):
            # Feast rewrites its file registry in place (apply, each materialisation): a read that meets a
            # half-written file fails to parse, and the next read, a moment later, finds it whole.
            store = FeatureStore(config=config)
            try:
                service = store.get_feature_service(lookup.service)
                regular = {v.name: v for v in store.list_feature_views()}
                demanded = {v.name: v for v in store.list_on_demand_feature_views()}
                break
            except Exception as exc:  # Feast raises its own not-found error per registry type
                if attempt == _REGISTRY_READS - 1:
                    raise RuntimeError(
                        f"feature service {lookup.service!r} not readable from the registry: {exc}"
                    ) from exc
                time.sleep(0.5)
        served: dict[str, list[str]] = {}
        on_demand: list[_OnDemand] = []
        request_fields: list[str] = []
        for projection in service.feature_view_projections:
            names = [f.name for f in projection.features]
            if projection.name in regular:
                served.setdefault(projection.name, []).extend(names)
                continue
            odfv = demanded[projection.name]
            inputs = []
            for source in odfv.source_feature_view_projections.values():
                served.setdefault(source.name, [])
                inputs += [f.name for f in source.features]
            for request in odfv.source_request_sources.values():
                request_fields += [f.name for f in request.schema]
            on_demand.append(
                _OnDemand(odfv.name, odfv.feature_transformation.udf, tuple(inputs), tuple(names))
            )
        views = []
        for name, features in served.items():
            view = regular[name]
            join_keys = [store.get_entity(entity).join_key for entity in view.entities]
            if join_keys != [lookup.entity_column]:
                raise RuntimeError(
                    f"view {name} is keyed by {join_keys}, the model's entity column is {lookup.entity_column!r}"
                )
            ttl = view.ttl if view.ttl and view.ttl > timedelta(0) else None
            views.append(_View(view, name, tuple(dict.fromkeys(features)), ttl))
        unsupported = sorted(set(request_fields) - {"as_of"})
        if unsupported:
            raise RuntimeError(
                f"request-time fields {unsupported}: only as_of (the time scored at) is supported"
            )
        online = get_online_store_from_config(config.online_store)
        if config.online_store.type == "redis":
            _fail_fast(online, config.online_store)
        return cls(lookup, config, online, views, on_demand, tuple(dict.fromkeys(request_fields)))

    def complete(self, rows: list[dict[str, Any]], now: datetime) -> Completed:
        """``rows`` with the features they leave out read by entity id (see the module doc). Raises
        `LookupRefused` for rows that cannot be read, `FeatureStoreUnavailable` when the store cannot be."""
        features = self.features
        wanted = [i for i, row in enumerate(rows) if not features <= row.keys()]
        flags: list[list[str]] = [[] for _ in rows]
        ages: list[dict[str, float]] = [{} for _ in rows]
        if not wanted:
            return Completed(rows, flags, ages, 0)
        ids, times, issues = [], [], []
        for i in wanted:
            entity = rows[i].get(self.entity)
            if isinstance(entity, int) and not isinstance(entity, bool):
                entity = str(entity)
            if not isinstance(entity, str) or not entity:
                issues.append(
                    RowIssue(
                        i,
                        self.entity,
                        f"{self.entity} is required when a row leaves out features",
                        "missing_entity",
                    )
                )
                continue
            try:
                at = _as_of(rows[i]["as_of"]) if rows[i].get("as_of") is not None else now
            except (TypeError, ValueError, OverflowError, OSError):
                issues.append(
                    RowIssue(i, "as_of", "as_of should be an ISO 8601 time or Unix seconds", "invalid_as_of")
                )
                continue
            ids.append(entity)
            times.append(at)
        if issues:
            raise LookupRefused(400, issues)
        values, known = self._read(ids, times, [flags[i] for i in wanted], [ages[i] for i in wanted])
        service = self.lookup.service
        unknown = [
            RowIssue(
                i,
                self.entity,
                f"no features for {self.entity} {entity!r} in any view of {service}",
                "unknown_entity",
            )
            for i, entity, found in zip(wanted, ids, known, strict=True)
            if not found
        ]
        if unknown:
            raise LookupRefused(404, unknown)
        completed = list(rows)
        for i, row_values in zip(wanted, values, strict=True):
            completed[i] = {**row_values, **rows[i]}  # what the row carries wins
        return Completed(completed, flags, ages, len(wanted))

    def _read(
        self,
        ids: list[str],
        times: list[datetime],
        flags: list[list[str]],
        ages: list[dict[str, float]],
    ) -> tuple[list[dict[str, Any]], list[bool]]:
        """Per entity, the service's features (and the on-demand inputs) and whether any view knew it;
        ``flags`` and ``ages`` are filled per row."""
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        unique = list(dict.fromkeys(ids))
        keys = [EntityKey(join_keys=[self.entity], entity_values=[Value(string_val=e)]) for e in unique]
        values: list[dict[str, Any]] = [{} for _ in ids]
        known = [False] * len(ids)
        for view in self.views:
            try:
                read = self.store.online_read(self.config, view.view, keys)
            except self.unavailable as exc:
                raise FeatureStoreUnavailable(
                    f"online store ({self.store_name}) unreadable for view {view.name}: {exc}. Is it running, "
                    "and materialised (`mlops features materialize`)?"
                ) from exc
            by_entity = dict(zip(unique, read, strict=True))
            for j, entity in enumerate(ids):
                event_time, found = by_entity[entity]
                if found is not None and _never_written(event_time, found):
                    found = None
                if found is None:
                    values[j].update(dict.fromkeys(view.served))
                    flags[j].append(MISSING_FLAG + view.name)
                    continue
                known[j] = True
                values[j].update({name: _python_value(v) for name, v in found.items()})
                age = (times[j] - event_time).total_seconds()
                ages[j][view.name] = age
                if view.ttl is not None and age > view.ttl.total_seconds():
                    flags[j].append(STALE_FLAG + view.name)
        for odfv in self.on_demand:
            inputs: dict[str, list] = {name: [v.get(name) for v in values] for name in odfv.inputs}
            inputs["as_of"] = times
            outputs = odfv.udf(inputs)
            for name in odfv.outputs:
                for j, value in enumerate(outputs[name]):
                    values[j][name] = value
        served = self.features
        return [{k: v for k, v in row.items() if k in served} for row in values], known
