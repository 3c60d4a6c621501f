"""Benchmarks that cannot rot: each answers --help, and each runs to the end in its smoke mode (tiny sizes)
and prints its figure lines. The figures of a smoke run are not measurements: only their presence is checked.
bench_estimate reports on bench_quality's smoke run (`--from-homes`) instead of making a second run of the same
shrunken config (about 40 s of the suite): its report is checked here, its own loop of `mlops run` calls
(`--smoke`, `--runs`) is not.

bench_quality's smoke run is also the suite's run of a new user's journey on a table the project never
generated (`mlops data profile` of the bundled Telco sample, then `make run` of its config, in a fresh home on
the embedded default): what that run leaves in the home is checked here too.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.system import system_tool

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# Per benchmark, the start of each figure line it must print.
FIGURES = {
    "bench_bootstrap.py": ["vectorised bootstrap_metrics:", "speed-up:"],
    "bench_drift.py": ["1. our check", "2. ", "3. parity"],
    "bench_estimate.py": [
        "1 runs of `mlops run`",
        "sweep inside its 90% range:",
        "time range no wider than the epochs' range implies:",
        "phase sweep ",
    ],
    "bench_generate.py": ["generate + write 2,000 rows (parquet)", "generate + write 2,000 rows (csv)"],
    "bench_quality.py": ["[telco-smoke] 1,400 rows", "make run wall time:", "AUC ratio = "],
    "bench_serving.py": [
        "single-request p50 by-id-redis full",
        "target by-id-redis p50",
        " 1 rows: by-id-redis by id / full rows",
        "errors over all runs:",
    ],
    "bench_sweep_overhead.py": ["reuse_actors=True ", "reuse_actors=False ", "reuse_actors=False / True:"],
    "bench_train_throughput.py": ["(a) bare PyTorch loop", "(b) train_model", "ratio (b)/(a):"],
}


def _env() -> dict[str, str]:
    """A user's shell: nothing pointing at this session's servers or stores."""
    foreign = (
        "PREFECT_API_URL",
        "PREFECT_API_AUTH_STRING",
        "MLFLOW_TRACKING_URI",
        "MLOPS_HOME",
        "RAY_ADDRESS",
    )
    return {k: v for k, v in os.environ.items() if k not in foreign}


def test_every_benchmark_is_covered() -> None:
    assert sorted(p.name for p in BENCHMARKS.glob("bench_*.py")) == sorted(FIGURES)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_help_describes_the_options(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--help`` prints the options and runs nothing (in this process: imports are shared, about 2 s each
    in a fresh interpreter)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # a script's own folder, as `python benchmarks/x.py` has
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(BENCHMARKS / name), run_name="__main__")
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    assert "--smoke" in printed and "usage:" in printed


def _bench(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def quality_smoke() -> Iterator[tuple[subprocess.CompletedProcess[str], Path | None]]:
    """bench_quality's smoke run (`make run` on 2,000 rows in a fresh home), its home kept for bench_estimate,
    which reports on that run (`--from-homes`) rather than making another of the same config; removed after."""
    result = _bench("bench_quality.py", "--smoke", "--keep")
    kept = re.search(r"home kept: (\S+)", result.stdout)
    home = Path(kept.group(1)) if kept else None
    try:
        yield result, home
    finally:
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)


def test_quality_smoke_profiles_an_unseen_table_and_make_run_trains_it(
    quality_smoke: tuple[subprocess.CompletedProcess[str], Path | None],
) -> None:
    """The Telco sample (its own schema, Yes/No labels, blanks in a numeric column), profiled and run with
    `make run`: a small table is cross-validated, so the run carries the folds' figures (every baseline,
    CatBoost and LightGBM included) and a model card with every baseline's fit time."""
    result, home = quality_smoke
    assert result.returncode == 0 and home is not None, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "[telco-smoke] FAILED" not in result.stdout and "Traceback" not in result.stderr
    [cv] = home.rglob("cross_validation.json")
    folds = json.loads(cv.read_text())
    assert folds["folds"] == 2 and folds["rows"] == 1_120  # train + validation of 1,400 rows
    assert set(folds["baselines"]) == {
        "logistic_regression",
        "gradient_boosted_trees",
        "catboost",
        "lightgbm",
    }
    [card] = home.rglob("model_card.md")
    text = card.read_text()
    assert "# Model card: telco-churn-sample v1" in text and "## Known limitations" in text
    assert re.search(r"Baseline fit times: logistic_regression [\d.]+ s, .*catboost [\d.]+ s, lightgbm", text)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_smoke_mode_runs_and_prints_its_figures(name: str, request: pytest.FixtureRequest) -> None:
    if name == "bench_serving.py":
        system_tool("wrk", "wrk")
        system_tool("redis-server", "redis-server")  # its smoke serves by id from Redis
    if name == "bench_quality.py":
        result, _ = request.getfixturevalue("quality_smoke")
    elif name == "bench_estimate.py":
        quality, home = request.getfixturevalue("quality_smoke")
        assert home is not None, f"bench_quality kept no home:\n{quality.stdout[-3000:]}"
        result = _bench(name, "--from-homes", str(home))
    else:
        result = _bench(name, "--smoke")
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    lines = result.stdout.splitlines()
    missing = [start for start in FIGURES[name] if not any(line.startswith(start) for line in lines)]
    assert not missing, f"{name} printed no line starting with {missing}:\n{result.stdout[-3000:]}"
