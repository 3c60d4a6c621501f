"""`mlops ab report` reads the evaluation's threshold, resamples, confidence and seed from --config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from flows.cli import app
from monitoring.prediction_log import PredictionLog, PredictionRecord, log_files

REPO = Path(__file__).resolve().parents[2]
MODEL = "crm-leads"


def _logged_split(home: Path, rows: int) -> list[str]:
    """A prediction log of an A/B split (each lead answered by one variant), rotated into many small files as a
    long-running service's would be; the lead ids."""
    rng = np.random.default_rng(3)
    ids = [f"lead-{i}" for i in range(rows)]
    records = [
        PredictionRecord(
            request_id=f"r{i}",
            variant="challenger" if i % 2 else "champion",
            model_version="2" if i % 2 else "1",
            features={},
            score=float(rng.random()),
            entity_id=lead,
            model_name=MODEL,
        )
        for i, lead in enumerate(ids)
    ]
    with PredictionLog(home / "predictions", max_file_bytes=4_000) as log:
        for start in range(0, rows, 10):  # one request's rows per append
            log.append(records[start : start + 10])
    assert len(log_files(home / "predictions")) > 5
    return ids


def test_report_intervals_follow_the_config(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    ids = _logged_split(home, 400)
    rng = np.random.default_rng(4)
    labels = tmp_path / "outcomes.csv"
    labels.write_text("lead_id,converted\n" + "".join(f"{i},{int(rng.random() < 0.3)}\n" for i in ids))
    config = yaml.safe_load((REPO / "configs" / "crm_leads.yaml").read_text())
    config["data"]["path"] = str(labels)  # any existing table: the report reads only data's column names
    config["evaluation"] = {"confidence": 0.8, "n_bootstrap": 200}
    config_path = tmp_path / "pipeline.yaml"
    config_path.write_text(yaml.safe_dump(config))
    args = ["ab", "report", "--model", MODEL, "--labels", str(labels), "--config", str(config_path)]

    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "conversion (80%)" in result.output and "ROC AUC (80%)" in result.output
    assert "(95%)" not in result.output

    # Without a config only the labels cannot be joined; the defaults' 95% heads the columns.
    plain = CliRunner().invoke(app, ["ab", "report", "--model", MODEL], terminal_width=200)
    assert plain.exit_code == 0, plain.output
    assert "conversion (95%)" in plain.output
    # Every rotated file was read: each variant's 200 rows, none lost or read twice.
    volumes = [
        line.split("│")[3].strip()
        for line in plain.output.splitlines()
        if "│ champion" in line or "│ challenger" in line
    ]
    assert volumes == ["200", "200"]
