"""Deployments as a platform owner runs them: `mlops deploy` serving the training pipeline against
a real Prefect server, with the config's cron schedule.

One runner serves one deployment for the module, with a cron schedule that fires every 10 seconds (a
six-field cron: croniter, which Prefect uses, reads a sixth field as the seconds), so the test does not wait
for a minute to turn. The
schedule fires on its own and the runner starts the run; that run is cancelled as soon as it has
started, and the deployment paused: a whole deployment run, suspended at the promotion gate, approved
and replayed without retraining, is test_drift_loop's (there the drift event starts it).

A person's rejection keeping the champion is checked on a local run, in test_training_pipeline: the
gate and the decision tags are the same code for both kinds of run.
"""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Cancelling, State

from infra.home import ProjectHome
from models.data.io import write_table
from models.data.synthetic import generate_leads

from helpers.configs import small_pipeline_config
from helpers.processes import stop_process, wait_until

CRON = "* * * * * */10"  # every 10 seconds
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MLOPS = str(Path(sys.executable).parent / "mlops")
MODEL = "crm-deploy-test"


def _config(root: Path, data: Path, name: str, schedule: dict) -> Path:
    return small_pipeline_config(
        root / f"{name}.yaml",
        data,
        model_name=MODEL,
        trials=1,
        name=name,
        approval={"promotion": {"mode": "human"}, "timeout_seconds": 900},
        schedule=schedule,
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> dict:
    root = tmp_path_factory.mktemp("deploy")
    home = ProjectHome(root / "home")
    data = write_table(generate_leads(4000, seed=21), root / "leads.parquet")
    process_env = {
        **os.environ,
        "MLOPS_HOME": str(home.root),
        "MLFLOW_TRACKING_URI": home.tracking_uri,
        "BENTOML_HOME": str(home.bentoml),
        "PREFECT_API_URL": prefect_server,
        # The runner picks up a new or resumed run within a second instead of its default 10 s.
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    return {"root": root, "home": home, "data": data, "env": process_env}


class Runner:
    """`mlops deploy --config X` in the foreground, as a platform owner starts it; stopped by its fixture."""

    def __init__(self, env: dict, config: Path, log: Path) -> None:
        self.log = log
        with log.open("w") as handle:
            self.proc = subprocess.Popen(
                [MLOPS, "deploy", "--config", str(config)],
                cwd=REPO,
                env=env["env"],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def tail(self) -> str:
        return self.log.read_text()[-4000:]

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass(frozen=True)
class Served:
    runner: Runner
    deployment_id: UUID


def _deployment_id(name: str, timeout: float, runner: Runner) -> UUID:
    with get_client(sync_client=True) as client:
        found = wait_until(
            lambda: client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
            ),
            timeout,
            f"deployment {name} registered",
            interval=1,
            describe=runner.tail,
        )
    return found[0].id


@pytest.fixture(scope="module")
def served(env) -> Iterator[Served]:
    """One `mlops deploy` for the module: deployment `training-pipeline/deploy-cron`, every 10 seconds."""
    runner = Runner(
        env,
        _config(env["root"], env["data"], "deploy-cron", {"cron": CRON}),
        env["root"] / "runner.log",
    )
    try:
        yield Served(runner, _deployment_id("deploy-cron", 120, runner))
    finally:
        runner.stop()


class FirstScheduledRun:
    """Watches the deployment in a thread (in a copy of the test's context, which holds the server's
    settings) for the first run the schedule fires. Once its process reports it Running, the run is
    cancelled (the runner kills the process) and the deployment paused (which deletes the runs still
    scheduled)."""

    def __init__(self, deployment_id: UUID, timeout: float = 300) -> None:
        self.deployment_id = deployment_id
        self.fired: FlowRun | None = None  # as first seen after it left Scheduled
        self.final: State | None = None
        self.errors: list[BaseException] = []
        self._deadline = time.monotonic() + timeout
        self._stop = threading.Event()
        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(self._watch,), daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        try:
            with get_client(sync_client=True) as client:
                while not self._stop.is_set() and time.monotonic() < self._deadline:
                    if self.fired is None:
                        runs = client.read_flow_runs(
                            deployment_filter=DeploymentFilter(id={"any_": [self.deployment_id]})
                        )
                        fired = [
                            r for r in runs if r.auto_scheduled and r.state and not r.state.is_scheduled()
                        ]
                        if fired:
                            self.fired = fired[0]
                            client.pause_deployment(self.deployment_id)
                    else:
                        state = client.read_flow_run(self.fired.id).state
                        if state.is_final():
                            self.final = state
                            return
                        # Running: the process the runner started has begun the flow (a state the
                        # process itself reports, not a guess from how long the run was Pending).
                        if state.is_running():
                            client.set_flow_run_state(self.fired.id, Cancelling())
                    time.sleep(1)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.errors.append(exc)

    def wait(self, runner: Runner) -> tuple[FlowRun, State]:
        self.thread.join(max(0.0, self._deadline - time.monotonic()) + 10)
        assert not self.errors, self.errors
        assert self.fired is not None, f"the cron schedule did not fire\n{runner.tail()}"
        assert self.final is not None, f"the scheduled run {self.fired.id} did not end\n{runner.tail()}"
        return self.fired, self.final

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)


@pytest.fixture(scope="module")
def scheduled(served: Served) -> Iterator[FirstScheduledRun]:
    watcher = FirstScheduledRun(served.deployment_id)
    try:
        yield watcher
    finally:
        watcher.stop()


def test_deployment_carries_the_configs_schedule(served: Served) -> None:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(served.deployment_id)
    [schedule] = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == (CRON, "UTC")
    assert deployment.parameters["config_path"].endswith("deploy-cron.yaml")


def test_cron_schedule_fires_and_the_runner_starts_the_run(
    served: Served, scheduled: FirstScheduledRun
) -> None:
    fired, final = scheduled.wait(served.runner)
    assert fired.auto_scheduled, "the run came from the schedule, not from a person"
    assert fired.state.type in (StateType.PENDING, StateType.RUNNING), "the runner picked it up"
    # The runner kills the run's process and reports it Cancelled; the dying process may report itself
    # Crashed ("aborted by a termination signal") first. Either way the run ended by that kill.
    killed = final.is_crashed() and "termination signal" in (final.message or "")
    assert final.is_cancelled() or killed, final
    with get_client(sync_client=True) as client:
        assert client.read_deployment(served.deployment_id).paused


def test_a_feature_store_config_adds_materialisation_on_its_interval(tmp_path: Path) -> None:
    """Beside training and monitoring, `mlops deploy` serves `materialize-features/<name>` every
    feature_store.materialize_interval_minutes: none without a feature store or without an interval."""
    from datetime import timedelta

    from flows.config import load_config
    from flows.deployments import materialize_deployment

    store_config = REPO / "configs" / "crm_feature_store.yaml"
    every_5 = load_config(
        store_config, home=tmp_path, overrides={"feature_store.materialize_interval_minutes": 5}
    )
    deployment = materialize_deployment(every_5, "/configs/store.yaml")
    assert deployment is not None
    assert (deployment.flow_name, deployment.name) == ("materialize-features", "crm-feature-store")
    assert deployment.parameters == {"config_path": "/configs/store.yaml"}
    [schedule] = deployment.schedules
    assert schedule.schedule.interval == timedelta(minutes=5) and schedule.active
    unscheduled = load_config(
        store_config, home=tmp_path, overrides={"feature_store.materialize_interval_minutes": None}
    )
    assert materialize_deployment(unscheduled, "/c.yaml") is None
    assert (
        materialize_deployment(load_config(REPO / "configs" / "crm_leads.yaml", home=tmp_path), "/c.yaml")
        is None
    )
