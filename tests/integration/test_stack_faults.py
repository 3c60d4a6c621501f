"""Faults of the server stack, each on a real local stack as a team runs it (``mlops up --database-url
--artifacts``: Prefect and MLflow on a real PostgreSQL, MLflow's artifacts in a real S3-compatible store, the
Evidently UI, Redis and the Feast UI, with their credentials on), driven through the ``mlops`` CLI as a user does.

One stack and one home for the module. The pipeline runs in order: the first waits at its human
promotion gate while the Prefect server restarts, then is approved while MLflow is down (it fails and
promotes nothing); the second, once MLflow is back, is approved and promotes its version. Then what the
stack keeps where: Prefect's and MLflow's state in their Postgres databases, the artifacts as objects in the
bucket (the champion loads back from it through the tracking server, verified against its registered
digest), and Feast's registry, applied by a client of the stack, in Postgres's ``feast`` database.

The stores: a throwaway PostgreSQL cluster (Debian's ``postgresql``: ``initdb`` into a temp folder, ``pg_ctl
start`` on a free loopback port) and moto's standalone S3 server stand in for a team's database and MinIO.
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

from helpers.configs import REPO, small_pipeline_config
from helpers.flow_runs import find_paused_run
from helpers.postgres import postgres_server
from helpers.processes import free_port, free_stack_ports, stop_process, wait_http, wait_until
from helpers.redis import redis_server_program

pytestmark = pytest.mark.integration

MLOPS = str(Path(sys.executable).parent / "mlops")
MODEL = "crm-leads-faults"
BUCKET = "mlops-artifacts"
S3_VARIABLES = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
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
    database: str  # the PostgreSQL server's URL, no database name
    s3: dict  # the bucket's client and the variables only the MLflow server gets

    def up(self) -> list:
        """`mlops up` with the module's stores, as the team's operator types it again after a crash."""
        return stack.up(
            self.home, database_url=self.database, artifacts=f"s3://{BUCKET}/mlflow", **self.ports
        )

    def env(self) -> dict[str, str]:
        """A user's shell: only MLOPS_HOME, so that the CLI finds the stack, its URLs and credentials."""
        clients = {v for service in stack.SERVICES.values() for v in service.client_variables}
        homes = {"MLOPS_HOME", "MLFLOW_TRACKING_URI", "BENTOML_HOME", "PREFECT_HOME"}
        # No S3 key either: runs and the Bento reach the artifacts through the tracking server.
        env = {k: v for k, v in os.environ.items() if k not in clients | homes and k not in S3_VARIABLES}
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
def postgres() -> Iterator[str]:
    """A real PostgreSQL server on a free loopback port with the stack's databases; yields its server URL."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """moto's standalone S3 server on a free loopback port with the artifact bucket; yields the variables
    MLflow's S3 client reads, and a client of the bucket."""
    import boto3

    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(endpoint + "/moto-api/", 60, proc, log)
        env = dict(zip(S3_VARIABLES, (endpoint, "mlops-test", "mlops-test-secret", "us-east-1"), strict=True))
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        client.create_bucket(Bucket=BUCKET)
        yield {**env, "client": client}
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory, postgres: str, s3: dict) -> Iterator[Stack]:
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
    # The S3 keys too, for the MLflow server (started again by the tests) to inherit; clients never need them.
    with pytest.MonkeyPatch.context() as environment:
        for key in S3_VARIABLES:
            environment.setenv(key, s3[key])
        for key in (v for service in stack.SERVICES.values() for v in service.client_variables):
            environment.delenv(key, raising=False)  # the CLI finds the stack's URLs and credentials itself
        faulty = Stack(home, ports, config, root, postgres, s3)
        try:
            faulty.up()
            endpoints = stack.endpoints(home)
            for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                environment.setenv(key, endpoints[key])
            yield faulty
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
    restarted = {s.name: s for s in faulty.up()}  # restarts only Prefect
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

    assert {s.name: s for s in faulty.up()}["mlflow"].healthy
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
    # What the person running it read while it waited: where to approve, in the stack's UI or with the CLI.
    ui = stack.endpoints(faulty.home)["PREFECT_API_URL"].removesuffix("/api")
    assert (
        f"approve at {ui}/v2/login?redirectTo=/runs/flow-run/{run_id} (the run's menu, Resume)"
        in " ".join(output.split())
    ), output[-4000:]
    client = faulty.client()
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    assert client.get_model_version(MODEL, "2").tags["approval.promotion.approver"] == "ada"


