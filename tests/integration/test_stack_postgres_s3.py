"""The stack on a real PostgreSQL and a real S3-compatible store: ``mlops up --database-url --artifacts``.

A throwaway PostgreSQL cluster (Debian's ``postgresql``: ``initdb`` into a temp folder, ``pg_ctl start``
on a free loopback port; both refuse root, so as root they run as the ``postgres`` user) and moto's
standalone S3 server stand in for a team's database and MinIO. The training pipeline then runs against
Prefect and MLflow on Postgres with MLflow's artifacts in the bucket, and the champion is loaded back
from S3 through the tracking server, verified against its registered digest; then a client of the stack
applies the CRM feature repository, whose registry lands in Postgres's ``feast`` database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import stack
from infra.home import ProjectHome

from helpers.configs import REPO, small_pipeline_config
from helpers.postgres import postgres_server
from helpers.processes import free_port, free_stack_ports, stop_process, wait_http, wait_until
from helpers.redis import redis_server_program

pytestmark = pytest.mark.integration

MLOPS = str(Path(sys.executable).parent / "mlops")
BUCKET = "mlops-artifacts"
MODEL = "pg-s3-leads"


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A real PostgreSQL server on a free loopback port with the stack's databases; yields its server URL."""
    with postgres_server() as url:
        yield url


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

    redis_server_program()  # the stack runs Debian's redis-server: skips without it, fails under CI=true
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

        _feature_registry_is_in_the_feast_database(home, endpoints, postgres, monkeypatch)
    finally:
        stack.down(home)


def _feature_registry_is_in_the_feast_database(
    home: ProjectHome, endpoints: dict[str, str], postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client of the stack (its env as `mlops` commands get it) applies the CRM repository: Feast's registry is
    written into the database `feast`, not into a file in the home, and the stack's Feast UI reads it there."""
    import json
    import urllib.request

    import psycopg2

    from infra.stack.secrets import database_secret, secret_path
    from tasks.feature_store import apply_repository, load_repository

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

    ui = stack.status(home)
    [feast_ui] = [s for s in ui if s.name == "feast-ui"]

    def listed() -> list[str]:
        with urllib.request.urlopen(
            f"{feast_ui.url}/api/v1/feature_views?project=mlops_crm", timeout=10
        ) as r:
            return sorted(view["spec"]["name"] for view in json.load(r)["featureViews"])

    wait_until(lambda: {"lead_activity", "lead_attributes"} <= set(listed()), 30, "the views in the Feast UI")
