"""The training pipeline end to end on the embedded stack: real Prefect server, SQLite MLflow
under a temporary project home, a local Ray runtime, a real Bento built and served."""

from __future__ import annotations

import contextvars
import json
import math
import os
import sys
import threading
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from flows.cli import app
from flows.config import load_config
from infra.home import ProjectHome
from models.data.io import read_table, write_table
from models.data.synthetic import generate_leads
from tasks.registry import load_by_reference

from helpers.cli import home_variables
from helpers.configs import small_pipeline_config
from helpers.flow_runs import find_paused_run
from helpers.processes import stop_process

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODEL = "crm-leads-test"
GATED_MODEL = "crm-leads-gated"  # the human-gate test's own model
RETRAINED_MODEL = (
    "crm-leads-retrained"  # the retrain test's own model: MODEL's version numbers stay as they are
)
CONTEXTS = {"train": "training", "validation": "validation", "test": "test"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, prefect_server: str):
    """A project home, a small dataset and a shrunken copy of the default config."""
    root = tmp_path_factory.mktemp("pipeline")
    home = ProjectHome(root / "home")
    # The home's variables for the module, then each as it was (a previous value put back, or removed).
    with pytest.MonkeyPatch.context() as environment:
        for key, value in home_variables(home).items():
            environment.setenv(key, value)
        data = write_table(generate_leads(4000, seed=5), root / "leads.parquet")
        config_path = small_pipeline_config(root / "pipeline.yaml", data, model_name=MODEL)
        yield {"home": home, "config_path": config_path, "data": data, "root": root}


def _run(stack, data: Path | None = None):
    from flows.training import training_pipeline

    return training_pipeline(str(stack["config_path"]), str(data) if data else None, return_state=True)


@pytest.fixture(scope="module")
def first_run(stack, ray_runtime):
    state = _run(stack)
    assert state.is_completed(), state.message
    return state.result()


def test_first_run_registers_and_promotes(first_run, stack) -> None:
    assert first_run.version == "1"
    assert first_run.promoted and "first model" in first_run.reason
    assert first_run.champion_version == "1"
    assert 0.5 < first_run.test_auc.low <= first_run.test_auc.value <= first_run.test_auc.high
    client = MlflowClient(stack["home"].tracking_uri)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    tags = client.get_model_version(MODEL, "1").tags
    for key in (
        "data.fingerprint",
        "config.hash",
        "code.version",
        "prefect.flow_run_id",
        "sweep.best_trial_id",
        "data.rows_train",
        "promotion.decision",
        "promotion.reason",
    ):
        assert tags.get(key), f"lineage/decision tag {key} missing"
    assert tags["promotion.decision"] == "approved"
    assert tags["actual.sweep_resumed"] == "false"
    # The held-out scores' quantiles the service exports for the score-shift alert.
    quantiles = json.loads(tags["monitoring.score_quantiles"])
    assert list(quantiles) == ["0.1", "0.5", "0.9"] and 0 <= quantiles["0.1"] <= quantiles["0.9"] <= 1
    # The recorded error is the one the recorded estimate and actual give. The tags round both to
    # 0.05 s and the error to 0.0005: the tolerance is what that rounding can move the ratio by.
    estimated, actual = float(tags["estimate.sweep_seconds"]), float(tags["actual.sweep_seconds"])
    rounding = 0.05 * (1 / actual + estimated / actual**2) + 0.0005
    assert float(tags["actual.sweep_seconds_error"]) == pytest.approx(
        (estimated - actual) / actual, abs=rounding
    )
    # Every phase of the budget gate's plan is set against the run: measured, and scored where it was estimated.
    phases = {row.name: row for row in first_run.phases}
    assert list(phases) == [
        "validation",
        "split, features, baselines",
        "estimate",
        "budget approval",
        "sweep",
        "cross-validation, final model",
        "evaluation",
        "registration",
        "promotion approval",
        "packaging",
    ]
    assert all(row.actual is not None and row.actual >= 0 for row in phases.values())
    metrics = client.get_run(first_run.run_id).data.metrics
    for key in ("sweep", "evaluation", "registration", "packaging"):
        assert metrics[f"phase/{key}/error"] == pytest.approx(phases[key].error)
    low, high = metrics["estimate/sweep_seconds_p05"], metrics["estimate/sweep_seconds_p95"]
    assert low <= metrics["estimate/sweep_seconds"] <= high


