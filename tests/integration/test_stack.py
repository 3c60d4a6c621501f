"""The local stack as real processes: ``up``, ``status``, ``endpoints``, ``down`` (infra/stack/).

One stack (real Prefect and MLflow servers, the Evidently UI, Redis and the Feast UI on free loopback
ports) is shared by the module and stopped by its fixture; the tests that break it (crash, down) run
last. Failure paths use their own homes and never leave a process behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from flows.cli.stack import watched_model
from infra import stack
from infra.home import ProjectHome
from models.data.synthetic import LeadSchema, generate_leads
from models.governance.names import Alias

from helpers.browser import ARTIFACTS, CHROMIUM_ARGS
from helpers.configs import REPO
from helpers.drift_checks import monitored_checks
from helpers.processes import free_port, free_stack_ports, wait_until
from helpers.redis import redis_server_program
from helpers.registry import register_version, tiny_scorer
from helpers.system import system_tool
from helpers.webhook import Receiver

pytestmark = pytest.mark.integration

SERVERS = ["prefect", "mlflow", "evidently", "redis", "feast-ui"]
SCHEMA = LeadSchema()


@dataclass(frozen=True)
class RunningStack:
    home: ProjectHome
    ports: dict[str, int]  # by `up` keyword: prefect_port, mlflow_port, evidently_port, redis_port...
    started: dict[str, stack.ServiceStatus]

    @property
    def prefect_port(self) -> int:
        return self.ports["prefect_port"]

    @property
    def mlflow_port(self) -> int:
        return self.ports["mlflow_port"]

    @property
    def evidently_port(self) -> int:
        return self.ports["evidently_port"]

    @property
    def redis_port(self) -> int:
        return self.ports["redis_port"]


def _processes_using(port: int) -> list[psutil.Process]:
    """Live processes whose command line names ``port`` (the servers take it as an argument)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and str(port) in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module", autouse=True)
def redis_installed() -> None:
    """The stack runs Debian's redis-server: every test here skips without it, and fails under CI=true."""
    redis_server_program()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    home = ProjectHome(tmp_path_factory.mktemp("stack") / "home")
    ports = free_stack_ports()
    try:
        statuses = stack.up(home, **ports)
        yield RunningStack(home, ports, {s.name: s for s in statuses})
    finally:
        stack.down(home)


def test_up_starts_every_server_healthy(running: RunningStack) -> None:
    assert [s.name for s in running.started.values()] == SERVERS
    assert all(s.running and s.healthy and s.pid for s in running.started.values())
    assert _get(f"http://127.0.0.1:{running.prefect_port}/api/health") == (200, "true")
    assert _get(f"http://127.0.0.1:{running.mlflow_port}/health") == (200, "OK")
    status, body = _get(f"http://127.0.0.1:{running.evidently_port}/api/version")
    assert status == 200 and '"Evidently UI"' in body
    assert running.started["redis"].url == f"redis://127.0.0.1:{running.redis_port}"
    assert _get(running.started["feast-ui"].url + "/health")[0] == 200
    for name in SERVERS:
        assert running.started[name].log == running.home.runtime / f"{name}.log"
        assert running.started[name].log.exists()
    assert (running.home.runtime / "stack.json").exists()


def test_status_reports_every_server_running_and_healthy(running: RunningStack) -> None:
    statuses = {s.name: s for s in stack.status(running.home)}
    assert set(statuses) == set(SERVERS)
    for name, current in statuses.items():
        assert current.running and current.healthy
        assert current.pid == running.started[name].pid
        assert "healthy" in current.describe() and current.url in current.describe()
    assert statuses["mlflow"].url == f"http://127.0.0.1:{running.mlflow_port}"


def test_second_up_reports_the_running_servers(running: RunningStack) -> None:
    # Other ports on purpose: a running stack is reported as it is, not moved or restarted.
    again = stack.up(running.home, **free_stack_ports())
    assert {s.name: s.pid for s in again} == {name: s.pid for name, s in running.started.items()}
    assert {s.name: s.url for s in again} == {name: s.url for name, s in running.started.items()}


