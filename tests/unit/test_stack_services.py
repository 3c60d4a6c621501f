"""The stack's registry without starting anything: what each server is given, what its clients get, how Redis
is checked, how the Feast UI reads its repository. The servers themselves run in tests/integration/test_stack.py."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest

from infra.home import ProjectHome
from infra.stack import SERVICES, WatchedModel, build_specs, client_settings, credentials, endpoints, prepare
from infra.stack.feast_ui import UI_REGISTRY_TTL_SECONDS, ui_config
from infra.stack.health import answers, redis_command, redis_pong
from infra.stack.processes import spawn
from infra.stack.secrets import database_secret, secret_path
from infra.stack.services import (
    FEAST_REDIS,
    FEAST_REDIS_PASSWORD,
    FEAST_REGISTRY,
    SERVING_CHAMPION_OF,
    SERVING_ENTITY_COLUMN,
    SERVING_TOKEN,
    always_started,
    client_value,
)
from infra.stack.state import ProcessRecord, write_state

PORTS = {name: service.default_port for name, service in SERVICES.items()}
DATABASE_URL = "postgresql://mlops:pw@db.example:5432"


def test_the_feature_store_variables_are_the_ones_its_readers_take() -> None:
    from models.features import store

    assert (FEAST_REDIS, FEAST_REDIS_PASSWORD, FEAST_REGISTRY) == (
        store.REDIS_VARIABLE,
        store.REDIS_PASSWORD_VARIABLE,
        store.REGISTRY_VARIABLE,
    )


def test_client_values_take_the_url_or_the_address() -> None:
    assert client_value("{url}/api", "http://127.0.0.1:4200") == "http://127.0.0.1:4200/api"
    assert client_value("{address}", "redis://127.0.0.1:6379") == "127.0.0.1:6379"


def test_redis_gets_its_password_on_stdin_only(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path / "home")
    redis = build_specs(home, PORTS, None)["redis"]
    assert redis.url == "redis://127.0.0.1:6379" and redis.health_url == redis.url
    assert redis.command[1] == "-" and redis.command[redis.command.index("--bind") + 1] == "127.0.0.1"
    # Its process title stays the command `up` recorded, and its data stays in the home.
    assert redis.command[redis.command.index("--set-proc-title") + 1] == "no"
    assert redis.command[redis.command.index("--dir") + 1] == str(home.redis)
    env = prepare(home, redis, {})
    password = (secret_path(home, "redis")).read_text()
    assert env["REDISCLI_AUTH"] == password and len(password) >= 40
    assert redis.stdin is not None and redis.stdin(env) == f"requirepass {password}\n"
    assert password not in " ".join(redis.command) and password not in str(redis.env)
    assert redis.install == "apt-get install redis-server"


def test_the_feast_ui_reads_the_stores_its_clients_read(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path / "home")
    embedded = build_specs(home, PORTS, None)["feast-ui"]
    assert embedded.env == {"MLOPS_HOME": str(home.root), FEAST_REDIS: "127.0.0.1:6379"}
    assert embedded.command[embedded.command.index("--host") + 1] == "127.0.0.1"
    assert embedded.health_url == "http://127.0.0.1:8888/health"
    on_postgres = build_specs(home, PORTS, DATABASE_URL)["feast-ui"]
    assert on_postgres.env[FEAST_REGISTRY] == "postgresql+psycopg2://mlops:pw@db.example:5432/feast"
    assert on_postgres.postgres is not None and on_postgres.postgres.driver == "psycopg2"
    env = prepare(home, on_postgres, {FEAST_REGISTRY: "elsewhere", "PATH": "/bin"})
    assert env[FEAST_REGISTRY] == on_postgres.env[FEAST_REGISTRY]  # its own, not the caller's
    assert env[FEAST_REDIS_PASSWORD] == secret_path(home, "redis").read_text()


def test_the_registry_url_goes_to_clients_only_while_the_ui_runs_on_postgres(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path / "home")
    registry = secret_path(home, database_secret("feast"))
    prepare(home, build_specs(home, PORTS, DATABASE_URL)["feast-ui"], {})
    assert registry.stat().st_mode & 0o777 == 0o600 and registry.parent.stat().st_mode & 0o777 == 0o700
    url = "postgresql+psycopg2://mlops:pw@db.example:5432/feast"
    assert credentials(home, "feast-ui") == {FEAST_REGISTRY: url}
    # A later start without --database-url: the home's file registry again.
    prepare(home, build_specs(home, PORTS, None)["feast-ui"], {})
    assert not registry.exists() and credentials(home, "feast-ui") == {}


def _record(name: str, url: str) -> ProcessRecord:
    return ProcessRecord(name, 1, None, None, url, None, ["x"], 0.0, "", "")


def test_a_redis_password_goes_only_with_the_stacks_redis(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path / "home")
    specs = build_specs(home, PORTS, DATABASE_URL)
    for spec in specs.values():
        prepare(home, spec, {})
    write_state(home, [_record(name, spec.url) for name, spec in specs.items()])
    ours = endpoints(home)
    assert ours[FEAST_REDIS] == "127.0.0.1:6379"
    assert ours[FEAST_REDIS_PASSWORD] == secret_path(home, "redis").read_text()
    assert ours[FEAST_REGISTRY].endswith("@db.example:5432/feast")
    assert client_settings(home, {}) == ours
    elsewhere = client_settings(home, {FEAST_REDIS: "redis.example:6379"})
    assert FEAST_REDIS not in elsewhere and FEAST_REDIS_PASSWORD not in elsewhere
    assert elsewhere[FEAST_REGISTRY] == ours[FEAST_REGISTRY]
    mine = client_settings(home, {FEAST_REGISTRY: "postgresql+psycopg2://me@mine/feast"})
    assert FEAST_REGISTRY not in mine and mine[FEAST_REDIS] == ours[FEAST_REDIS]
    # Started again without --database-url: the home's file registry, no URL for clients.
    prepare(home, build_specs(home, PORTS, None)["feast-ui"], {})
    assert FEAST_REGISTRY not in endpoints(home) and FEAST_REGISTRY not in client_settings(home, {})


def test_ui_config_is_the_clients_with_a_short_registry_cache() -> None:
    raw = {
        "project": "p",
        "registry": {"registry_type": "file", "path": "/h/registry.db"},
        "online_store": {"type": "sqlite", "path": "/h/online.db"},
    }
    embedded = ui_config(raw, {})
    assert embedded["registry"] == {
        "registry_type": "file",
        "path": "/h/registry.db",
        "cache_ttl_seconds": UI_REGISTRY_TTL_SECONDS,
    }
    assert embedded["online_store"] == raw["online_store"]
    assert ui_config({**raw, "registry": "/h/registry.db"}, {})["registry"]["path"] == "/h/registry.db"
    stack = ui_config(raw, {FEAST_REGISTRY: "postgresql+psycopg2://u:p@h/feast", FEAST_REDIS: "127.0.0.1:1"})
    assert stack["registry"]["registry_type"] == "sql" and stack["registry"]["path"].endswith("/feast")
    assert stack["registry"]["cache_ttl_seconds"] == UI_REGISTRY_TTL_SECONDS
    assert stack["online_store"]["type"] == "redis"
    assert raw["registry"]["registry_type"] == "file"  # not changed in place


def test_redis_commands_are_resp_arrays() -> None:
    assert redis_command("PING") == b"*1\r\n$4\r\nPING\r\n"
    assert redis_command("AUTH", "pé") == b"*2\r\n$4\r\nAUTH\r\n$3\r\np\xc3\xa9\r\n"


def _one_reply_server(replies: bytes) -> int:
    """A loopback listener that answers one connection with ``replies``; returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            connection, _ = listener.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(replies)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


