"""Typed parameters of the feature store section, and what a point-in-time retrieval hands the pipeline.

With a ``feature_store`` section, ``data.path`` is a label spine (entity id, as-of time, label) and the
training frame is built by the feature store's historical retrieval: each spine row gets the features
as they were at its as-of time, never later values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat


class FeatureStoreConfig(BaseModel):
    """A Feast feature repository, the feature service the model reads, and the source its tables come from."""

    model_config = ConfigDict(extra="forbid")

    repo: Path = Field(
        description="Feast feature repository (feature_store.yaml and definitions), relative to the config file."
    )
    service: str = Field(
        min_length=1,
        description="Feature service whose features the training frame gets: one service per model.",
    )
    source: Path = Field(
        description="CRM source folder (leads.parquet, activities.parquet: `mlops data generate --crm`) the "
        "crm-features flow aggregates into the repository's tables; relative to the config file; "
        "${MLOPS_HOME} expands to the project home.",
    )
    expectations: Path | None = Field(
        default=None,
        description="Great Expectations suite (JSON, as `data.expectations`) every materialised batch must pass "
        "before it is written to the online store; relative to the config file. Null: no check.",
    )
    materialize_interval_minutes: int | None = Field(
        default=None,
        ge=1,
        description="Schedule of the materialize-features deployment `mlops deploy` registers (and prefect.yaml "
        "declares); null registers none.",
    )
    max_age_minutes: dict[str, PositiveFloat] = Field(
        default_factory=dict,
        description="Per view, the oldest features (in minutes, above 0) the online store may serve before "
        "`mlops monitor` reports the view as stale (a finding, exit 1); a view not listed is held to its ttl.",
    )


@dataclass(frozen=True)
class TrainingFrame:
    """The rows the pipeline trains on, and where they came from beyond the data file."""

    data: pd.DataFrame
    # Lineage tags of the model version (feature_store.service, .views, .retrieved_at); empty for a flat file.
    lineage: dict[str, str] = field(default_factory=dict)


def retrieval_lineage(service: str, views: list[str], retrieved_at: datetime) -> dict[str, str]:
    """Tags naming the feature service, the views it read and when: enough to retrieve the same frame again."""
    return {
        "feature_store.service": service,
        "feature_store.views": ",".join(sorted(views)),
        "feature_store.retrieved_at": retrieved_at.isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class FeatureLookup:
    """How a model trained from a feature service reads its features when a request carries only the entity
    id: saved with the model (`models.artifact.scorer.LOOKUP_FILE`), so every copy of it (MLflow, Bento,
    a version the service swaps in) scores by id through the service it was trained from."""

    service: str  # the Feast feature service the training frame came from
    entity_column: str  # the request field holding the entity's join key (the config's data.id_column)
    # The repository's feature_store.yaml as written (``${MLOPS_HOME}`` unexpanded): where the registry and
    # the online store are, read where the model is served.
    repo_config: str

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "entity_column": self.entity_column, "repo_config": self.repo_config}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FeatureLookup:
        return cls(str(raw["service"]), str(raw["entity_column"]), str(raw["repo_config"]))


# The stack's stores (`mlops up`): its clients get these variables (``infra.stack.endpoints``), and every
# reader of a feature repository's config (training, materialisation, the service, the Feast UI) puts them
# over the repository's embedded stores, so one feature_store.yaml serves both.
REDIS_VARIABLE = "MLOPS_FEAST_REDIS"  # host:port of the stack's Redis: the online store
REDIS_PASSWORD_VARIABLE = "MLOPS_FEAST_REDIS_PASSWORD"
# SQLAlchemy URL of the stack's Postgres database for Feast: its registry, and its offline store (the tables the
# crm-features flow writes, read by training's point-in-time joins and by materialisation).
REGISTRY_VARIABLE = "MLOPS_FEAST_REGISTRY"


def on_stack(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """A feature_store.yaml's content (parsed, variables expanded) with the online store on the stack's Redis
    and the registry on its Postgres where ``environ`` names them; unchanged where it names neither."""
    config = dict(raw)
    redis = environ.get(REDIS_VARIABLE)
    if redis:
        # Feast passes each key=value to redis-py's client, each value read as JSON where it parses: the
        # password is quoted so that it stays a string. A store that stops answering fails a read within a
        # second (the service answers 503) instead of holding the request.
        parameters = [redis, "socket_connect_timeout=1", "socket_timeout=1"]
        password = environ.get(REDIS_PASSWORD_VARIABLE)
        if password:
            parameters.append(f"password={json.dumps(password)}")
        config["online_store"] = {"type": "redis", "connection_string": ",".join(parameters)}
    registry = environ.get(REGISTRY_VARIABLE)
    if redis and not registry:
        # The registry also records how far each view was materialised, so each online store has its own: the
        # stack's Redis beside a file registry of its own, next to the embedded one.
        config["registry"] = _registry_beside(config.get("registry"), "-stack")
    if registry:
        config["offline_store"] = _postgres_offline_store(registry)
        config["registry"] = {
            "registry_type": "sql",
            "path": registry,
            # Read again at most every minute (a materialisation or apply elsewhere is seen within it).
            "cache_ttl_seconds": 60,
            # A connection the database closed (a restart) is replaced instead of failing the next read.
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
        }
    return config


def _postgres_offline_store(url: str) -> dict[str, Any]:
    """Feast's Postgres offline store section for the database ``url`` names (``postgresql[+driver]://user:pw@
    host:port/db[?sslmode=...]``); sslmode defaults to prefer, as libpq's does (Feast's own default requires
    SSL, which a loopback or compose-network server does not offer)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres") or not parts.hostname or not parts.path.strip("/"):
        raise ValueError(
            f"{REGISTRY_VARIABLE} must name a Postgres database (postgresql://user:pw@host:port/db)"
        )
    options = dict(parse_qsl(parts.query))
    return {
        "type": "postgres",
        "host": parts.hostname,
        "port": parts.port or 5432,
        "database": parts.path.strip("/"),
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "sslmode": options.get("sslmode", "prefer"),
    }


def online_store_name(store: Mapping[str, Any]) -> str:
    """Where an online store (its feature_store.yaml section) is, for messages, never its password:
    "redis at host:port", "sqlite at path"."""
    kind = str(store.get("type", "sqlite"))
    where = str(store.get("connection_string", store.get("path", ""))).split(",")[0]
    return f"{kind} at {where}" if where else kind


def _registry_beside(registry: Any, suffix: str) -> Any:
    """A file registry's section (a path, or a mapping with ``path``) naming a file beside it, ``suffix`` added to
    its stem; any other registry unchanged."""
    section = {"path": registry} if isinstance(registry, str) else dict(registry or {})
    if section.get("registry_type", "file") != "file" or not section.get("path"):
        return registry
    folder, slash, name = str(section["path"]).rpartition("/")  # a local path or a URI (s3://...)
    stem, dot, extension = name.rpartition(".") if "." in name else (name, "", "")
    return {**section, "path": f"{folder}{slash}{stem}{suffix}{dot}{extension}"}