def test_no_mlflow_run_left_running(first_run, stack) -> None:
    client = MlflowClient(stack["home"].tracking_uri)
    experiment = client.get_experiment_by_name(MODEL)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 + first_run.trials, "one parent run plus one nested run per trial"
    assert {r.info.status for r in runs} <= {"FINISHED", "FAILED"}
    assert all(
        r.data.tags.get("mlflow.parentRunId") == first_run.run_id
        for r in runs
        if r.info.run_id != first_run.run_id
    )
    parent = client.get_run(first_run.run_id)
    assert "test/roc_auc" in parent.data.metrics and "test/roc_auc_low" in parent.data.metrics
    artifacts = {a.path for a in client.list_artifacts(first_run.run_id)}
    assert {"plots", "evaluation.json", "config.json", "validation.json"} <= artifacts
    trial = next(r for r in runs if r.info.run_id != first_run.run_id)
    assert len(client.get_metric_history(trial.info.run_id, "val/roc_auc")) >= 1


def _dataset_inputs(client: MlflowClient, run_id: str) -> dict:
    """The run's dataset inputs by their context (training, validation, test)."""
    return {
        tag.value: found.dataset
        for found in client.get_run(run_id).inputs.dataset_inputs
        for tag in found.tags
        if tag.key == "mlflow.data.context"
    }


def test_first_run_logs_its_datasets(first_run, stack, tmp_path) -> None:
    """The train, validation and test rows are the run's artifacts and its dataset inputs (digest, source,
    schema), and the version's lineage tags name their digests."""
    client = MlflowClient(stack["home"].tracking_uri)
    inputs = _dataset_inputs(client, first_run.run_id)
    assert set(inputs) == set(CONTEXTS.values())
    tags = client.get_model_version(MODEL, first_run.version).tags
    rows = {
        "train": tags["data.rows_train"],
        "validation": tags["data.rows_val"],
        "test": tags["data.rows_test"],
    }
    folder = mlflow.artifacts.download_artifacts(
        run_id=first_run.run_id,
        artifact_path="datasets",
        dst_path=str(tmp_path),
        tracking_uri=client.tracking_uri,
    )
    ids = []
    for part, context in CONTEXTS.items():
        dataset = inputs[context]
        assert dataset.name == part and dataset.digest == tags[f"dataset.{part}.digest"]
        source = json.loads(dataset.source)["uri"]
        assert source.endswith(f"{first_run.run_id}/artifacts/datasets/{part}.parquet"), source
        assert dataset.source_type == "local"
        columns = {c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]}
        assert {"lead_id", "converted", "region"} <= columns
        assert json.loads(dataset.profile)["num_rows"] == int(rows[part])
        stored = read_table(Path(folder) / f"{part}.parquet")
        assert len(stored) == int(rows[part]) and tags[f"dataset.{part}.fingerprint"]
        ids += stored["lead_id"].tolist()
    assert sorted(ids) == sorted(read_table(stack["data"])["lead_id"]), (
        "the parts are disjoint and cover the data"
    )
    assert tags["split.strategy"] == "random" and "retrain.source" not in tags


def test_retraining_a_version_reuses_its_rows(first_run, stack, tmp_path) -> None:
    """`--retrain-version`: a new run on the rows the version logged, not split again: the same digests."""
    from flows.training import training_pipeline

    config = small_pipeline_config(
        tmp_path / "retrain.yaml",
        stack["data"],
        model_name=RETRAINED_MODEL,
        trials=1,
        # The gate rejects it: nothing here is about promotion, and no Bento is built.
        promotion={"require_beat_baseline": False, "min_auc": 1.0},
    )
    state = training_pipeline(str(config), retrain_version=f"{MODEL}/{first_run.version}", return_state=True)
    assert state.is_completed(), state.message
    retrained = state.result()
    client = MlflowClient(stack["home"].tracking_uri)
    before = client.get_model_version(MODEL, first_run.version).tags
    after = client.get_model_version(RETRAINED_MODEL, retrained.version).tags
    same = [f"dataset.{part}.{kind}" for part in CONTEXTS for kind in ("digest", "fingerprint")]
    for key in [*same, "data.rows_train", "data.rows_val", "data.rows_test", "split.strategy"]:
        assert after[key] == before[key], key
    assert after["retrain.source"] == f"{MODEL}/{first_run.version}"
    old, new = _dataset_inputs(client, first_run.run_id), _dataset_inputs(client, retrained.run_id)
    assert {c: d.digest for c, d in new.items()} == {c: d.digest for c, d in old.items()}
    assert retrained.run_id in new["training"].source, "the retrain logs the rows again, as its own artifacts"


