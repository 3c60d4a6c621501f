"""Shared fixtures: an isolated project home, generated data, and one real Prefect server.

The Prefect server is started once per test session (``prefect server start`` on a free
loopback port) and stopped by the fixture; every test that runs a flow talks to it.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.configs import REPO
from helpers.processes import free_port, stop_process, wait_http
from helpers.system import system_tool
from helpers.webhook import Receiver

BIN = Path(sys.executable).parent

# `make test` runs two workers that take whole files in collection order. The files holding the longest
# stacks and pipeline runs go first (longest first), so that the last minutes are many short files shared
# by both workers rather than one long file that leaves the other worker idle.
SLOW_FILES_FIRST = (
    "integration/test_stack_faults.py",
    "integration/test_drift_loop.py",
    "integration/test_benchmarks.py",
    "integration/test_sweep.py",
    "integration/test_registry_following.py",
    "integration/test_training_pipeline.py",
    "e2e/test_crm_feature_store.py",
    "integration/test_prefect_yaml.py",
    "integration/test_deployment.py",
    "e2e/test_cli_data.py",
    "integration/test_serving.py",
    "integration/test_stack.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Keep that order under xdist: since 3.8 its file scheduling queues the files with the most tests first
    (``--loadscope-reorder``, on by default), which put the longest files (few tests each) last, running alone
    on one worker at the end of the suite."""
    if getattr(config.option, "loadscopereorder", False):
        config.option.loadscopereorder = False


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Iterator[object]:
    """Collection imports the whole stack (torch, Lightning, Ray, MLflow, Prefect, BentoML, Evidently: about 1 GB of
    objects), which the cyclic garbage collector would walk again and again as the heap grows: off while the
    test modules are imported, then those objects frozen out of later collections (they live until the process
    exits), as the CLI does for its own imports (``flows.cli.startup``). Measured on 2 cores: `pytest
    --collect-only` of the suite takes 13-14 s of CPU instead of 19-26 s; each xdist worker collects it."""
    gc.disable()
    try:
        return (yield)
    finally:
        gc.collect()  # the collection's own cyclic garbage, before the survivors are frozen
        gc.freeze()
        gc.enable()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    stale = [name for name in SLOW_FILES_FIRST if not (tests / name).is_file()]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py SLOW_FILES_FIRST names files that are gone: {stale}")

    def rank(item: pytest.Item) -> int:
        name = item.path.relative_to(tests).as_posix()
        return SLOW_FILES_FIRST.index(name) if name in SLOW_FILES_FIRST else len(SLOW_FILES_FIRST)

    items.sort(key=rank)  # stable: within a file, and among the other files, pytest's own order


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


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium: skipped on a user's machine without it, a failure in CI (which installs it)."""
    return system_tool("chromium", "chromium", Path("/usr/bin/chromium"))


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server for the whole session, with API auth on as the stack runs it; yields its API URL.

    The credential (``PREFECT_API_AUTH_STRING``, ``mlops:<random>``) is in this process's settings and
    environment, so clients here and subprocesses started with ``os.environ`` send it, as ``mlops``
    commands send the stack's. At the end both variables are restored as they were.

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
    environment = pytest.MonkeyPatch()
    try:
        wait_http(f"{url}/health", timeout=120, proc=proc, log=log)
        environment.setenv("PREFECT_API_URL", url)
        environment.setenv("PREFECT_API_AUTH_STRING", credential)
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
        # Both variables as they were before the session: a previous value put back, or removed.
        environment.undo()
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


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A local webhook receiver (`helpers.webhook.Receiver`) for the alerts a module's tests expect."""
    hook = Receiver()
    try:
        yield hook
    finally:
        hook.stop()
