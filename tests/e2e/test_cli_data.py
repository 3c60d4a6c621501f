"""The data commands as a user types them: `generate` as the installed `mlops` script in a subprocess (the entry
point itself), `profile` and `validate` through the same CLI in this process (its parsing, output and exit codes,
without an interpreter start-up). A profiled table's run (`mlops data profile` of the Telco sample, then `make
run`) is bench_quality's smoke run, checked in test_benchmarks.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from helpers.cli import mlops_in_process, shell_env
from helpers.tables import PLANTED, planted_table

pytestmark = pytest.mark.e2e

MLOPS = str(Path(sys.executable).parent / "mlops")
TELCO = Path(__file__).resolve().parents[1] / "data" / "telco_churn_sample.csv"


def mlops(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed script, in a user's shell for ``home``."""
    env = shell_env(home)
    return subprocess.run([MLOPS, *args], capture_output=True, text=True, env=env, timeout=timeout)


def mlops_here(*args: str, home: Path) -> subprocess.CompletedProcess:
    """The same command through the CLI in this process."""
    return mlops_in_process({"MLOPS_HOME": str(home)}, *args)


@dataclass(frozen=True)
class Profiled:
    data: Path  # the Telco sample as profiled
    out_dir: Path  # pipeline.yaml and expectations.json written by `mlops data profile`
    stdout: str  # what `mlops data profile` printed


@pytest.fixture(scope="module")
def profiled_telco(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Profiled]:
    """`mlops data profile` of the Telco sample with a given delimiter, run once per delimiter for the
    module; tests read its outputs and write their own files next to them."""
    done: dict[str, Profiled] = {}

    def profile(delimiter: str) -> Profiled:
        if delimiter not in done:
            root = tmp_path_factory.mktemp("telco")
            data = root / "telco.csv"
            data.write_text(TELCO.read_text().replace(",", delimiter))
            out_dir = root / "telco-pipeline"
            result = mlops_here(
                "data", "profile", str(data), "--target", "Churn", "--out-dir", str(out_dir), home=root
            )
            assert result.returncode == 0, result.stderr
            done[delimiter] = Profiled(data, out_dir, result.stdout)
        return done[delimiter]

    return profile


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
def test_profile_then_validate_an_unseen_real_dataset(
    tmp_path: Path, prefect_server, profiled_telco, delimiter: str
) -> None:
    """IBM's Telco churn sample: its own schema, Yes/No labels, and blanks in a numeric column."""
    profiled = profiled_telco(delimiter)
    assert "TotalCharges" in profiled.stdout and "blank" in profiled.stdout, "blanks must be reported"
    config = (profiled.out_dir / "pipeline.yaml").read_text()
    assert "positive_class: 'Yes'" in config and "id_column: customerID" in config
    assert (profiled.out_dir / "expectations.json").is_file()

    validated = mlops_here("validate", "--config", str(profiled.out_dir / "pipeline.yaml"), home=tmp_path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "passed" in validated.stdout
    assert "Traceback" not in validated.stderr


def test_validate_failure_prints_table_without_traceback(
    tmp_path: Path, prefect_server, profiled_telco
) -> None:
    profiled = profiled_telco(",")
    lines = profiled.data.read_text().splitlines()
    lines[5] = lines[5].replace("Month-to-month", "Ten year", 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    config = profiled.out_dir / "pipeline.yaml"
    result = mlops_here("validate", "--config", str(config), "--data", str(bad), home=tmp_path)
    assert result.returncode == 1
    assert "Contract" in result.stdout and "Ten year" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_profile_flags_what_would_not_hold_in_production_and_the_pair_validates(
    tmp_path: Path, prefect_server
) -> None:
    """A table with a post-outcome tag, a shuffled record number, constant columns and a form's "Select":
    the profile names the tag (and no honest column) as possible leakage, leaves the record number and the
    constants out, proposes "Select" as missing, and the config and suite it writes validate the table."""
    data = tmp_path / "leads.csv"
    planted_table().to_csv(data, index=False)
    out_dir = tmp_path / "leads-pipeline"
    result = mlops_here(
        "data", "profile", str(data), "--target", PLANTED.target, "--out-dir", str(out_dir), home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    printed = " ".join(result.stdout.split())
    assert f"possible target leakage in {PLANTED.leak}:" in printed
    assert f"column '{PLANTED.leak}': possible target leakage" in printed
    honest = [*PLANTED.numeric, *PLANTED.categorical]
    assert not [name for name in honest if f"column '{name}': possible target leakage" in printed]
    raw = yaml.safe_load((out_dir / "pipeline.yaml").read_text())
    assert raw["data"]["id_column"] == PLANTED.id_column and raw["data"]["na_values"] == [PLANTED.placeholder]
    assert raw["features"]["exclude"] == [PLANTED.record_number, *PLANTED.constants, PLANTED.near_constant]

    validated = mlops_here("validate", "--config", str(out_dir / "pipeline.yaml"), home=tmp_path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