def test_retraining_what_was_never_logged_fails_clearly(first_run, stack, tmp_path) -> None:
    """A version that does not exist, or one without logged datasets: exit 2 with the reason, nothing trained."""
    from models.errors import UserInputError
    from tasks.registry import logged_split

    uri = stack["home"].tracking_uri
    with pytest.raises(UserInputError, match="not found in the registry"):
        logged_split.fn(uri, f"{MODEL}/99")
    with pytest.raises(UserInputError, match="expected NAME/VERSION"):
        logged_split.fn(uri, "no version")
    client = MlflowClient(uri)
    bare = client.create_run(client.create_experiment("no-datasets"), run_name="no-datasets")
    client.set_terminated(bare.info.run_id)
    client.create_registered_model("no-datasets")
    client.create_model_version("no-datasets", f"runs:/{bare.info.run_id}/model", run_id=bare.info.run_id)
    with pytest.raises(UserInputError, match="has no logged datasets"):
        logged_split.fn(uri, "no-datasets/1")

    versions = len(client.search_model_versions(f"name='{MODEL}'"))
    config = ["run", "--config", str(stack["config_path"])]
    result = CliRunner().invoke(app, [*config, "--retrain-version", f"{MODEL}/99"])
    assert result.exit_code == 2 and "not found in the registry" in result.output, result.output
    both = CliRunner().invoke(app, [*config, "--data", str(stack["data"]), "--retrain-version", f"{MODEL}/1"])
    assert both.exit_code == 2 and "exclude each other" in both.output, both.output
    assert len(client.search_model_versions(f"name='{MODEL}'")) == versions


def test_second_run_decides_against_champion(first_run, stack) -> None:
    state = _run(stack)
    second = state.result()
    assert second.version == "2"
    assert second.resumed_sweep, "the finished sweep of the same data and config is found on disk"
    client = MlflowClient(stack["home"].tracking_uri)
    tags = client.get_model_version(MODEL, "2").tags
    assert "champion v1" in second.reason or "champion v1" in tags["promotion.reason"]
    # Restored from disk, the sweep took no comparable wall time: no estimate error is made up for it.
    assert tags["actual.sweep_resumed"] == "true" and tags["actual.sweep_seconds_error"] == "n/a"
    assert math.isnan(second.estimate_errors.sweep_seconds_error)
    # The same sweep restored from disk gives the same model: no significant gain over the champion.
    assert not second.promoted, second.reason
    assert tags["promotion.decision"] == "rejected"
    assert second.champion_version == "1"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(MODEL, "challenger").version) == "2"


def _reject_when_paused(config_path: str, errors: list[BaseException], timeout: float = 180) -> None:
    """What an approver does: find the training run of ``config_path`` waiting at its gate, reject it."""
    from prefect.flow_runs import resume_flow_run

    try:
        run = find_paused_run(
            flow_name="training-pipeline",
            parameters={"config_path": config_path},
            timeout=timeout,
            what=f"a paused training run for {config_path}",
        )
        resume_flow_run(run.id, run_input={"approved": False, "approver": "bob", "comment": "not this week"})
    except BaseException as exc:  # reported by the test, not lost in the thread
        errors.append(exc)


@pytest.fixture
def gated_champion(first_run, stack) -> str:
    """A champion of its own for the gated test's model: the first run's champion copied in the registry,
    so that the test neither depends on nor changes the version numbers of MODEL."""
    client = MlflowClient(stack["home"].tracking_uri)
    copied = client.copy_model_version(f"models:/{MODEL}/{first_run.version}", GATED_MODEL)
    client.set_registered_model_alias(GATED_MODEL, "champion", copied.version)
    return str(copied.version)