def test_the_stack_keeps_its_state_in_postgres_and_its_artifacts_in_s3(
    faulty: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the two runs: Prefect and MLflow keep their state in Postgres, each in its own database, and the
    artifacts are objects in the bucket, from which the champion loads back, verified against its digest."""
    import pandas as pd
    import psycopg2

    from serving.registry import fetch_verified

    with psycopg2.connect(faulty.database + "/prefect") as conn, conn.cursor() as cur:
        cur.execute("SELECT state_type FROM flow_run WHERE parent_task_run_id IS NULL")
        assert {"COMPLETED", "FAILED"} <= {state for (state,) in cur.fetchall()}
    with psycopg2.connect(faulty.database + "/mlflow") as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM model_versions WHERE name = %s ORDER BY version", (MODEL,))
        assert [v for (v,) in cur.fetchall()] == [1, 2]
        cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (MODEL,))
        assert ("champion", 2) in cur.fetchall()
    assert not faulty.home.mlflow_db.exists() and not (faulty.home.prefect / "prefect.db").exists()

    listed = faulty.s3["client"].list_objects_v2(Bucket=BUCKET, Prefix="mlflow/")
    keys = [item["Key"] for item in listed.get("Contents", [])]
    assert any(key.endswith("MLmodel") for key in keys), keys[:20]
    assert not list(faulty.home.mlflow_artifacts.rglob("MLmodel"))
    # Through the tracking server, signed in (the module's environment has the credential, not the S3 keys).
    for key in S3_VARIABLES:
        monkeypatch.delenv(key)
    endpoints = stack.endpoints(faulty.home)
    scorer = fetch_verified(endpoints["MLFLOW_TRACKING_URI"], MODEL, "2")
    sample = pd.read_parquet(faulty.root / "leads.parquet").head(5)
    scores = scorer.predict_proba(sample)
    assert len(scores) == 5 and all(0.0 <= s <= 1.0 for s in scores)

    _feature_registry_is_in_the_feast_database(faulty, endpoints, monkeypatch)


def _feature_registry_is_in_the_feast_database(
    faulty: Stack, endpoints: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client of the stack (its env as `mlops` commands get it) applies the CRM repository: Feast's registry is
    written into the database `feast`, not into a file in the home, and the stack's Feast UI reads it there."""
    import json
    import urllib.request

    import psycopg2

    from infra.stack.secrets import database_secret, secret_path
    from tasks.feature_store import apply_repository, load_repository

    home, postgres = faulty.home, faulty.database
    registry_url = f"postgresql+psycopg2://{postgres.removeprefix('postgresql://')}/feast"
    assert endpoints["MLOPS_FEAST_REGISTRY"] == registry_url
    assert secret_path(home, database_secret("feast")).stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("MLOPS_HOME", str(home.root))
    for variable in ("MLOPS_FEAST_REDIS", "MLOPS_FEAST_REDIS_PASSWORD", "MLOPS_FEAST_REGISTRY"):
        monkeypatch.setenv(variable, endpoints[variable])
    applied = apply_repository.fn(load_repository.fn(REPO / "feature_repo" / "crm"))
    assert {"lead_activity", "lead_attributes"} <= set(applied)

    with psycopg2.connect(postgres + "/feast") as conn, conn.cursor() as cur:
        cur.execute("SELECT feature_view_name FROM feature_views WHERE project_id = %s", ("mlops_crm",))
        assert sorted(name for (name,) in cur.fetchall()) == ["lead_activity", "lead_attributes"]
        cur.execute("SELECT feature_service_name FROM feature_services WHERE project_id = %s", ("mlops_crm",))
        assert cur.fetchall() == [("crm_lead_scoring",)]
    assert not list(home.features.rglob("registry*.db"))

    [feast_ui] = [s for s in stack.status(home) if s.name == "feast-ui"]

    def listed() -> list[str]:
        with urllib.request.urlopen(
            f"{feast_ui.url}/api/v1/feature_views?project=mlops_crm", timeout=10
        ) as r:
            return sorted(view["spec"]["name"] for view in json.load(r)["featureViews"])

    wait_until(lambda: {"lead_activity", "lead_attributes"} <= set(listed()), 30, "the views in the Feast UI")


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
