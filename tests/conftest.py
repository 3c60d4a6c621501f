"""Shared fixtures: an isolated project home, generated data, and one real Prefect server.

The Prefect server is started once per test session (``prefect server start`` on a free
loopback port) and stopped by the fixture; every test that runs a flow talks to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Quiet and offline for every library the tests touch. Prefect's own state (persisted task
# results, profiles) goes to a throwaway folder, not the user's ~/.prefect.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="mlops-tests-prefect-"))
os.environ.update(
    {
        "DO_NOT_TRACK": "1",
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
)


# Screenshots of the browser tests, kept after the run (git-ignored).
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium: skipped on a user's machine without it, a failure in CI (which installs it)."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        reason = "Chromium not found: install Debian's `chromium` package (`apt-get install chromium`)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; .ci/run installs it before `make test`")
        pytest.skip(reason)
    return path


def mlops_in_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """An `mlops` command as typed, run in this process: Typer's runner gives the CLI's own parsing, output
    and exit code without another interpreter start-up (imports alone cost several seconds per call).
    ``env`` holds the variables a shell would set (``MLOPS_HOME``, ...); they apply for the call only.
    Not for commands that build or serve Bentos: BentoML fixes its home at its first use in a process."""
    from typer.testing import CliRunner

    from flows.cli import app

    # Every variable the CLI would otherwise set for the rest of this process (ProjectHome.configure_environment).
    from infra.home import ProjectHome

    home = ProjectHome(Path(env["MLOPS_HOME"]))
    env = {"BENTOML_HOME": str(home.bentoml), "MLFLOW_TRACKING_URI": home.tracking_uri, **env}
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["mlops", *args], result.exit_code, result.stdout, result.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_stack_ports(**fixed: int) -> dict[str, int]:
    """A distinct free loopback port for every server of the registry (``up``'s keywords), but ``fixed``."""
    ports = dict(fixed)
    from infra import stack

    for service in stack.SERVICES.values():
        while service.port_parameter not in ports:
            port = free_port()
            if port not in ports.values():
                ports[service.port_parameter] = port
    return ports


def wait_http(
    url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a process group started with start_new_session=True: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server for the whole session, with API auth on as the stack runs it; yields its API URL.

    The credential (``PREFECT_API_AUTH_STRING``, ``mlops:<random>``) is in this process's settings and
    environment, so clients here and subprocesses started with ``os.environ`` send it, as ``mlops``
    commands send the stack's.

    Flows run in this process send no heartbeats: the heartbeat thread sleeps in one-second steps
    and the flow waits for it at exit, which adds up to a second to every flow run. Heartbeats only
    serve the server's detection of crashed runs, which no test relies on.
    """
    import secrets

    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    home = tmp_path_factory.mktemp("prefect-home")
    credential = f"mlops:{secrets.token_urlsafe(16)}"
    port = free_port()
    log = home / "server.log"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        # The UI asks the server where its API is; without this it assumes port 4200.
        "PREFECT_SERVER_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Schedules in tests fire within seconds instead of the default minute.
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "PREFECT_SERVER_API_AUTH_STRING": credential,
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_API_AUTH_STRING", None)
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_http(f"{url}/health", timeout=120, proc=proc, log=log)
        os.environ["PREFECT_API_URL"] = url
        os.environ["PREFECT_API_AUTH_STRING"] = credential
        settings = {
            PREFECT_API_URL: url,
            PREFECT_API_AUTH_STRING: credential,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        }
        with temporary_settings(updates=settings):
            yield url
    finally:
        # Drain queued run logs while the server is still up, or the log worker retries
        # against a dead server at interpreter exit.
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.pop("PREFECT_API_AUTH_STRING", None)
        stop_process(proc)


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[None]:
    """One local Ray runtime per test module: `run_sweep` (and the pipeline's sweep) reuses a running
    runtime and leaves it running, so the module pays Ray's start-up once; stopped here."""
    import logging

    import ray

    assert not ray.is_initialized(), "another test left Ray running"
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project home for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def leads_frame():
    from models.data.synthetic import generate_leads

    return generate_leads(3000, seed=11)


@pytest.fixture
def leads_csv(tmp_path: Path, leads_frame) -> Path:
    from models.data.io import write_table

    return write_table(leads_frame, tmp_path / "leads.csv")


@pytest.fixture
def default_config_copy(tmp_path: Path, leads_csv: Path) -> Path:
    """The shipped default config and suite, copied next to a small generated CSV."""
    shutil.copy(REPO / "configs" / "crm_leads.expectations.json", tmp_path / "crm_leads.expectations.json")
    text = (REPO / "configs" / "crm_leads.yaml").read_text()
    text = text.replace("${MLOPS_HOME}/data/crm_leads.parquet", leads_csv.name)
    path = tmp_path / "crm_leads.yaml"
    path.write_text(text)
    return path


def small_pipeline_config(path: Path, data: Path, *, model_name: str, trials: int = 2, **sections) -> Path:
    """The shipped default config shrunk for tests (tiny network, ``trials`` trials, 3 epochs), writing
    to ``path``; ``sections`` replace top-level sections (e.g. ``approval=...``, ``name=...``).

    Tests about what happens around the sweep (gates, deployments, workers) pass ``trials=1``: one
    Ray actor fewer to start, a few seconds per run on two cores."""
    import yaml

    raw = yaml.safe_load((REPO / "configs" / "crm_leads.yaml").read_text())
    raw["data"].update(path=str(data), expectations=str(REPO / "configs" / "crm_leads.expectations.json"))
    raw.update(
        registry={"model_name": model_name},
        model={"architecture": "mlp", "max_epochs": 3, "hidden_sizes": [32, 16]},
        # Cross-validation is tested where it is under test (e2e Telco run, unit tests): off here.
        split={"cv_folds": 0},
        sweep={
            "num_samples": trials,
            "max_concurrent_trials": 2,
            "grace_period": 1,
            "search_space": raw["sweep"]["search_space"],
        },
        evaluation={"n_bootstrap": 200, "importance_repeats": 1},
        # The first model must become champion whatever the tiny data says about the baselines.
        promotion={"require_beat_baseline": False},
    )
    raw.update(sections)
    path.write_text(yaml.safe_dump(raw))
    return path


def monitored_checks(n_checks: int = 3, rows: int = 2000, seed: int = 0) -> list:
    """Drift checks (`monitoring.check.MonitorResult`) of growing drift against one synthetic reference:
    none, then one column of three, then every column, the last with labels. Pure and fast (no model)."""
    import numpy as np
    import pandas as pd

    from monitoring.check import check_batch
    from monitoring.config import MonitoringConfig
    from monitoring.reference import DriftReference

    rng = np.random.default_rng(seed)

    def table(n: int, shift: float, shifted: int) -> pd.DataFrame:
        moved = [shift if i < shifted else 0.0 for i in range(3)]
        return pd.DataFrame(
            {
                "deal_size": rng.lognormal(3.0 + moved[0], 0.5, n),
                "visits": rng.poisson(4 + 4 * moved[1], n).astype(float),
                "plan": rng.choice(
                    ["free", "pro", "team"], n, p=[0.6 - 0.4 * moved[2], 0.3, 0.1 + 0.4 * moved[2]]
                ),
            }
        )

    holdout = rng.beta(2, 5, 1000)
    reference = DriftReference.of(
        table(5000, 0.0, 0),
        numeric=["deal_size", "visits"],
        categorical=["plan"],
        holdout_scores=holdout,
        holdout_labels=(rng.random(1000) < holdout).astype(int),
        threshold=0.4,
        rows=5000,
        seed=seed,
    )
    results = []
    for i in range(n_checks):
        shifted = min(i * 3 // max(n_checks - 1, 1), 3) if i else 0
        batch = table(rows, 1.0, shifted)
        scores = np.clip(rng.beta(2, 5, rows) + 0.1 * shifted, 0.0, 1.0)
        labels = (rng.random(rows) < scores).astype(int) if i == n_checks - 1 else None
        results.append(
            check_batch(
                reference,
                batch,
                scores,
                labels,
                model_name="crm-leads-dash",
                version="3",
                config=MonitoringConfig(),
                n_resamples=200,
                seed=seed + i,
                confidence=0.95,
            )
        )
    return results