def test_a_person_rejecting_at_the_gate_keeps_the_champion(gated_champion: str, stack, tmp_path) -> None:
    """A human promotion gate: the run waits, a person rejects it through the resume form's input, the
    candidate is registered and recorded as rejected, and the champion does not move."""
    from flows.training import training_pipeline

    config = small_pipeline_config(
        tmp_path / "gated.yaml",
        stack["data"],
        model_name=GATED_MODEL,
        trials=1,
        approval={"promotion": {"mode": "human"}, "timeout_seconds": 240},
    )
    errors: list[BaseException] = []
    # The thread runs in a copy of this context: it holds the settings that point at the test server.
    context = contextvars.copy_context()
    approver = threading.Thread(
        target=context.run, args=(_reject_when_paused, str(config), errors), daemon=True
    )
    approver.start()
    state = training_pipeline(str(config), return_state=True)
    approver.join(timeout=30)
    assert not errors, errors
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary.version == "2" and not summary.promoted and summary.bento_tag is None

    client = MlflowClient(stack["home"].tracking_uri)
    tags = client.get_model_version(GATED_MODEL, summary.version).tags
    assert tags["promotion.decision"] == "rejected"
    assert tags["approval.promotion.outcome"] == "rejected" and tags["approval.promotion.approver"] == "bob"
    assert tags["approval.promotion.decided_by"] == "human"
    assert tags["approval.promotion.comment"] == "not this week"
    champion = str(client.get_model_version_by_alias(GATED_MODEL, "champion").version)
    assert champion == gated_champion, "a rejected candidate never becomes champion"


def test_invalid_data_stops_before_training(first_run, stack) -> None:
    client = MlflowClient(stack["home"].tracking_uri)
    before = len(client.search_model_versions(f"name='{MODEL}'"))
    bad = read_table(stack["data"]).drop(columns=["region"])
    path = write_table(bad, stack["root"] / "bad.parquet")
    state = _run(stack, data=path)
    assert state.is_failed()
    assert "region" in str(state.result(raise_on_failure=False))
    assert len(client.search_model_versions(f"name='{MODEL}'")) == before


def _batch_records(stack) -> list:
    """The prediction log's records of variant batch, oldest first."""
    from monitoring.prediction_log import log_files, read_records

    return [r for r in read_records(log_files(stack["home"].prediction_logs)) if r.variant == "batch"]


