"""Production history on a real MLflow registry (SQLite store): a promotion by a person, one by policy, an A/B
start and stop and a rollback are each recorded once, in order, with kind and actor; `mlops history` lists them;
a model whose moves predate the record gets them rebuilt from its versions' tags, marked as such."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from infra.home import ProjectHome
from models.governance.history import AB_START, AB_STOP, PROMOTION, ROLLBACK, served
from tasks.registry import RegisteredVersion, decide, read_history, roll_back, start_ab, stop_ab
from tasks.tracking import TrackingTarget

from helpers.cli import mlops_in_process

pytestmark = pytest.mark.integration
MODEL = "crm-history"


def _versions(client: MlflowClient, name: str, count: int) -> list[RegisteredVersion]:
    """``count`` versions of ``name``, each from a run of its own; artifacts under the store's folder (the
    default experiment's would be ./mlruns in the working directory)."""
    client.create_registered_model(name)
    store = Path(client.tracking_uri.removeprefix("sqlite:///")).parent
    experiment = client.create_experiment(f"{name}-runs", artifact_location=str(store / "artifacts"))
    out = []
    for _ in range(count):
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_text("weights", "model/weights.txt")
        version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        out.append(RegisteredVersion(name, str(version.version), run.info.run_id))
    return out


def _decision(approver: str | None, at: str, reason: str) -> dict[str, str]:
    return {
        "promotion.decision": "approved",
        "promotion.decided_by": "human" if approver else "policy",
        "promotion.reason": reason,
        "approval.promotion.outcome": "approved",
        "approval.promotion.decided_by": "human" if approver else "policy",
        "approval.promotion.decided_at": at,
        "approval.promotion.approver": approver or "",
    }


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_server: str):
    home = ProjectHome(tmp_path / "home")
    home.root.mkdir(parents=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", home.tracking_uri)
    mlflow.set_tracking_uri(home.tracking_uri)
    target = TrackingTarget.for_store(home.tracking_uri, MODEL, home.mlflow_artifacts)
    yield home, target, MlflowClient(home.tracking_uri)
    mlflow.set_tracking_uri(None)


def test_every_move_is_recorded_once_in_order_and_listed(registry) -> None:
    home, target, client = registry
    v1, v2, v3 = _versions(client, MODEL, 3)
    decide(target, v1, _decision("ada", "2026-12-06T10:00:00+00:00", "first model"), approved=True)
    decide(target, v2, _decision(None, "2026-12-06T11:00:00+00:00", "beats the champion"), approved=True)
    start_ab(target, MODEL, "3", by="bob", reason="try the wider net", at="2026-12-06T12:00:00+00:00")
    stop_ab(target, MODEL, by="bob", reason="no lift", at="2026-12-06T13:00:00+00:00")
    roll_back.fn(target, MODEL, None, "conversions dropped", "ops", "2026-12-06T14:00:00+00:00")
    # A replayed promotion of the version already champion moves nothing and records nothing.
    decide(target, v1, _decision("ada", "2026-12-06T15:00:00+00:00", "replayed"), approved=True)

    moves = read_history(target, MODEL)
    assert [(m.kind, m.alias, m.from_version, m.to_version, m.by) for m in moves] == [
        (PROMOTION, "champion", None, "1", "ada"),
        (PROMOTION, "champion", "1", "2", "policy (policy)"),
        (AB_START, "candidate", None, "3", "bob"),
        (AB_STOP, "candidate", "3", None, "bob"),
        (ROLLBACK, "champion", "2", "1", "ops"),
    ]
    assert [m.reason for m in moves][1:] == [
        "beats the champion",
        "try the wider net",
        "no lift",
        "conversions dropped",
    ]
    assert moves[0].run == v1.run_id and not any(m.reconstructed for m in moves)
    # Records are tags of their own: the version tags the second move overwrote do not touch them.
    assert len([k for k in client.get_registered_model(MODEL).tags if k.startswith("history.")]) == 5
    assert served(moves, "1")[0][1] == moves[1].at and served(moves, "1")[1] == (moves[4].at, None)
    assert served(moves, "2") == [(moves[1].at, moves[4].at)] and served(moves, "3") == []
    # Each version's model card says when it served (the registry description is the card).
    card_1 = client.get_model_version(MODEL, "1").description
    assert card_1.count("## In production") == 1
    assert f"- champion from {moves[0].at} until {moves[1].at}" in card_1
    assert f"- champion from {moves[4].at} until now" in card_1
    assert (
        f"- champion from {moves[1].at} until {moves[4].at}"
        in client.get_model_version(MODEL, "2").description
    )

    env = {"MLOPS_HOME": str(home.root), "MLFLOW_TRACKING_URI": home.tracking_uri}
    listed = mlops_in_process(env, "history", "--model", MODEL)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    lines = [line for line in listed.stdout.splitlines() if line.strip()]
    assert len(lines) == 5 and "promotion" in lines[0] and "rollback  champion v2 -> v1 by ops" in lines[4]
    as_json = mlops_in_process(env, "history", "--model", MODEL, "--json")
    assert [json.loads(line)["kind"] for line in as_json.stdout.splitlines()] == [
        PROMOTION,
        PROMOTION,
        AB_START,
        AB_STOP,
        ROLLBACK,
    ]
    unknown = mlops_in_process(env, "history", "--model", "nope")
    assert unknown.returncode == 2 and "no registered model named nope" in unknown.stdout + unknown.stderr


def test_moves_before_the_record_are_rebuilt_from_tags_and_marked(registry) -> None:
    _, target, client = registry
    name = f"{MODEL}-old"
    _versions(client, name, 2)
    # What the registry held before moves were recorded: decision and rollback tags on the versions only.
    for version, tags in {
        "1": _decision("ada", "2026-12-01T09:00:00+00:00", "first model")
        | {"rollback.restored_at": "2026-12-03T09:00:00+00:00", "rollback.restored_by": "ops"}
        | {"rollback.restored_reason": "bad week", "rollback.replaced_version": "2"},
        "2": _decision(None, "2026-12-02T09:00:00+00:00", "beats v1"),
    }.items():
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
    moves = read_history(target, name)
    assert [(m.kind, m.from_version, m.to_version, m.reconstructed) for m in moves] == [
        (PROMOTION, None, "1", True),
        (PROMOTION, "1", "2", True),
        (ROLLBACK, "2", "1", True),
    ]
    assert "(reconstructed from tags)" in moves[0].describe()
