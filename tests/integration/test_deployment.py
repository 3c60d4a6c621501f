"""Deployments as a platform owner runs them: `mlops deploy` serving the training pipeline against
a real Prefect server; a run suspends at the promotion gate and an approver decides.

1. A deployment run suspends at the promotion gate (its runner is released); approving it through
   the API completes the run, moves `champion`, writes the decision tags, and the sweep is not run
   a second time (the resumed run replays persisted task results).
2. A deployment with a cron schedule fires on its own; rejecting its candidate leaves the champion.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.deployments import run_deployment
from prefect.flow_runs import resume_flow_run

from infra.home import ProjectHome
from models.data.io import write_table
from models.data.synthetic import generate_leads

from conftest import small_pipeline_config, stop_process

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MLOPS = str(Path(sys.executable).parent / "mlops")
MODEL = "crm-deploy-test"


def _config(root: Path, data: Path, name: str, schedule: dict) -> Path:
    return small_pipeline_config(
        root / f"{name}.yaml",
        data,
        model_name=MODEL,
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
    }
    return {"root": root, "home": home, "data": data, "env": process_env}


class Runner:
    """`mlops deploy --config X` in the foreground, as a platform owner starts it; stopped by the test."""

    def __init__(self, env: dict, config: Path, log: Path) -> None:
        self.log = log
        with log.open("w") as handle:
            self.proc = subprocess.Popen(
                [MLOPS, "deploy", "--config", str(config)],
                cwd=REPO, env=env["env"], stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def tail(self) -> str:
        return self.log.read_text()[-4000:]

    def stop(self) -> None:
        stop_process(self.proc)


def _wait_state(run_id: UUID, predicate, what: str, runner: Runner, timeout: float = 420):
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(run_id).state
            if state is not None and predicate(state):
                return state
            if state is not None and (state.is_failed() or state.is_crashed()):
                raise AssertionError(f"run {run_id} ended {state.name}: {state.message}\n{runner.tail()}")
            time.sleep(2)
    raise TimeoutError(f"run {run_id} did not become {what} in {timeout} s\n{runner.tail()}")


def _deployment_id(name: str, timeout: float, runner: Runner) -> UUID:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            found = client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
            )
            if found:
                return found[0].id
            time.sleep(1)
    raise TimeoutError(f"deployment {name} was not registered\n{runner.tail()}")


def test_suspended_run_is_approved_without_retraining(env) -> None:
    runner = Runner(
        env, _config(env["root"], env["data"], "deploy-approve", {"cron": "0 3 * * 1"}), env["root"] / "a.log"
    )
    try:
        _deployment_id("deploy-approve", 120, runner)
        flow_run = run_deployment("training-pipeline/deploy-approve", timeout=0)
        state = _wait_state(flow_run.id, lambda s: s.is_paused(), "suspended", runner)
        assert state.name == "Suspended", "a deployment run releases its runner at the gate"
        resume_flow_run(flow_run.id, run_input={"approved": True, "approver": "alice", "comment": "ship it"})
        _wait_state(flow_run.id, lambda s: s.is_completed(), "completed", runner)
    finally:
        runner.stop()

    client = MlflowClient(env["home"].tracking_uri)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    tags = champion.tags
    assert tags["approval.promotion.outcome"] == "approved" and tags["approval.promotion.approver"] == "alice"
    assert (
        tags["approval.promotion.decided_by"] == "human" and tags["approval.promotion.comment"] == "ship it"
    )
    assert tags["prefect.flow_run_id"] == str(flow_run.id)

    # The resumed run replayed the sweep from its persisted result: one sweep, one set of trial runs.
    with get_client(sync_client=True) as prefect:
        task_runs = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
        )
    sweeps = [t for t in task_runs if t.name.startswith("hyperparameter-sweep")]
    assert [t.state.name for t in sweeps].count("Completed") == 1, [t.state.name for t in sweeps]
    assert all(t.state.name in ("Completed", "Cached") for t in sweeps)
    experiment = client.get_experiment_by_name(MODEL)
    parents = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`prefect.flow_run_id` = '{flow_run.id}'"
    )
    assert len(parents) == 1


def test_scheduled_run_fires_and_a_rejection_keeps_the_champion(env) -> None:
    runner = Runner(
        env, _config(env["root"], env["data"], "deploy-cron", {"cron": "* * * * *"}), env["root"] / "b.log"
    )
    try:
        deployment_id = _deployment_id("deploy-cron", 120, runner)
        deadline = time.monotonic() + 240
        fired = None
        with get_client(sync_client=True) as client:
            while fired is None and time.monotonic() < deadline:
                runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [deployment_id]}))
                started = [r for r in runs if r.state and not r.state.is_scheduled()]
                fired = started[0] if started else None
                time.sleep(2)
        assert fired is not None, f"the cron schedule did not fire\n{runner.tail()}"
        assert fired.auto_scheduled, "the run came from the schedule, not from a person"
        _wait_state(fired.id, lambda s: s.is_paused(), "suspended", runner)
        resume_flow_run(
            fired.id, run_input={"approved": False, "approver": "bob", "comment": "not this week"}
        )
        _wait_state(fired.id, lambda s: s.is_completed(), "completed", runner)
    finally:
        runner.stop()

    client = MlflowClient(env["home"].tracking_uri)
    candidate = next(
        v
        for v in client.search_model_versions(f"name='{MODEL}'")
        if v.tags.get("prefect.flow_run_id") == str(fired.id)
    )
    assert candidate.tags["approval.promotion.outcome"] == "rejected"
    assert candidate.tags["promotion.decision"] == "rejected"
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) != str(candidate.version), "a rejected candidate never becomes champion"
