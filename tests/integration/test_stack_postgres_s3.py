"""The stack on a real PostgreSQL and a real S3-compatible store: ``mlops up --database-url --artifacts``.

A throwaway PostgreSQL cluster (Debian's ``postgresql``: ``initdb`` into a temp folder, ``pg_ctl start``
on a free loopback port; both refuse root, so as root they run as the ``postgres`` user) and moto's
standalone S3 server stand in for a team's database and MinIO. The training pipeline then runs against
Prefect and MLflow on Postgres with MLflow's artifacts in the bucket, and the champion is loaded back
from S3 through the tracking server, verified against its registered digest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import stack
from infra.home import ProjectHome

from helpers.configs import REPO, small_pipeline_config
from helpers.processes import free_port, free_stack_ports, stop_process, wait_http

pytestmark = pytest.mark.integration

MLOPS = str(Path(sys.executable).parent / "mlops")
BUCKET = "mlops-artifacts"
MODEL = "pg-s3-leads"
PASSWORD = "stack-test-pw"


def _postgres_tool(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if found is None:
        reason = f"PostgreSQL's {name} is not installed (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; .ci/run installs it before `make test`")
        pytest.skip(reason)
    return str(found)


def _as_postgres_user(argv: list[str]) -> list[str]:
    """``initdb`` and ``pg_ctl`` refuse to run as root: run them as Debian's ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A real PostgreSQL server on a free loopback port with the stack's databases; yields its server URL."""
    initdb, pg_ctl = _postgres_tool("initdb"), _postgres_tool("pg_ctl")
    psql = _postgres_tool("psql")
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    data, pwfile = root / "data", root / "pw"
    pwfile.write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
    port = free_port()
    init = subprocess.run(
        _as_postgres_user(
            [initdb, "-D", str(data), "-U", "mlops", "--pwfile", str(pwfile), "-A", "scram-sha-256"]
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root}"
    started = subprocess.run(
        _as_postgres_user(
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "postgres.log"), "-w", "start"]
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        # What docker-compose.yml does: POSTGRES_DB=prefect, then infra/postgres-init.sql.
        # The script through -f, as the image's entrypoint runs it: each statement on its own (CREATE DATABASE
        # cannot run inside the one transaction that -c makes of several).
        for source in (["-c", "CREATE DATABASE prefect;"], ["-f", str(REPO / "infra" / "postgres-init.sql")]):
            created = subprocess.run(
                [
                    psql,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "mlops",
                    "-d",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    *source,
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert created.returncode == 0, created.stderr
        yield f"postgresql://mlops:{PASSWORD}@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres_user([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's standalone S3 server on a free loopback port with the artifact bucket; yields the
    variables MLflow's S3 client reads."""
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
        env = {
            "MLFLOW_S3_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "mlops-test",
            "AWS_SECRET_ACCESS_KEY": "mlops-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
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


def test_pipeline_runs_on_postgres_with_artifacts_in_s3(
    postgres: str, s3: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leads_csv: Path
) -> None:
    import psycopg2

    from serving.registry import fetch_verified

    home = ProjectHome(tmp_path / "home")
    for key in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, s3[key])  # the MLflow server inherits them; clients never need them
    for key in (v for service in stack.SERVICES.values() for v in service.client_variables):
        monkeypatch.delenv(key, raising=False)  # the CLI finds the stack's URLs and credentials itself
    stack.up(home, database_url=postgres, artifacts=f"s3://{BUCKET}/mlflow", **free_stack_ports())
    try:
        endpoints = stack.endpoints(home)
        config = small_pipeline_config(tmp_path / "pg.yaml", leads_csv, model_name=MODEL, trials=1)
        # The CLI finds the stack through the home's state file; no client URL and no S3 key is passed.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_S3"))}
        env["MLOPS_HOME"] = str(home.root)
        run = subprocess.run(
            [MLOPS, "run", "--config", str(config)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0 and "champion: v1" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]

        # Prefect and MLflow keep their state in Postgres, each in its own database.
        with psycopg2.connect(postgres + "/prefect") as conn, conn.cursor() as cur:
            cur.execute("SELECT state_type FROM flow_run WHERE parent_task_run_id IS NULL")
            assert ("COMPLETED",) in cur.fetchall()
        with psycopg2.connect(postgres + "/mlflow") as conn, conn.cursor() as cur:
            cur.execute("SELECT version, source FROM model_versions WHERE name = %s", (MODEL,))
            versions = cur.fetchall()
            cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (MODEL,))
            assert ("champion", 1) in cur.fetchall()
        assert [v for v, _ in versions] == [1]
        assert not home.mlflow_db.exists() and not (home.prefect / "prefect.db").exists()

        # The artifacts are objects in the bucket, not files in the home.
        listed = s3["client"].list_objects_v2(Bucket=BUCKET, Prefix="mlflow/")
        keys = [item["Key"] for item in listed.get("Contents", [])]
        assert any(key.endswith("MLmodel") for key in keys), keys[:20]
        assert not list(home.mlflow_artifacts.rglob("MLmodel"))

        # The champion loads back from S3 (through the tracking server, signed in) and passes its digest check.
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", endpoints["MLFLOW_TRACKING_USERNAME"])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", endpoints["MLFLOW_TRACKING_PASSWORD"])
        scorer = fetch_verified(endpoints["MLFLOW_TRACKING_URI"], MODEL, "1")
        import pandas as pd

        sample = pd.read_csv(leads_csv).head(5)
        scores = scorer.predict_proba(sample)
        assert len(scores) == 5 and all(0.0 <= s <= 1.0 for s in scores)
    finally:
        stack.down(home)
