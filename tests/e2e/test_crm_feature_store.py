"""The feature-store path as a user types it: generate a CRM source, then train from the shipped config."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from infra.home import ProjectHome

from helpers.bento import serve_bento
from helpers.cli import home_variables, mlops_in_process, shell_env
from helpers.processes import stop_process

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MLOPS = str(BIN / "mlops")
CONFIG = REPO / "configs" / "crm_feature_store.yaml"
MODEL = "crm-feature-store-e2e"


def home_variables_of(home: Path) -> dict[str, str]:
    return home_variables(ProjectHome(home))


def mlops(*args: str, home: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = shell_env(home)
    return subprocess.run([MLOPS, *args], capture_output=True, text=True, env=env, timeout=timeout)


def _small_config(path: Path, source: Path) -> Path:
    """The shipped config shrunk like tests/helpers/configs.py shrinks the default one, reading ``source``."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["data"].update(
        path=str(source / "spine.parquet"),
        expectations=str(CONFIG.with_name("crm_feature_store.expectations.json")),
    )
    raw["feature_store"].update(
        repo=str(REPO / "feature_repo" / "crm"),
        source=str(source),
        expectations=str(CONFIG.with_name("crm_features.expectations.json")),
    )
    raw.update(
        registry={"model_name": MODEL},
        model={"architecture": "mlp", "max_epochs": 3, "hidden_sizes": [32, 16]},
        split={"cv_folds": 0},
        sweep={
            "num_samples": 1,
            "max_concurrent_trials": 2,
            "grace_period": 1,
            "search_space": raw["sweep"]["search_space"],
        },
        evaluation={"n_bootstrap": 200, "importance_repeats": 1},
        promotion={"require_beat_baseline": False},
    )
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, prefect_server) -> dict:
    """A generated CRM source ending now and a champion trained from it with the shipped config, shrunk."""
    root = tmp_path_factory.mktemp("crm-e2e")
    home, source = root / "home", root / "crm"
    # In process (no interpreter start); `mlops run` builds a Bento, so it runs as its own process.
    generated = mlops_in_process(
        {"MLOPS_HOME": str(home)}, "data", "generate", "--crm", "--rows", "1500", "--out", str(source)
    )
    assert generated.returncode == 0, generated.stderr
    config = _small_config(root / "crm.yaml", source)
    run = mlops("run", "--config", str(config), home=home)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    bento = re.search(r"bento: (\S+) \(serve it", run.stdout)
    return {
        "root": root,
        "home": home,
        "source": source,
        "config": config,
        "generated": generated,
        "run": run,
        "bento": bento.group(1) if bento else None,
    }


def test_generate_then_run_ends_with_a_champion_trained_point_in_time(trained) -> None:
    home, source, generated, run = trained["home"], trained["source"], trained["generated"], trained["run"]
    assert "1,500 leads" in generated.stdout and "label spine" in generated.stdout
    assert sorted(p.name for p in source.iterdir()) == [
        "activities.parquet",
        "leads.parquet",
        "outcomes.parquet",
        "spine.parquet",
    ]
    assert f"model: {MODEL} v1" in run.stdout and "champion: v1" in run.stdout
    assert "Traceback" not in run.stderr
    # The tables the repository's views read, and the version's lineage naming the service it was trained from.
    assert (home / "features" / "crm" / "lead_activity.parquet").is_file()
    from mlflow.tracking import MlflowClient

    tags = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}").get_model_version(MODEL, "1").tags
    assert tags["feature_store.service"] == "crm_lead_scoring"
    assert tags["feature_store.views"] == "lead_activity,lead_attributes,lead_recency"
    assert tags["feature_store.retrieved_at"]


