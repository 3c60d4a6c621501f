"""Where a feature repository's stores are: embedded as written, or the stack's Redis and Postgres when a
client of the stack has their variables (`models.features.store.on_stack`), checked against Feast's own
config model."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from models.features.store import (
    REDIS_PASSWORD_VARIABLE,
    REDIS_VARIABLE,
    REGISTRY_VARIABLE,
    on_stack,
    online_store_name,
)

SHIPPED = Path(__file__).resolve().parents[2] / "feature_repo" / "crm" / "feature_store.yaml"


def _shipped(home: str = "/srv/home") -> dict:
    return yaml.safe_load(SHIPPED.read_text().replace("${MLOPS_HOME}", home))


def test_without_the_stacks_variables_the_repository_is_unchanged() -> None:
    raw = _shipped()
    assert on_stack(raw, {}) == raw
    assert online_store_name(raw["online_store"]) == "sqlite at /srv/home/features/crm/online.db"


def test_redis_alone_takes_the_online_store_and_a_registry_file_of_its_own() -> None:
    """The registry records how far each view was materialised: a Redis store never inherits the SQLite
    store's progress (its first materialisation reaches back the ttl)."""
    from feast.repo_config import RepoConfig

    raw = _shipped()
    config = on_stack(raw, {REDIS_VARIABLE: "127.0.0.1:6390", REDIS_PASSWORD_VARIABLE: "12345"})
    feast = RepoConfig(**config)
    assert feast.online_store.type == "redis"
    parts = feast.online_store.connection_string.split(",")
    assert parts[0] == "127.0.0.1:6390" and "socket_timeout=1" in parts
    # A password of digits stays a string: Feast reads each value as JSON where it parses.
    assert json.loads(parts[-1].removeprefix("password=")) == "12345"
    assert feast.registry.registry_type == "file"
    assert feast.registry.path == "/srv/home/features/crm/registry-stack.db"
    assert online_store_name(config["online_store"]) == "redis at 127.0.0.1:6390"
    assert "12345" not in online_store_name(config["online_store"])
    assert raw["online_store"]["type"] == "sqlite"  # the caller's dict is left as it was


def test_the_registry_variable_puts_the_registry_on_postgres() -> None:
    from feast.repo_config import RepoConfig

    url = "postgresql+psycopg2://mlops:pw@127.0.0.1:5432/feast"
    environ = {REDIS_VARIABLE: "127.0.0.1:6379", REGISTRY_VARIABLE: url}
    feast = RepoConfig(**on_stack(_shipped(), environ))
    assert feast.registry.registry_type == "sql" and feast.registry.path == url
    assert feast.registry.sqlalchemy_config_kwargs == {"pool_pre_ping": True}
    assert feast.online_store.connection_string.startswith("127.0.0.1:6379,")
    assert "password" not in feast.online_store.connection_string  # none given, none sent


def test_the_registry_database_also_holds_the_offline_tables() -> None:
    from feast.repo_config import RepoConfig

    url = "postgresql+psycopg2://mlops:p%40ss@db.internal:6543/feast"
    offline = RepoConfig(**on_stack(_shipped(), {REGISTRY_VARIABLE: url})).offline_store
    assert offline.type == "postgres"
    assert (offline.host, offline.port, offline.database) == ("db.internal", 6543, "feast")
    assert (offline.user, offline.password) == ("mlops", "p@ss")  # URL-quoted in the variable
    assert offline.sslmode == "prefer"  # libpq's default; Feast's own (require) fails on a server without TLS
    required = on_stack(_shipped(), {REGISTRY_VARIABLE: url + "?sslmode=require"})["offline_store"]
    assert required["sslmode"] == "require"


def test_a_registry_variable_that_names_no_database_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="MLOPS_FEAST_REGISTRY must name a Postgres database"):
        on_stack(_shipped(), {REGISTRY_VARIABLE: "postgresql://mlops:pw@127.0.0.1:5432"})