@pytest.mark.parametrize(
    ("replies", "healthy"),
    [
        (b"+OK\r\n+PONG\r\n", True),
        (b"-WRONGPASS invalid username-password pair\r\n-NOAUTH Authentication required.\r\n", False),
        (b"+OK\r\n-LOADING Redis is loading the dataset in memory\r\n", False),
        (b"+OK\r\n", False),  # closed before the second reply
    ],
)
def test_redis_is_healthy_only_when_its_ping_is_answered(replies: bytes, healthy: bool) -> None:
    assert redis_pong("127.0.0.1", _one_reply_server(replies), "pw", timeout=5) is healthy


def test_health_urls_without_a_server() -> None:
    assert answers(None) is True
    assert answers("redis://127.0.0.1") is False  # no port
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert answers(f"redis://127.0.0.1:{port}", "pw", timeout=1) is False


def test_a_config_on_stdin_reaches_the_process_and_nothing_else(tmp_path: Path) -> None:
    from dataclasses import replace

    home = ProjectHome(tmp_path / "home")
    spec = replace(
        build_specs(home, PORTS, None)["evidently"],
        name="cat",
        command=["/bin/sh", "-c", "cat; echo done"],
        log=tmp_path / "cat.log",
        stdin=lambda env: f"secret {env['TOKEN']}\n",
    )
    started = spawn(spec, {"TOKEN": "t0k3n", "PATH": os.environ["PATH"]})
    os.waitpid(started.record.pid, 0)
    assert (tmp_path / "cat.log").read_text().endswith("secret t0k3n\ndone\n")
    assert "t0k3n" not in " ".join(started.record.command)


