"""Faults of the server stack, each on a real local stack (``mlops up``: Prefect, MLflow and the
Evidently UI as processes, with their credentials on), driven through the ``mlops`` CLI as a user does.

One stack and one home for the module. The pipeline runs in order: the first waits at its human
promotion gate while the Prefect server restarts, then is approved while MLflow is down (it fails and
promotes nothing); the second, once MLflow is back, is approved and promotes its version.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
from mlflow.exceptions import MlflowException

from infra import stack
from infra.home import ProjectHome
from models.data.io import write_table
from models.data.synthetic import generate_leads

from helpers.configs import small_pipeline_config
from helpers.flow_runs import find_paused_run
from helpers.processes import free_port, free_stack_ports, wait_until
from helpers.redis import redis_server_program

pytestmark = pytest.mark.integration

MLOPS = str(Path(sys.executable).parent / "mlops")
REPO = Path(__file__).resolve().parents[2]
MODEL = "crm-leads-faults"
PAUSE_TIMEOUT_S = 300  # generate, train, sweep and evaluate the shrunken pipeline up to the gate
FINISH_TIMEOUT_S = 240  # after the answer: record, promote, package (or fail on a dead MLflow)
FAST_FAILING_MLFLOW_CLIENT = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


@dataclass
class Stack:
    home: ProjectHome
    ports: dict[str, int]
    config: Path
    root: Path

    def env(self) -> dict[str, str]:
        """A user's shell: only MLOPS_HOME, so that the CLI finds the stack, its URLs and credentials."""
        clients = {v for service in stack.SERVICES.values() for v in service.client_variables}
        homes = {"MLOPS_HOME", "MLFLOW_TRACKING_URI", "BENTOML_HOME", "PREFECT_HOME"}
        env = {k: v for k, v in os.environ.items() if k not in clients | homes}
        # A user's own MLflow retry settings win over the home's bound (infra.home sets them only when
        # unset): one quick retry, so the MLflow-down run fails in seconds rather than the bound's ~30 s.
        return {**env, "MLOPS_HOME": str(self.home.root), **FAST_FAILING_MLFLOW_CLIENT}

    def mlops(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [MLOPS, *args], cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def start_run(self, name: str) -> tuple[subprocess.Popen, Path]:
        log = self.root / f"{name}.log"
        with log.open("w") as handle:
            proc = subprocess.Popen(
                [MLOPS, "run", "--config", str(self.config)],
                cwd=REPO,
                env=self.env(),
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return proc, log

    def client(self):
        """MLflow's client of the stack, signed in with the home's credential: MLflow's client reads it
        from the environment only, where the ``faulty`` fixture puts it for the module."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=stack.endpoints(self.home)["MLFLOW_TRACKING_URI"])


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("faults")
    home = ProjectHome(root / "home")
    data = write_table(generate_leads(4000, seed=11), root / "leads.parquet")
    config = small_pipeline_config(
        root / "pipeline.yaml",
        data,
        model_name=MODEL,
        trials=1,
        approval={"promotion": {"mode": "human"}, "timeout_seconds": 900},
    )
    ports = free_stack_ports()
    redis_server_program()  # the stack runs Debian's redis-server: skips without it, fails under CI=true
    # The credential is set in this process's environment for the module, and restored as it was after it
    # (a previous value put back, or removed); the `mlops` commands' environment (Stack.env) leaves it out.
    with pytest.MonkeyPatch.context() as environment:
        try:
            stack.up(home, **ports)
            endpoints = stack.endpoints(home)
            for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                environment.setenv(key, endpoints[key])
            yield Stack(home, ports, config, root)
        finally:
            stack.down(home)


def _paused_run(faulty: Stack, proc: subprocess.Popen, log: Path, seen: set[UUID]) -> UUID:
    """The id of the training run ``proc`` started, once it waits at its gate (as the UI's list shows it)."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    endpoints = stack.endpoints(faulty.home)
    settings = {
        PREFECT_API_URL: endpoints["PREFECT_API_URL"],
        PREFECT_API_AUTH_STRING: endpoints["PREFECT_API_AUTH_STRING"],
    }
    with temporary_settings(updates=settings):
        run = find_paused_run(
            flow_name="training-pipeline",
            exclude=seen,
            process=proc,
            timeout=PAUSE_TIMEOUT_S,
            what="a run waiting at its gate",
            describe=lambda: log.read_text()[-4000:],
        )
    seen.add(run.id)
    return run.id


def _finish(proc: subprocess.Popen, log: Path) -> tuple[int, str]:
    try:
        code = proc.wait(timeout=FINISH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(
            f"`mlops run` did not finish within {FINISH_TIMEOUT_S} s of the answer:\n{log.read_text()[-4000:]}"
        )
    return code, log.read_text()


def _kill(faulty: Stack, name: str) -> None:
    """Stop one server of the stack as a crash would (its whole process group), and see it stopped."""
    (record,) = [s for s in stack.status(faulty.home) if s.name == name]
    os.killpg(record.pid, signal.SIGKILL)
    wait_until(
        lambda: not {s.name: s for s in stack.status(faulty.home)}[name].running,
        30,
        f"the killed {name} server shown as stopped",
        interval=0.2,
    )


SEEN: set[UUID] = set()


def test_gate_survives_a_prefect_restart_and_an_approval_while_mlflow_is_down_moves_nothing(
    faulty: Stack,
) -> None:
    proc, log = faulty.start_run("restart-then-mlflow-down")
    run_id = _paused_run(faulty, proc, log, SEEN)  # v1 is registered (challenger) and waits for a person
    before = {s.name: s.pid for s in stack.status(faulty.home)}

    _kill(faulty, "prefect")
    restarted = {s.name: s for s in stack.up(faulty.home, **faulty.ports)}  # restarts only Prefect
    assert restarted["prefect"].pid != before["prefect"] and restarted["prefect"].healthy
    assert restarted["mlflow"].pid == before["mlflow"]
    # The run still waits at its gate on the restarted server (its state is in the database).
    listed = faulty.mlops("approvals", "list")
    assert listed.returncode == 0 and str(run_id) in listed.stdout, listed.stdout + listed.stderr

    _kill(faulty, "mlflow")
    approved = faulty.mlops("approvals", "approve", str(run_id), "--approver", "ada", "--comment", "ship it")
    assert approved.returncode == 0, approved.stdout + approved.stderr  # Prefect is up: the answer is taken
    code, output = _finish(proc, log)  # bounded: MLflow's client retries are capped (Stack.env)
    assert code != 0, output[-4000:]
    flat = " ".join(output.split())
    assert f"failed while the promotion decision on {MODEL} v1 was recorded" in flat, output[-4000:]
    assert "champion did not move to v1" in flat and "Run the pipeline again once MLflow is back" in flat

    assert {s.name: s for s in stack.up(faulty.home, **faulty.ports)}["mlflow"].healthy
    # The version left behind has no decision and is not the champion (it keeps `challenger`, which marks the
    # version under review); no version is.
    left = faulty.client().get_model_version(MODEL, "1")
    assert not [key for key in left.tags if key.startswith(("approval.promotion.", "promotion."))], left.tags
    assert "champion" not in left.aliases
    with pytest.raises(MlflowException, match="champion"):
        faulty.client().get_model_version_by_alias(MODEL, "champion")


def test_a_rerun_once_mlflow_is_back_is_approved_and_promoted(faulty: Stack) -> None:
    proc, log = faulty.start_run("rerun")
    run_id = _paused_run(faulty, proc, log, SEEN)
    approved = faulty.mlops(
        "approvals", "approve", str(run_id), "--approver", "ada", "--comment", "mlflow is back"
    )
    assert approved.returncode == 0, approved.stdout + approved.stderr
    code, output = _finish(proc, log)
    assert code == 0 and "promoted to champion" in output, output[-4000:]
    client = faulty.client()
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    assert client.get_model_version(MODEL, "2").tags["approval.promotion.approver"] == "ada"


def test_server_failing_its_health_check_at_up_is_named_with_its_log_and_the_others_stop(
    tmp_path: Path,
) -> None:
    """Prefect, MLflow and the Feast UI (Feast's registry) on a Postgres that is not there: they fail, the first
    to fail is named; the Evidently UI and Redis, healthy, are stopped."""
    home = ProjectHome(tmp_path / "home")
    ports = free_stack_ports()
    redis_server_program()
    nowhere = f"postgresql://mlops:pw@127.0.0.1:{free_port()}"
    with pytest.raises(stack.StackError) as raised:
        stack.up(home, database_url=nowhere, timeout=90, **ports)
    message = str(raised.value)
    on_postgres = [name for name, service in stack.SERVICES.items() if service.postgres is not None]
    assert on_postgres == ["prefect", "mlflow", "feast-ui"]
    named = [name for name in on_postgres if f"the {name} server" in message]
    assert named and all(str(home.runtime / f"{name}.log") in message for name in named), message
    assert "the evidently server" not in message and "the redis server" not in message, message
    assert stack.status(home) == [] and not (home.runtime / "stack.json").exists()
    import psutil

    for port in ports.values():
        listening = [
            c
            for c in psutil.net_connections("tcp")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        ]
        assert listening == [], f"something still listens on {port}"
