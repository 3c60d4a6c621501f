"""`mlops validate` on good and bad input, through the CLI, against a real Prefect server.

Each case asserts the exit code (0 pass, 1 invalid data, 2 unusable input) and that the
message names the column or field at fault. Runs in-process with Typer's runner so the
libraries are imported once; tests/e2e drives the installed console script.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from models.data.io import write_table

pytestmark = pytest.mark.integration

Corrupt = Callable[[pd.DataFrame], pd.DataFrame]


def _set(column: str, rows: slice, value) -> Corrupt:
    def corrupt(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        if isinstance(value, str) and pd.api.types.is_numeric_dtype(df[column]):
            df[column] = df[column].astype(object)
        df.loc[df.index[rows], column] = value
        return df

    return corrupt


INVALID_DATA: dict[str, tuple[Corrupt, str, str]] = {
    "missing-column": (lambda d: d.drop(columns=["plan"]), "plan", "missing"),
    "extra-column": (lambda d: d.assign(shoe_size=42), "shoe_size", ""),
    "nulls-above-rate": (_set("engagement_score", slice(0, 900), None), "engagement_score", ""),
    "out-of-range": (_set("engagement_score", slice(0, 3), 150.0), "engagement_score", "150"),
    "unknown-category": (_set("region", slice(0, 4), "atlantis"), "region", "atlantis"),
    "duplicate-ids": (_set("lead_id", slice(0, 2), "L00000099"), "lead_id", "L00000099"),
    "wrong-dtype": (_set("company_size", slice(0, 5), "ten"), "company_size", "ten"),
    "blank-in-numeric": (_set("deal_size", slice(10, 13), " "), "deal_size", "' '"),
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _validate(runner: CliRunner, config: Path, data: Path | None = None):
    args = ["validate", "--config", str(config)] + (["--data", str(data)] if data else [])
    return runner.invoke(app, args, catch_exceptions=False)


def _snapshot(home: Path) -> dict[str, float]:
    """Every file under the home except Prefect's own database, with its mtime."""
    return {
        str(p.relative_to(home)): p.stat().st_mtime
        for p in home.rglob("*")
        if p.is_file() and "prefect" not in p.relative_to(home).parts
    }


def test_clean_data_passes(prefect_server, mlops_home, runner, default_config_copy) -> None:
    result = _validate(runner, default_config_copy)
    assert result.exit_code == 0, result.output
    assert "passed" in result.output
    docs = list((mlops_home / "data_docs").glob("*/index.html"))
    assert len(docs) == 1 and str(docs[0]) in result.output.replace("\n", "")


@pytest.mark.parametrize("case", sorted(INVALID_DATA))
def test_invalid_data_fails_and_names_column(
    case: str, prefect_server, mlops_home, runner, default_config_copy, leads_frame, tmp_path
) -> None:
    corrupt, column, sample = INVALID_DATA[case]
    data = write_table(corrupt(leads_frame), tmp_path / f"{case}.csv")
    result = _validate(runner, default_config_copy, data)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stdout
    assert column in result.output
    assert sample in result.output


UNUSABLE_FILES: dict[str, tuple[str | None, str]] = {
    "missing-file": (None, "file not found"),
    "empty-file": ("", "file is empty"),
    "header-only": ("lead_id,region,converted\n", "only a header"),
    "malformed-csv": ('lead_id,region\nL1,"emea\n', "malformed CSV"),
}


@pytest.mark.parametrize("case", sorted(UNUSABLE_FILES))
def test_unusable_file_exits_2(case: str, mlops_home, runner, default_config_copy, tmp_path) -> None:
    content, reason = UNUSABLE_FILES[case]
    data = tmp_path / f"{case}.csv"
    if content is not None:
        data.write_text(content)
    result = _validate(runner, default_config_copy, data)
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and reason in error_lines[0] and str(data) in error_lines[0]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (("model:", "model:\n  batch_size: many\n"), "model.batch_size"),
        (("sweep:", "sweep:\n  num_trials: 3\n"), "sweep.num_trials"),
        (("target: converted", "target: 7"), "data.target"),
    ],
    ids=["wrong-type", "unknown-key", "target-not-string"],
)
def test_bad_config_exits_2_naming_field(edit, field: str, mlops_home, runner, default_config_copy) -> None:
    text = default_config_copy.read_text()
    old, new = edit
    text = text.replace(old, new, 1) if old in text else text + new
    default_config_copy.write_text(text)
    result = _validate(runner, default_config_copy)
    assert result.exit_code == 2, result.output
    assert field in result.output and str(default_config_copy) in result.output.replace("\n", "")


def test_failed_runs_leave_earlier_state_untouched(
    prefect_server, mlops_home, runner, default_config_copy, leads_frame, tmp_path
) -> None:
    assert _validate(runner, default_config_copy).exit_code == 0
    before = _snapshot(mlops_home)
    bad = write_table(leads_frame.drop(columns=["region"]), tmp_path / "bad.csv")
    assert _validate(runner, default_config_copy, bad).exit_code == 1
    assert _validate(runner, default_config_copy, tmp_path / "absent.csv").exit_code == 2
    after = _snapshot(mlops_home)
    assert {k: v for k, v in after.items() if k in before} == before, "an earlier report was modified"