def _post(port: int, rows: list[dict], path: str = "/predict") -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        body = json.dumps({"rows": rows}, default=str)
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_materialise_serve_and_score_by_lead_id(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    """Materialise, `bentoml serve` the run's Bento, score by id: equal to the same full rows, unknown ids and
    rows without an id are 4xx naming the field, a stale view is flagged, and materialising while a loop
    scores by id fails no request."""
    home, config, bento = trained["home"], trained["config"], trained["bento"]
    assert bento, trained["run"].stdout[-2000:]
    now = datetime.now(UTC).replace(microsecond=0)

    def materialize(end: datetime):
        """`mlops features materialize` up to ``end``, in this process (on the session's Prefect server)."""
        return mlops_in_process(
            {"MLOPS_HOME": str(home)},
            "features",
            "materialize",
            "--config",
            str(config),
            "--end",
            end.isoformat(),
        )

    first = materialize(now - timedelta(days=1))
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]

    spine = pd.read_parquet(trained["source"] / "spine.parquet")
    leads = spine["lead_id"].head(24).tolist()
    env = {
        **shell_env(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("MLOPS_SERVING_TOKEN", None)
    server, port = serve_bento(bento, env, home / "bento-by-id.log", home)
    try:
        # Materialise the newest day while a client scores by id without pause: no request may fail.
        failures: list[str] = []
        answered = [0]
        stop = threading.Event()

        def score_in_a_loop() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while not stop.is_set():
                lead = leads[answered[0] % len(leads)]
                connection.request(
                    "POST",
                    "/predict",
                    body=json.dumps({"rows": [{"lead_id": lead}]}),
                    headers={"Content-Type": "application/json"},
                )
                response = connection.getresponse()
                payload = response.read()
                if response.status != 200:
                    failures.append(f"{response.status}: {payload[:300]!r}")
                answered[0] += 1
            connection.close()

        loop = threading.Thread(target=score_in_a_loop, daemon=True)
        loop.start()
        second = materialize(now)
        stop.set()
        loop.join(timeout=60)
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
        assert answered[0] > 20 and failures == [], (answered[0], failures[:3])

        # By id, as of the materialisation's end, equals the same leads' full rows from the offline store.
        for key, value in home_variables_of(home).items():
            monkeypatch.setenv(key, value)
        from tasks.feature_store import features_by_id

        full = features_by_id.fn(
            REPO / "feature_repo" / "crm",
            pd.DataFrame({"lead_id": leads}),
            "crm_lead_scoring",
            "lead_id",
            now,
        )
        full_rows = json.loads(
            full.assign(as_of=now.isoformat()).to_json(orient="records", date_format="iso")
        )
        status, by_full = _post(port, full_rows)
        assert status == 200, by_full
        status, by_id = _post(port, [{"lead_id": lead, "as_of": now.isoformat()} for lead in leads])
        assert status == 200, by_id
        scores_full = np.array([p["score"] for p in by_full["predictions"]])
        scores_id = np.array([p["score"] for p in by_id["predictions"]])
        np.testing.assert_allclose(scores_id, scores_full, rtol=0, atol=1e-6)
        # Fresh and found: the same flags as the full rows (the scorer's out-of-range ones), nothing stale or missing.
        assert [p["flags"] for p in by_id["predictions"]] == [p["flags"] for p in by_full["predictions"]]
        assert not [
            f for p in by_id["predictions"] for f in p["flags"] if f.startswith(("stale:", "missing:"))
        ]

        # Unknown ids, rows with neither an id nor the features: 4xx naming the field; nothing scored.
        status, unknown = _post(port, [{"lead_id": leads[0]}, {"lead_id": "L-does-not-exist"}])
        assert status == 404 and unknown["detail"][0]["loc"] == ["rows", 1, "lead_id"], unknown
        assert "L-does-not-exist" in unknown["detail"][0]["msg"]
        status, anonymous = _post(port, [{"company_size": 10}])
        assert status == 400 and anonymous["detail"][0]["loc"] == ["rows", 0, "lead_id"], anonymous

        # Three days later the daily activity view (ttl 2 days) is stale: flagged, scored, logged, exported.
        later = (now + timedelta(days=3)).isoformat()
        status, stale = _post(port, [{"lead_id": leads[0], "as_of": later}])
        assert status == 200 and stale["predictions"][0]["flags"] == ["stale:lead_activity"], stale
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        age = 'mlops_feature_age_seconds{model_name="' + MODEL + '",view="lead_activity"}'
        assert age in metrics
        assert 'state="stale"' in metrics
    finally:
        stop_process(server)
    from monitoring.prediction_log import log_files, read_records

    records = [r for r in read_records(log_files(home / "predictions")) if r.feature_ages]
    assert records and {"lead_activity", "lead_attributes"} <= set(records[-1].feature_ages)
    assert records[-1].flags == ["stale:lead_activity"]
    assert set(records[-1].features) >= {"touches_30d", "days_since_last_touch", "region"}


def _training_frame(
    environ: dict[str, str], spine: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> pd.DataFrame:
    """The point-in-time training frame of ``spine`` as a process with ``environ``'s feature-store variables
    reads it, times in UTC (Postgres hands back naive UTC times where Parquet gives aware ones)."""
    from models.features.store import REDIS_PASSWORD_VARIABLE, REDIS_VARIABLE, REGISTRY_VARIABLE
    from tasks.feature_store import historical_frame

    with monkeypatch.context() as patch:
        for variable in ("MLOPS_HOME", REDIS_VARIABLE, REDIS_PASSWORD_VARIABLE, REGISTRY_VARIABLE):
            if variable in environ:
                patch.setenv(variable, environ[variable])
            else:
                patch.delenv(variable, raising=False)
        frame = historical_frame.fn(REPO / "feature_repo" / "crm", spine, "crm_lead_scoring", "as_of").data
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    return frame


def test_on_redis_and_postgres_a_store_that_goes_away_is_a_503_and_the_service_recovers(
    trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stack's stores, real and started here: Feast's registry and offline tables on PostgreSQL, the
    online store on Redis. The training frame equals the embedded stores'. Materialise, serve the run's Bento,
    score by id; Redis stopped: a 503 naming the store with Retry-After, never a score, and every 200 answered
    before has its prediction-log line; Redis started again: the same service scores again."""
    from models.features.store import REDIS_PASSWORD_VARIABLE, REDIS_VARIABLE, REGISTRY_VARIABLE
    from monitoring.prediction_log import log_files, read_records

    from helpers.postgres import postgres_server
    from helpers.redis import RedisServer

    home = tmp_path / "home"  # the stack's stores are their own: a home of their own, the run's Bento
    redis = RedisServer(tmp_path / "redis.log", folder=tmp_path / "redis")
    with postgres_server() as database:
        redis.start()
        try:
            stack = {
                REDIS_VARIABLE: redis.address,
                REDIS_PASSWORD_VARIABLE: redis.password,
                REGISTRY_VARIABLE: database.replace("postgresql://", "postgresql+psycopg2://") + "/feast",
            }
            env = {**shell_env(home), **stack}
            # In process, on the session's Prefect server (no interpreter start, no temporary server).
            materialized = mlops_in_process(
                {"MLOPS_HOME": str(home), **stack},
                "features",
                "materialize",
                "--config",
                str(trained["config"]),
            )
            assert materialized.returncode == 0, materialized.stdout[-2000:] + materialized.stderr[-2000:]
            assert not (home / "features" / "crm" / "online.db").exists()  # written to Redis, not SQLite
            # The registry and the offline tables are on Postgres: nothing of the feature store in the home.
            assert not (home / "features" / "crm" / "registry.db").exists()
            assert not (home / "features" / "crm" / "lead_activity.parquet").exists()
            assert "table crm_lead_activity of postgresql" in materialized.stdout, materialized.stdout[-2000:]

            # Point-in-time joins computed by Postgres give the frame the Parquet files give (the run's home).
            spine = pd.read_parquet(trained["source"] / "spine.parquet")
            on_postgres = _training_frame({**stack, "MLOPS_HOME": str(home)}, spine, monkeypatch)
            embedded = _training_frame({"MLOPS_HOME": str(trained["home"])}, spine, monkeypatch)
            assert sorted(on_postgres.columns) == sorted(embedded.columns)  # each store orders them its way
            pd.testing.assert_frame_equal(on_postgres[embedded.columns], embedded, check_dtype=False)

            leads = spine["lead_id"].head(8).tolist()
            serving_env = {
                **env,
                "BENTOML_HOME": str(trained["home"] / "bentoml"),
                "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            }
            serving_env.pop("MLOPS_SERVING_TOKEN", None)
            server, port = serve_bento(trained["bento"], serving_env, home / "bento-redis.log", home)
            try:
                answered: list[str] = []
                for n, lead in enumerate(leads):
                    status, body = _post(port, [{"lead_id": lead, "request_id": f"before-{n}"}])
                    assert status == 200, body
                    assert not [f for f in body["predictions"][0]["flags"] if f.startswith("missing:")], body
                    answered.append(f"before-{n}")

                # An id Redis holds nothing for is a 404 naming it, as on SQLite (Feast's Redis store answers
                # an unknown key with empty values at the epoch, not with "not found").
                status, unknown = _post(port, [{"lead_id": "L-not-in-redis"}])
                assert status == 404 and unknown["detail"][0]["loc"] == ["rows", 0, "lead_id"], unknown

                redis.stop()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request(
                    "POST",
                    "/predict",
                    body=json.dumps({"rows": [{"lead_id": leads[0], "request_id": "while-down"}]}),
                    headers={"Content-Type": "application/json"},
                )
                response = connection.getresponse()
                down = json.loads(response.read())
                connection.close()
                assert response.status == 503, down
                assert int(response.getheader("Retry-After")) >= 1
                assert f"redis at {redis.address}" in down["error"] and "predictions" not in down, down
                assert redis.password not in json.dumps(down)

                redis.start()  # the same port; its data saved at shutdown is loaded back
                status, body = _post(port, [{"lead_id": leads[0], "request_id": "after"}])
                assert status == 200, body
                answered.append("after")
            finally:
                stop_process(server)
        finally:
            redis.stop()
    logged = {r.request_id for r in read_records(log_files(home / "predictions"))}
    assert set(answered) <= logged and "while-down" not in logged, sorted(logged)


def test_fresh_home_says_how_to_make_the_source(tmp_path: Path) -> None:
    run = mlops("run", "--config", str(CONFIG), home=tmp_path / "home", timeout=120)
    assert run.returncode == 2
    assert "CRM source not found" in run.stderr and "`mlops data generate --crm`" in run.stderr
    assert "Traceback" not in run.stderr
