"""`prefect.yaml` as a platform owner uses it: `prefect deploy --all` against a real Prefect server, and
a real process worker executing a run of a deployment it registers.

It must register the same training deployment that `mlops deploy --config configs/crm_leads.yaml`
serves: the same flow, config parameter and schedule, and a pull step that lets a worker started
anywhere find the repository's code; and the feature materialisation that
`mlops deploy --config configs/crm_feature_store.yaml` adds, on the same interval.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.responses import DeploymentResponse
from prefect.deployments import run_deployment

from flows.config import load_config
from infra.home import ProjectHome

from helpers.processes import stop_process

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POOL = "mlops-process"  # the work pool prefect.yaml names
DEPLOYMENT = "training-pipeline/crm-leads"
MATERIALIZE = "materialize-features/crm-feature-store"


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout


def _prefect(*args: str, api_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    return subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def deployment(prefect_server: str) -> DeploymentResponse:
    """The README's steps: create the process pool, then `prefect deploy --all` from the repository root."""
    before = _git_status()
    pool = _prefect("work-pool", "create", POOL, "--type", "process", "--overwrite", api_url=prefect_server)
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deployed = _prefect("deploy", "--all", api_url=prefect_server)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    assert _git_status() == before, "prefect deploy must not change the repository"
    with get_client(sync_client=True) as client:
        assert client.read_deployment_by_name("drift-monitor/crm-leads").work_pool_name == POOL
        materialize = client.read_deployment_by_name(MATERIALIZE)
        assert materialize.work_pool_name == POOL
        assert materialize.parameters == {"config_path": "configs/crm_feature_store.yaml"}
        [interval] = materialize.schedules
        assert interval.schedule.interval.total_seconds() == 3600 and interval.active
        return client.read_deployment_by_name(DEPLOYMENT)


def test_prefect_yaml_matches_the_default_config(tmp_path: Path) -> None:
    spec, monitor, materialize = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    config = load_config(REPO / spec["parameters"]["config_path"], home=tmp_path)
    [schedule] = spec["schedules"]
    assert (schedule["cron"], schedule["timezone"]) == (config.schedule.cron, config.schedule.timezone)
    assert spec["entrypoint"] == "flows/training.py:training_pipeline"
    # The drift trigger and the monitor's interval are the config's, as `mlops deploy` builds them.
    from flows.deployments import drift_trigger

    [trigger] = spec["triggers"]
    expected = drift_trigger(config, spec["parameters"]["config_path"])
    assert set(trigger["expect"]) == expected.expect and trigger["match"] == expected.match.model_dump()
    assert trigger["within"] == expected.within.total_seconds() and trigger["threshold"] == expected.threshold
    assert trigger["parameters"] == expected.parameters and trigger["posture"] == expected.posture.value
    assert monitor["entrypoint"] == "flows/monitor.py:drift_monitor"
    assert monitor["schedules"] == [{"interval": config.monitoring.schedule_interval_minutes * 60}]
    # Materialisation as `mlops deploy` builds it for the shipped feature-store config.
    from flows.deployments import materialize_deployment

    store_config_path = materialize["parameters"]["config_path"]
    expected = materialize_deployment(load_config(REPO / store_config_path, home=tmp_path), store_config_path)
    assert expected is not None and materialize["entrypoint"] == "flows/features.py:materialize_features"
    assert materialize["name"] == expected.name and materialize["parameters"] == expected.parameters
    [interval] = expected.schedules
    assert materialize["schedules"] == [{"interval": interval.schedule.interval.total_seconds()}]
    assert materialize["tags"] == expected.tags


def test_prefect_deploy_registers_the_training_deployment(deployment: DeploymentResponse) -> None:
    assert deployment.work_pool_name == POOL
    assert deployment.parameters == {"config_path": "configs/crm_leads.yaml"}
    [schedule] = deployment.schedules
    assert schedule.schedule.cron == "0 3 * * 1" and schedule.active
    # A worker runs the flow from the repository, wherever it was started.
    assert {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}} in (
        deployment.pull_steps or []
    )


@pytest.mark.timeout(600)
def test_process_worker_runs_a_deployment_as_registered(
    deployment: DeploymentResponse, tmp_path: Path
) -> None:
    """A run of a deployment `prefect deploy --all` registered, with its own parameters, executed by `prefect
    worker start` from another folder: the feature materialisation of the shipped feature-store config, on a
    CRM source generated where that config reads it (``$MLOPS_HOME/data/crm``). The worker finds the code
    through the pull step; the run ends Completed with the views in the online store. (The training flow runs
    as a deployment end to end in test_drift_loop, started by its drift trigger; here its registration is.)"""
    from datetime import UTC, datetime

    from models.data.crm import generate_crm, label_spine, start_ending_at, write_crm

    home = ProjectHome(tmp_path / "home")
    source = generate_crm(300, 5, start=start_ending_at(datetime.now(UTC)))
    write_crm(source, label_spine(source, seed=5), home.root / "data" / "crm")
    run = run_deployment(MATERIALIZE, timeout=0)

    log = tmp_path / "worker.log"
    env = {**os.environ, "MLOPS_HOME": str(home.root)}
    with log.open("w") as handle:
        # --run-once with a limit: take the scheduled run, wait until it has finished, exit.
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--run-once", "--limit", "1"],
            cwd=tmp_path,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        worker.wait(timeout=480)
    finally:
        stop_process(worker)

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    assert state is not None and state.is_completed(), f"{state}\n{log.read_text()[-4000:]}"
    assert run.parameters == {"config_path": "configs/crm_feature_store.yaml"}
    # The run's record of what it wrote, in the worker's home.
    import json

    [record] = [json.loads(line) for line in home.materializations("mlops_crm").read_text().splitlines()]
    assert record["flow_run_id"] == str(run.id)
    assert {"lead_activity", "lead_attributes"} <= set(record["views"]), record
    assert all(view["rows"] > 0 for view in record["views"].values()), record