def test_the_bentos_variables_are_the_ones_the_service_reads() -> None:
    from serving import settings
    from serving.config import ServingConfig

    assert (SERVING_CHAMPION_OF, SERVING_ENTITY_COLUMN) == (settings.WAIT_ENV, settings.ENTITY_ENV)
    assert ServingConfig().token_env == SERVING_TOKEN


def test_the_watching_servers_start_only_with_a_model(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path / "home")
    assert set(build_specs(home, PORTS, None)) == set(always_started())
    specs = build_specs(home, PORTS, None, model=_model())
    assert set(specs) - set(always_started()) == {"bento", "prometheus", "alertmanager"}


def _model(webhook: str | None = "http://127.0.0.1:9/hook") -> WatchedModel:
    from flows.cli.stack import DEFAULT_CONFIG, watched_model

    model = watched_model(DEFAULT_CONFIG, ProjectHome(Path("/unused")))
    return WatchedModel(**{**model.__dict__, "webhook_url": webhook})


def test_the_bento_follows_the_models_champion_signed_in_to_the_stack(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path / "home")
    model = _model()
    bento = build_specs(home, PORTS, DATABASE_URL, model=model)["bento"]
    assert bento.command[1:3] == ["serve", "serving.service:TabularModelService"]
    assert bento.command[bento.command.index("--host") + 1] == "127.0.0.1"
    assert bento.health_path == "/livez"
    assert bento.env[SERVING_CHAMPION_OF] == model.name == "crm-leads"
    assert bento.env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert bento.env[FEAST_REGISTRY] == "postgresql+psycopg2://mlops:pw@db.example:5432/feast"
    # Its argument: the config's serving section, the token read from the variable its secret is put in.
    [arguments] = bento.files.values()
    assert json.loads(arguments) == {"serving_config": {**model.serving, "token_env": SERVING_TOKEN}}
    env = prepare(home, bento, {})
    assert env[SERVING_TOKEN] == secret_path(home, "serving").read_text().strip()
    user, password = secret_path(home, "mlflow").read_text().strip().split(":")
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == (user, password)
    assert env[SERVING_TOKEN] not in " ".join(bento.command) + "".join(bento.files.values())


def test_prometheus_scrapes_the_bento_as_its_rules_job_and_alerts_through_alertmanager(
    tmp_path: Path,
) -> None:
    import yaml

    home = ProjectHome(tmp_path / "home")
    model = _model()
    specs = build_specs(home, {**PORTS, "bento": 3100}, None, model=model)
    prometheus, alertmanager = specs["prometheus"], specs["alertmanager"]
    files = {path.name: text for path, text in prometheus.files.items()}
    assert json.loads(files["bento.json"]) == [{"targets": ["127.0.0.1:3100"], "labels": {"job": model.job}}]
    assert files["rules.yml"] == model.rules and f'job="{model.job}"' in model.rules
    config = yaml.safe_load(files["prometheus.yml"])
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    assert config["rule_files"] == [str(home.prometheus / "rules.yml")]
    assert "--web.listen-address=127.0.0.1:9090" in prometheus.command
    [routing] = alertmanager.files.values()
    assert yaml.safe_load(routing)["receivers"][0]["slack_configs"][0]["api_url"] == model.webhook_url
    # Without a webhook, the alerts are grouped and shown, and sent nowhere.
    quiet = build_specs(home, PORTS, None, model=_model(webhook=None))["alertmanager"]
    assert yaml.safe_load(next(iter(quiet.files.values())))["receivers"] == [{"name": "mlops-webhook"}]
