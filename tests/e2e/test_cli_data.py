"""The data commands as a user types them: the installed `mlops` script in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

MLOPS = str(Path(sys.executable).parent / "mlops")
TELCO = Path(__file__).resolve().parents[1] / "data" / "telco_churn_sample.csv"


def mlops(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLOPS_HOME": str(home)}
    return subprocess.run([MLOPS, *args], capture_output=True, text=True, env=env, timeout=timeout)


def _profiled_telco(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """The Telco sample copied to ``tmp_path`` and profiled into ``tmp_path/name``."""
    data = tmp_path / "telco.csv"
    data.write_text(TELCO.read_text())
    out_dir = tmp_path / name
    profiled = mlops(
        "data", "profile", str(data), "--target", "Churn", "--out-dir", str(out_dir), home=tmp_path
    )
    assert profiled.returncode == 0, profiled.stderr
    return data, out_dir


def test_generate_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (a, b):
        result = mlops("data", "generate", "--rows", "2000", "--seed", "5", "--out", str(path), home=tmp_path)
        assert result.returncode == 0, result.stderr
    assert a.read_bytes() == b.read_bytes()
    assert "2,000 rows" in result.stdout


def test_generate_rejects_unknown_extension(tmp_path: Path) -> None:
    result = mlops("data", "generate", "--rows", "10", "--out", str(tmp_path / "x.xlsx"), home=tmp_path)
    assert result.returncode == 2
    assert "unsupported file type '.xlsx'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("delimiter", [",", ";"], ids=["comma", "semicolon"])
def test_profile_then_validate_an_unseen_real_dataset(tmp_path: Path, prefect_server, delimiter: str) -> None:
    """IBM's Telco churn sample: its own schema, Yes/No labels, and blanks in a numeric column."""
    data = tmp_path / "telco.csv"
    data.write_text(TELCO.read_text().replace(",", delimiter))
    out_dir = tmp_path / "telco-pipeline"
    profiled = mlops(
        "data", "profile", str(data), "--target", "Churn", "--out-dir", str(out_dir), home=tmp_path
    )
    assert profiled.returncode == 0, profiled.stderr
    assert "TotalCharges" in profiled.stdout and "blank" in profiled.stdout, "blanks must be reported"
    config = (out_dir / "pipeline.yaml").read_text()
    assert "positive_class: 'Yes'" in config and "id_column: customerID" in config
    assert (out_dir / "expectations.json").is_file()

    validated = mlops("validate", "--config", str(out_dir / "pipeline.yaml"), home=tmp_path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "passed" in validated.stdout
    assert "Traceback" not in validated.stderr


def test_validate_failure_prints_table_without_traceback(tmp_path: Path, prefect_server) -> None:
    data, out_dir = _profiled_telco(tmp_path, "p")
    lines = data.read_text().splitlines()
    lines[5] = lines[5].replace("Month-to-month", "Ten year", 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    result = mlops("validate", "--config", str(out_dir / "pipeline.yaml"), "--data", str(bad), home=tmp_path)
    assert result.returncode == 1
    assert "Contract" in result.stdout and "Ten year" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_profile_then_run_trains_on_the_unseen_dataset(tmp_path: Path, prefect_server) -> None:
    """`mlops data profile` + `mlops run` on a schema the project never generated."""
    data, out_dir = _profiled_telco(tmp_path, "telco")
    config = out_dir / "pipeline.yaml"
    # Shrink the sweep for the test machine; everything else is as profiled.
    config.write_text(config.read_text() + "model:\n  max_epochs: 4\n")
    run = mlops("run", "--config", str(config), home=tmp_path / "home", timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "model: telco v1" in run.stdout
    assert "test ROC AUC" in run.stdout and "best baseline" in run.stdout
    assert "MLflow UI: mlflow ui --backend-store-uri sqlite:///" in run.stdout
    assert "Traceback" not in run.stderr