def test_endpoints_serve_real_clients(running: RunningStack, monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.stack.secrets import read_secret

    urls = stack.endpoints(running.home)
    assert urls == {
        "PREFECT_API_URL": f"http://127.0.0.1:{running.prefect_port}/api",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{running.mlflow_port}",
        "MLOPS_EVIDENTLY_UI_URL": f"http://127.0.0.1:{running.evidently_port}",
        "MLOPS_FEAST_REDIS": f"127.0.0.1:{running.redis_port}",
        "PREFECT_API_AUTH_STRING": read_secret(running.home, "prefect"),
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": read_secret(running.home, "mlflow").removeprefix("admin:"),
        "MLOPS_FEAST_REDIS_PASSWORD": read_secret(running.home, "redis"),
    }  # no MLOPS_FEAST_REGISTRY: without --database-url the registry is the home's file

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    # MLflow's client takes its credential from the environment only.
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(MlflowException, match="401|[Uu]nauthori"):
        MlflowClient(tracking_uri=urls["MLFLOW_TRACKING_URI"]).search_experiments()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", urls["MLFLOW_TRACKING_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", urls["MLFLOW_TRACKING_PASSWORD"])
    client = MlflowClient(tracking_uri=urls["MLFLOW_TRACKING_URI"])
    experiment_id = client.create_experiment("stack-smoke")
    assert client.get_experiment(experiment_id).artifact_location.startswith("mlflow-artifacts:")
    run = client.create_run(experiment_id)
    client.log_text(run.info.run_id, "hello", "note.txt")
    # --serve-artifacts: the upload went through the server into the home's artifact folder.
    assert [p.read_text() for p in running.home.mlflow_artifacts.rglob("note.txt")] == ["hello"]

    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    async def talk() -> tuple[Exception | None, str]:
        async with get_client() as prefect:
            flow_id = await prefect.create_flow_from_name("stack-smoke")
            return await prefect.api_healthcheck(), (await prefect.read_flow(flow_id)).name

    credential = urls["PREFECT_API_AUTH_STRING"]
    with temporary_settings(
        updates={PREFECT_API_URL: urls["PREFECT_API_URL"], PREFECT_API_AUTH_STRING: credential}
    ):
        assert asyncio.run(talk()) == (None, "stack-smoke")
    # The same client without the home's credential is refused.
    anonymous = temporary_settings(
        updates={PREFECT_API_URL: urls["PREFECT_API_URL"]}, restore_defaults={PREFECT_API_AUTH_STRING}
    )
    with anonymous, pytest.raises(PrefectHTTPStatusError, match="401"):
        asyncio.run(talk())


def _call(url: str, auth: str | None, body: bytes | None = b"{}") -> int:
    """The status of one request to ``url`` (POST of ``body``, GET without), basic auth ``user:password``."""
    import base64
    import urllib.error

    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    request = urllib.request.Request(
        url, data=body, headers=headers, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize(
    ("server", "user", "path", "body", "health"),
    [
        # Reading (the flow runs a gate waits in) and writing (resuming one) both need it.
        ("prefect", "mlops", "/api/flow_runs/filter", b"{}", ("/api/health", "true")),
        ("mlflow", "admin", "/api/2.0/mlflow/registered-models/search", None, ("/health", "OK")),
        ("mlflow", "admin", "/", None, ("/health", "OK")),  # the UI
    ],
)
def test_servers_refuse_calls_without_the_homes_credential(
    running: RunningStack, server: str, user: str, path: str, body: bytes | None, health: tuple[str, str]
) -> None:
    from infra.stack.secrets import read_secret, secret_path

    credential = read_secret(running.home, server)
    name, _, token = credential.partition(":")
    assert name == user and len(token) >= 40 and ":" not in token
    assert secret_path(running.home, server).stat().st_mode & 0o777 == 0o600
    url = running.started[server].url
    assert _call(url + path, None, body) == 401
    assert _call(url + path, f"{user}:wrong", body) == 401
    assert _call(url + path, credential, body) == 200
    # The health check stays open: `up` and compose poll it without the credential.
    assert _get(url + health[0]) == (200, health[1])


def test_mlflow_auth_config_is_private_to_the_home(running: RunningStack) -> None:
    config = running.home.mlflow_auth / "basic_auth.ini"
    assert config.stat().st_mode & 0o777 == 0o600
    assert f"sqlite:///{running.home.mlflow_auth / 'users.db'}" in config.read_text()
    assert (running.home.mlflow_auth / "users.db").exists()  # not in the working directory
    assert not (Path.cwd() / "basic_auth.db").exists()


def test_cli_sends_the_credential_only_to_its_own_server(running: RunningStack) -> None:
    ours = stack.endpoints(running.home)
    assert stack.client_settings(running.home, {}) == ours
    # A user who points Prefect elsewhere keeps that URL, and this home's credential is not sent there;
    # MLflow and the Evidently UI still come from the stack.
    elsewhere = stack.client_settings(running.home, {"PREFECT_API_URL": "http://prefect.example:4200/api"})
    assert "PREFECT_API_URL" not in elsewhere and "PREFECT_API_AUTH_STRING" not in elsewhere
    assert elsewhere["MLFLOW_TRACKING_URI"] == ours["MLFLOW_TRACKING_URI"]
    # A credential set by the user wins over the home's.
    mine = stack.client_settings(running.home, {"PREFECT_API_AUTH_STRING": "me:mine"})
    assert "PREFECT_API_AUTH_STRING" not in mine and mine["PREFECT_API_URL"] == ours["PREFECT_API_URL"]


def test_evidently_ui_shows_the_monitors_dashboard_in_chromium(running: RunningStack, chromium: str) -> None:
    """Checks recorded into the home's workspace while the UI runs (as the monitor records them) show in the
    dashboard's panels; writing through the UI's API needs the secret `up` generated."""
    from datetime import UTC, datetime, timedelta

    from evidently.errors import EvidentlyError
    from evidently.ui.workspace import RemoteWorkspace
    from playwright.sync_api import expect, sync_playwright

    from infra.stack.secrets import read_secret, secret_path
    from monitoring.workspace import dashboard_url, record_check

    secret = secret_path(running.home, "evidently")
    assert secret.stat().st_mode & 0o777 == 0o600 and secret.parent.stat().st_mode & 0o777 == 0o700
    ui = running.started["evidently"].url
    with pytest.raises(EvidentlyError, match="permissions"):
        RemoteWorkspace(ui).create_project("intruder")  # no secret: read-only
    RemoteWorkspace(ui, secret=read_secret(running.home, "evidently")).list_projects()

    checks = monitored_checks()
    start = datetime.now(UTC) - timedelta(hours=len(checks))
    recorded = [
        record_check(
            running.home.evidently_workspace,
            result,
            timestamp=start + timedelta(hours=i),
            source="batch.parquet",
            reports=[],
            max_runs=100,
        )
        for i, result in enumerate(checks)
    ]
    last = checks[-1]
    # The UI learns of files written into its workspace through a file-system watcher, on its own time (once
    # the dashboard answered "404, project not found"): wait until its API lists the project and every run.
    reader = RemoteWorkspace(ui, secret=read_secret(running.home, "evidently"))
    project = str(recorded[-1].project_id)

    def loaded() -> bool:
        if project not in {str(p.id) for p in reader.list_projects()}:
            return False
        with urllib.request.urlopen(f"{ui}/api/projects/{project}/snapshots", timeout=10) as response:
            return len(json.loads(response.read())) == len(checks)

    wait_until(loaded, timeout=60, what=f"the Evidently UI loading project {project} and its runs")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        try:
            page.set_default_timeout(30_000)
            # expect() keeps its own 5 s default, which a loaded machine's first render can exceed.
            expect.set_options(timeout=30_000)
            page.route(lambda url: not url.startswith(ui), lambda route: route.abort())  # offline
            page.goto(dashboard_url(ui, recorded[-1].project_id))

            def panel(title: str):
                return page.locator(".MuiCard-root").filter(has=page.get_by_text(title, exact=True))

            share = f"{last.drift.drifted_share:g}"
            expect(panel("Dataset drift share (last check)")).to_contain_text(share)
            expect(panel("Drifted columns (last check)")).to_contain_text(
                str(len(last.drift.drifted_columns))
            )
            # Plots with data have a time axis; an empty one shows only its title.
            for title in (
                "Dataset drift share",
                "Drifted columns",
                "Prediction drift",
                "ROC AUC: estimated and realised",
                "Rows checked",
            ):
                expect(panel(title)).to_contain_text("Timestamps")
            expect(panel("ROC AUC: estimated and realised")).to_contain_text("realised (with labels)")
            page.screenshot(path=ARTIFACTS / "evidently-dashboard.png", full_page=True)
        except Exception:
            page.screenshot(path=ARTIFACTS / "evidently-dashboard-failure.png", full_page=True)
            raise
        finally:
            browser.close()


def test_redis_answers_only_with_the_homes_password(running: RunningStack) -> None:
    """The online store answers PING signed in with the home's password, refuses every command without it,
    and the password is in no command line and not in the state file."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from infra.stack.secrets import read_secret, secret_path

    def client(password: str | None) -> redis.Redis:
        # No retries: redis-py retries a refused sign-in 3 times with back-off by default (about 7 s here).
        return redis.Redis(
            host="127.0.0.1", port=running.redis_port, password=password, retry=Retry(NoBackoff(), 0)
        )

    password = read_secret(running.home, "redis")
    assert len(password) >= 40 and secret_path(running.home, "redis").stat().st_mode & 0o777 == 0o600
    with client(password) as signed_in:
        assert signed_in.ping() is True
        signed_in.set("stack-smoke", "1")
        assert signed_in.get("stack-smoke") == b"1"
        # Persistence on: the data is an append-only file in the home.
        assert signed_in.config_get("appendonly") == {"appendonly": "yes"}
        assert signed_in.config_get("dir") == {"dir": str(running.home.redis)}
    for anonymous in (client(None), client("wrong")):
        with anonymous, pytest.raises(redis.AuthenticationError):
            anonymous.get("stack-smoke")
    server = psutil.Process(running.started["redis"].pid)
    assert server.cmdline()[0].endswith("redis-server") and password not in " ".join(server.cmdline())
    assert password not in (running.home.runtime / "stack.json").read_text()

    # What `mlops run` prints to serve its Bento on the stack: the password read from its file by the shell.
    from infra.stack.supervisor import feature_store_settings

    settings = feature_store_settings(running.home)
    assert settings["MLOPS_FEAST_REDIS"] == f"127.0.0.1:{running.redis_port}"
    assert password not in " ".join(settings.values()) and "MLOPS_FEAST_REGISTRY" not in settings
    assignments = " ".join(f"{variable}={value}" for variable, value in settings.items())
    shell = subprocess.run(
        ["sh", "-c", f"{assignments} sh -c 'printf %s \"$MLOPS_FEAST_REDIS_PASSWORD\"'"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert shell.stdout == password, shell.stderr


def test_feast_ui_shows_the_repository_applied_into_the_home_in_chromium(
    running: RunningStack, chromium: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh home's Feast UI (started before anything was applied) shows the CRM repository's views once a
    client of the stack applies it into the home's registry."""
    from playwright.sync_api import expect, sync_playwright

    from tasks.feature_store import apply_repository, load_repository, repo_config

    # The feature store's part of what an `mlops` command of this home sets (Prefect's settings stay this
    # process's own); the registry is the home's file (no --database-url).
    monkeypatch.setenv("MLOPS_HOME", str(running.home.root))
    settings = stack.client_settings(running.home, {})
    assert "MLOPS_FEAST_REGISTRY" not in settings
    for variable in ("MLOPS_FEAST_REDIS", "MLOPS_FEAST_REDIS_PASSWORD"):
        monkeypatch.setenv(variable, settings[variable])
    applied = apply_repository.fn(load_repository.fn(REPO / "feature_repo" / "crm"))
    assert {"lead_activity", "lead_attributes"} <= set(applied)
    registry = Path(repo_config(REPO / "feature_repo" / "crm").registry.path)
    assert registry.is_file() and registry.is_relative_to(running.home.features)

    ui = running.started["feast-ui"].url
    # The UI re-reads the registry within seconds (infra.stack.feast_ui.UI_REGISTRY_TTL_SECONDS).
    wait_until(
        lambda: "lead_activity" in _get(f"{ui}/api/v1/feature_views?project=mlops_crm")[1],
        30,
        "the applied views in the Feast UI's API",
    )
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.set_default_timeout(30_000)
            # expect() keeps its own 5 s default, which a loaded machine's first render can exceed.
            expect.set_options(timeout=30_000)
            page.route(lambda url: not url.startswith(ui), lambda route: route.abort())  # offline
            page.goto(f"{ui}/p/mlops_crm/feature-view")
            expect(page.get_by_role("heading", name="Feature Views")).to_be_visible()
            for view in ("lead_activity", "lead_attributes"):
                expect(page.get_by_role("link", name=view, exact=True)).to_be_visible()
            page.screenshot(path=ARTIFACTS / "feast-ui-feature-views.png", full_page=True)
        except Exception:
            page.screenshot(path=ARTIFACTS / "feast-ui-failure.png", full_page=True)
            raise
        finally:
            browser.close()


def test_busy_port_is_named_and_nothing_starts(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path / "home")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        ports = free_stack_ports(mlflow_port=busy)
        with pytest.raises(stack.StackError, match=f"port {busy} .*mlflow.*--mlflow-port"):
            stack.up(home, **ports)
    assert not (home.runtime / "stack.json").exists()
    assert all(_processes_using(port) == [] for port in ports.values())
    assert stack.status(home) == [] and stack.endpoints(home) == {}


def test_port_taken_during_start_up_stops_the_other_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = ProjectHome(tmp_path / "home")
    # Someone binds the port between the check and the server's own bind.
    monkeypatch.setattr(stack.supervisor, "_port_free", lambda port, grace=0.0: True)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        ports = free_stack_ports(prefect_port=busy)
        with pytest.raises(stack.StackError, match=f"port {busy} .*prefect.*--prefect-port"):
            stack.up(home, **ports)
    assert not (home.runtime / "stack.json").exists()
    assert all(_processes_using(port) == [] for port in ports.values())


def test_server_not_healthy_in_time_names_its_log_and_is_stopped(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path / "home")
    ports = free_stack_ports()
    with pytest.raises(stack.StackError, match="did not become healthy") as raised:
        stack.up(home, timeout=1, **ports)
    assert str(home.runtime / "prefect.log") in str(raised.value)
    assert not (home.runtime / "stack.json").exists()
    assert all(_processes_using(port) == [] for port in ports.values())


def test_database_url_is_checked_before_anything_starts(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path / "home")
    with pytest.raises(stack.StackError, match="postgresql://"):
        stack.up(home, database_url="mysql://user:pw@db:3306", prefect_port=free_port())
    with pytest.raises(stack.StackError, match="database 'prefect'"):
        stack.up(home, database_url="postgresql://user:pw@db:5432/prefect", prefect_port=free_port())
    with pytest.raises(stack.StackError, match="names no bucket"):
        stack.up(home, artifacts="s3:///prefix", prefect_port=free_port())
    with pytest.raises(stack.StackError, match="absolute folder, got 'relative/dir'"):
        stack.up(home, artifacts="relative/dir", prefect_port=free_port())
    assert not (home.runtime / "stack.json").exists()


def test_artifacts_option_reaches_the_mlflow_command(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path / "home")
    ports = {s.name: s.default_port for s in stack.SERVICES.values()}
    s3 = stack.build_specs(home, ports, None, "s3://bucket/prefix/")["mlflow"]
    at = s3.command.index("--artifacts-destination")
    assert s3.command[at + 1] == "s3://bucket/prefix" and "--serve-artifacts" in s3.command
    assert s3.folders == (home.mlflow_auth,)  # no artifact folder; the auth app's config is in the home
    folder = stack.build_specs(home, ports, None, str(tmp_path / "art"))["mlflow"]
    assert folder.command[at + 1] == str(tmp_path / "art")
    assert folder.folders == (tmp_path / "art", home.mlflow_auth)


def test_up_with_a_config_serves_its_model_and_routes_its_alerts_to_the_webhook(
    running: RunningStack, receiver: Receiver, tmp_path: Path
) -> None:
    """`mlops up --config` on the running stack starts only what it lacked: the Bento following the config's
    model, Prometheus scraping it with the config's rules (windows of seconds here) and Alertmanager posting to
    the config's webhook. The Bento, started before the model has a champion, is alive but not ready until the
    first one is registered, then serves it. The compose one-shot's command renders the same files. The Bento
    killed for real: `MlopsServiceDown` reaches the webhook as a Slack-compatible message."""
    system_tool("prometheus", "prometheus")
    system_tool("prometheus-alertmanager", "prometheus-alertmanager")
    raw = yaml.safe_load((REPO / "configs" / "crm_leads.yaml").read_text())
    raw["serving"] = {"slo": {"window_seconds": 6, "for_seconds": 2}, "poll_interval_seconds": 0.5}
    raw["monitoring"] = {
        "alert_webhook_url": receiver.url,
        "alert_routing": {
            "scrape_interval_seconds": 1,
            "evaluation_interval_seconds": 1,
            "group_wait_seconds": 1,
            "group_interval_seconds": 1,
        },
    }
    config = tmp_path / "watched.yaml"
    config.write_text(yaml.safe_dump(raw))
    ports = [
        w
        for service in stack.SERVICES.values()
        for w in (service.port_option, str(running.ports[service.port_parameter]))
    ]
    env = {**os.environ, "MLOPS_HOME": str(running.home.root)}
    mlops = str(Path(sys.executable).parent / "mlops")
    done = subprocess.run(
        [mlops, "up", "--config", str(config), *ports], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    statuses = {s.name: s for s in stack.status(running.home)}
    assert sorted(statuses) == sorted(stack.SERVICES) and all(s.healthy for s in statuses.values())
    assert {name: statuses[name].pid for name in SERVERS} == {
        name: running.started[name].pid for name in SERVERS
    }
    # Alive, not ready: this home's registry has no champion of crm-leads yet.
    bento = statuses["bento"].url
    assert _get(bento + "/livez")[0] == 200
    with pytest.raises(urllib.error.HTTPError) as refused:
        _get(bento + "/readyz")
    assert refused.value.code == 503
    prometheus = statuses["prometheus"].url
    wait_until(
        lambda: _query(prometheus, 'up{job="crm-leads"} == 1'), 30, "the Bento scraped as job crm-leads"
    )
    managers = json.loads(_get(prometheus + "/api/v1/alertmanagers")[1])["data"]["activeAlertmanagers"]
    assert [m["url"] for m in managers] == [f"{statuses['alertmanager'].url}/api/v2/alerts"]
    _first_champion_is_served(running, bento, model=watched_model(config, running.home).name)

    # Compose's watch-files one-shot: the same files from the same config.
    out = tmp_path / "rendered"
    address = urllib.parse.urlsplit
    rendered = subprocess.run(
        [
            mlops,
            "alerts",
            "routing",
            "--config",
            str(config),
            "--out",
            str(out),
            "--alertmanager",
            address(statuses["alertmanager"].url).netloc,
            "--target",
            address(bento).netloc,
            "--bento-arguments",
            str(out / "bento-arguments.yaml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    home = running.home
    for mine, ours in [
        (out / "rules.yml", home.prometheus / "rules.yml"),
        (out / "alertmanager.yml", home.alertmanager / "alertmanager.yml"),
        (out / "targets" / "bento.json", home.prometheus / "targets" / "bento.json"),
        (out / "bento-arguments.yaml", home.runtime / "bento-arguments.yaml"),
    ]:
        assert yaml.safe_load(mine.read_text()) == yaml.safe_load(ours.read_text()), mine.name

    # The Bento stopped (its process manager stops its workers, which run in sessions of their own).
    bento_processes = [
        psutil.Process(statuses["bento"].pid),
        *psutil.Process(statuses["bento"].pid).children(True),
    ]
    os.killpg(statuses["bento"].pid, signal.SIGTERM)
    wait_until(lambda: all(_gone(p.pid) for p in bento_processes), 30, "the Bento's processes gone")
    message = wait_until(
        lambda: next(
            (
                body["attachments"][0]
                for body in list(receiver.bodies)
                if body.get("attachments") and "MlopsServiceDown" in body["attachments"][0]["title"]
            ),
            None,
        ),
        60,
        "MlopsServiceDown at the webhook",
        describe=lambda: f"got {receiver.bodies}",
    )
    assert message["title"].startswith("[FIRING] MlopsServiceDown: crm-leads")
    assert "does not answer Prometheus's scrape" in message["text"] and "model crm-leads" in message["text"]
    # `up` with the model again restarts only the Bento.
    again = {s.name: s for s in stack.up(home, model=watched_model(config, home), **running.ports)}
    assert again["bento"].healthy and again["bento"].pid != statuses["bento"].pid
    assert all(again[name].pid == statuses[name].pid for name in stack.SERVICES if name != "bento")


def _first_champion_is_served(running: RunningStack, bento: str, model: str) -> None:
    """The registry gets its first champion of ``model`` (registered as the pipeline does, through the stack's
    MLflow, signed in): the waiting Bento fetches, verifies and serves it without a restart, and answers a
    scoring request with its bearer token."""
    from mlflow import MlflowClient

    from infra.stack.secrets import read_secret

    with pytest.MonkeyPatch.context() as signed_in:
        for key, value in stack.credentials(running.home, "mlflow").items():
            signed_in.setenv(key, value)
        mlflow_url = f"http://127.0.0.1:{running.mlflow_port}"
        version = register_version(mlflow_url, running.home, tiny_scorer(4), model, "approved")
        MlflowClient(mlflow_url).set_registered_model_alias(model, Alias.CHAMPION, version)
    wait_until(lambda: _answers(bento + "/readyz"), 60, f"the Bento serving {model} v{version}")
    leads = generate_leads(2, seed=5)
    rows = json.loads(
        leads[[*SCHEMA.numeric, *SCHEMA.categorical, SCHEMA.id_column]].to_json(orient="records")
    )
    request = urllib.request.Request(
        bento + "/predict",
        data=json.dumps({"rows": rows}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {read_secret(running.home, 'serving')}",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert (body["model_name"], body["model_version"]) == (model, version), body
    assert len(body["predictions"]) == 2


def _answers(url: str) -> bool:
    try:
        return _get(url)[0] == 200
    except urllib.error.HTTPError:
        return False


def _query(prometheus: str, expr: str) -> list[dict]:
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    return json.loads(_get(url)[1])["data"]["result"]


def test_crashed_server_shows_as_stopped_and_up_restarts_only_it(running: RunningStack) -> None:
    crashed = running.started["mlflow"]
    os.killpg(crashed.pid, signal.SIGKILL)

    def shown_stopped() -> dict[str, stack.ServiceStatus] | None:
        statuses = {s.name: s for s in stack.status(running.home)}
        return None if statuses["mlflow"].running else statuses

    statuses = wait_until(shown_stopped, 10, "the killed MLflow server shown as stopped", interval=0.1)
    assert not statuses["mlflow"].running and not statuses["mlflow"].healthy
    assert statuses["mlflow"].log == running.home.runtime / "mlflow.log"
    assert "stopped" in statuses["mlflow"].describe()
    assert statuses["prefect"].running and statuses["prefect"].healthy
    # Clients keep pointing at the stack: they fail loudly on the dead server rather than write elsewhere.
    assert stack.endpoints(running.home)["MLFLOW_TRACKING_URI"] == crashed.url

    restarted = {s.name: s for s in stack.up(running.home, **running.ports)}
    assert restarted["prefect"].pid == running.started["prefect"].pid
    assert restarted["mlflow"].pid != crashed.pid and restarted["mlflow"].healthy


def test_down_stops_exactly_what_it_started(running: RunningStack) -> None:
    unrelated = subprocess.Popen(["sleep", "60"], start_new_session=True)
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        registered = stack.add_process(running.home, "runner", runner.pid)
        assert registered.running and registered.healthy
        with pytest.raises(stack.StackError, match="prefect"):
            stack.add_process(running.home, "prefect", unrelated.pid)
        # What `mlops deploy --detach` does: a background process with its own log, recorded.
        detached = stack.start_detached(
            running.home,
            "detached",
            [sys.executable, "-c", "print('runner up', flush=True); import time; time.sleep(60)"],
        )
        assert detached.running and detached.log == running.home.runtime / "detached.log"
        wait_until(
            lambda: "runner up" in detached.log.read_text(),
            60,
            "'runner up' in the detached process's log",
            interval=0.2,
        )
        assert "runner up" in detached.log.read_text(), "the detached process writes to its log"
        statuses = stack.status(running.home)
        names = [
            s.name for s in statuses
        ]  # servers in state order (a restarted one moves last), then the rest
        servers = len(stack.SERVICES)
        assert sorted(names[:servers]) == sorted(stack.SERVICES) and names[servers:] == ["runner", "detached"]
        # Each server's whole process group: MLflow runs its uvicorn worker as a child.
        pids = {
            p.pid
            for s in statuses
            for p in [psutil.Process(s.pid), *psutil.Process(s.pid).children(recursive=True)]
        }
        assert len(pids) > 3

        stopped = stack.down(running.home)

        # Every server: the Bento, Prometheus and Alertmanager too (`up --config` above; the Bento was killed).
        assert sorted(s.name for s in stopped) == sorted([*stack.SERVICES, "runner", "detached"])
        assert not any(s.running for s in stopped)
        assert all(_gone(pid) for pid in pids)
        # Our own children are reaped by `down`, so they do not linger as zombies.
        assert not any(psutil.pid_exists(s.pid) for s in statuses)
        assert unrelated.poll() is None
        assert not (running.home.runtime / "stack.json").exists()
        assert stack.down(running.home) == [] and stack.status(running.home) == []
        assert stack.endpoints(running.home) == {}
    finally:
        for proc in (unrelated, runner):
            proc.kill()
            proc.wait()