def test_predict_cli_matches_registry_and_bento(first_run, stack, tmp_path) -> None:
    rows = read_table(stack["data"]).head(20)
    rows.loc[0, "deal_size"] = np.nan
    rows.loc[1, "region"] = "atlantis"  # unseen category: the unknown bucket
    input_path = write_table(rows, tmp_path / "rows.csv")
    output_path = tmp_path / "scored.csv"
    logged_before = _batch_records(stack)
    result = CliRunner().invoke(
        app,
        [
            "predict",
            *("--model", f"{MODEL}@champion", "--input", str(input_path), "--output", str(output_path)),
            *("--id-column", "lead_id"),
        ],
    )
    assert result.exit_code == 0, result.output
    cli_scores = pd.read_csv(output_path)["score"].to_numpy()
    # The same path as `mlops batch`: every row logged as variant batch, with the version the alias named.
    logged = [r for r in _batch_records(stack) if r.request_id not in {b.request_id for b in logged_before}]
    assert {(r.model_name, r.model_version) for r in logged} == {(MODEL, first_run.version)}
    assert [r.entity_id for r in logged] == rows["lead_id"].astype(str).tolist()
    np.testing.assert_allclose([r.score for r in logged], cli_scores, rtol=0, atol=1e-12)

    mlflow.set_tracking_uri(stack["home"].tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    scorer = loaded.unwrap_python_model().scorer
    registry_scores = loaded.predict(scorer.transform.canonical_inputs(read_table(input_path)))
    np.testing.assert_allclose(cli_scores, registry_scores, rtol=0, atol=1e-12)

    missing = write_table(rows.drop(columns=["plan"]), tmp_path / "missing.csv")
    result = CliRunner().invoke(
        app,
        ["predict", "--model", f"{MODEL}@champion", "--input", str(missing), "--output", str(output_path)],
    )
    assert result.exit_code == 2 and "plan" in result.output

    bento_scores = served_scores(first_run.bento_tag, rows.head(3), home=stack["home"])
    np.testing.assert_allclose(bento_scores, cli_scores[:3], rtol=0, atol=1e-6)


def test_batch_scoring_flow_scores_new_files_and_logs_them(first_run, stack, tmp_path) -> None:
    """`mlops batch`: each new file of a folder scored beside itself by the champion, every row in the
    prediction log as variant `batch`; outputs and already-scored files are not scored again."""
    folder = tmp_path / "incoming"
    rows = read_table(stack["data"]).head(30)
    write_table(rows.head(20), folder / "monday.csv")
    write_table(rows.tail(10), folder / "tuesday.parquet")
    before = {r.request_id for r in _batch_records(stack)}
    result = CliRunner().invoke(app, ["batch", "--config", str(stack["config_path"]), "--input", str(folder)])
    assert result.exit_code == 0, result.output
    assert "scored 20 rows" in result.output and "scored 10 rows" in result.output
    monday = pd.read_csv(folder / "monday.scored.csv")
    scorer = load_by_reference(stack["home"].tracking_uri, f"{MODEL}@champion").scorer
    np.testing.assert_allclose(monday["score"], scorer.predict_proba(rows.head(20)), rtol=0, atol=1e-12)
    batch = [r for r in _batch_records(stack) if r.request_id not in before]
    assert len(batch) == 30 and {(r.model_name, r.model_version) for r in batch} == {
        (MODEL, first_run.version)
    }
    assert sorted(r.entity_id for r in batch) == sorted(rows["lead_id"].astype(str))
    again = CliRunner().invoke(app, ["batch", "--config", str(stack["config_path"]), "--input", str(folder)])
    assert again.exit_code == 0 and "no new file to score" in again.output, again.output


def served_scores(bento_tag: str, rows: pd.DataFrame, *, home: ProjectHome) -> np.ndarray:
    """Serve a built Bento with `bentoml serve` on a free loopback port, score ``rows``, stop it."""
    import json
    import urllib.request

    from helpers.bento import serve_bento

    env = {
        **os.environ,
        "BENTOML_HOME": str(home.bentoml),
        "MLOPS_HOME": str(home.root),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("MLOPS_SERVING_TOKEN", None)
    env.pop("MLOPS_BENTO_MODEL", None)
    proc, port = serve_bento(bento_tag, env, home.root / "bento-serve.log", home.root, timeout=120)
    try:
        records = json.loads(rows.to_json(orient="records"))
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            data=json.dumps({"rows": records}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        return np.array([p["score"] for p in body["predictions"]])
    finally:
        stop_process(proc)


def test_in_memory_registry_and_loaded_scorer_agree(stack, tmp_path) -> None:
    """The scorer in memory, the pyfunc from the registry and the scorer reloaded from MLflow give the same
    scores: the transform travels inside the logged model."""
    from models.data.split import binary_labels
    from models.features.config import FeatureConfig
    from models.features.transform import FeatureTransform
    from models.nn.config import ModelConfig
    from models.training.fit import train_model
    from tasks.registry import load_scorer, register_challenger
    from tasks.tracking import TrackingTarget, end_run, log_model, start_parent_run

    df = generate_leads(1500, seed=8)
    config = load_config(stack["config_path"], home=stack["home"].root)
    transform = FeatureTransform.fit(df, FeatureConfig(**config.features.model_dump()))
    y = binary_labels(df, "converted", 1)
    encoded = transform.transform(df)
    scorer = train_model(
        encoded, y, encoded, y, transform=transform, config=ModelConfig(max_epochs=1), seed=1
    ).scorer

    target = TrackingTarget.for_store(stack["home"].tracking_uri, "parity", stack["home"].mlflow_artifacts)
    run_id = start_parent_run.fn(target, "parity", {}, {}).run_id
    uri = log_model.fn(target, run_id, scorer, df.head(5))
    end_run.fn(target, run_id)
    version = register_challenger.fn(target, "parity-model", uri, run_id, {})

    rows = generate_leads(200, seed=9)
    rows.loc[:10, "days_since_last_contact"] = np.nan
    in_memory = scorer.predict_proba(rows)
    reloaded = load_scorer(stack["home"].tracking_uri, version.uri).predict_proba(rows)
    mlflow.set_tracking_uri(stack["home"].tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(version.uri)
    from_registry = pyfunc.predict(scorer.transform.canonical_inputs(rows))
    # The same weights through the same float32 network: equal up to float32 rounding of the forward
    # (1e-6 on a probability), which a kernel chosen for another batch shape may change; a different model
    # or transform would differ by orders of magnitude more.
    np.testing.assert_allclose(reloaded, in_memory, rtol=0, atol=1e-6)
    np.testing.assert_allclose(from_registry, in_memory, rtol=0, atol=1e-6)
