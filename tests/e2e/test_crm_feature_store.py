"""The feature-store path as a user types it: generate a CRM source, then train from the shipped config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.cli import shell_env

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MLOPS = str(Path(sys.executable).parent / "mlops")
CONFIG = REPO / "configs" / "crm_feature_store.yaml"
MODEL = "crm-feature-store-e2e"


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
    raw["feature_store"].update(repo=str(REPO / "feature_repo" / "crm"), source=str(source))
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


def test_generate_then_run_ends_with_a_champion_trained_point_in_time(tmp_path: Path, prefect_server) -> None:
    home, source = tmp_path / "home", tmp_path / "crm"
    generated = mlops("data", "generate", "--crm", "--rows", "1500", "--out", str(source), home=home)
    assert generated.returncode == 0, generated.stderr
    assert "1,500 leads" in generated.stdout and "label spine" in generated.stdout
    assert sorted(p.name for p in source.iterdir()) == [
        "activities.parquet",
        "leads.parquet",
        "outcomes.parquet",
        "spine.parquet",
    ]

    run = mlops("run", "--config", str(_small_config(tmp_path / "crm.yaml", source)), home=home)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"model: {MODEL} v1" in run.stdout and "champion: v1" in run.stdout
    assert "Traceback" not in run.stderr
    # The tables the repository's views read, and the version's lineage naming the service it was trained from.
    assert (home / "features" / "crm" / "lead_activity.parquet").is_file()
    from mlflow.tracking import MlflowClient

    tags = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}").get_model_version(MODEL, "1").tags
    assert tags["feature_store.service"] == "crm_lead_scoring"
    assert tags["feature_store.views"] == "lead_activity,lead_attributes,lead_recency"
    assert tags["feature_store.retrieved_at"]


def test_fresh_home_says_how_to_make_the_source(tmp_path: Path) -> None:
    run = mlops("run", "--config", str(CONFIG), home=tmp_path / "home", timeout=120)
    assert run.returncode == 2
    assert "CRM source not found" in run.stderr and "`mlops data generate --crm`" in run.stderr
    assert "Traceback" not in run.stderr
