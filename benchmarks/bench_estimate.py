"""Accuracy of the budget gate's plan (`models.estimate`) against real runs: the sweep's 90% range, each phase.

Runs `mlops run` as a user does (the installed script, a fresh temporary MLOPS_HOME, the embedded default, both
gates by policy) `--runs` times on the same generated table, each with another root seed (new trial samples,
seeds and profiling), and reads each run's MLflow metrics: the sweep's estimate, its 90% range (the 5th-95th
percentile of the ASHA simulation), the epochs' range, the actual sweep, and each phase's actual seconds and
error (`phase/<name>/seconds`, `phase/<name>/error` = (estimate - actual) / actual).

    targets: the actual sweep time inside its stated 90% range in at least 8 runs of 10 (80%); the time range
    no wider, relative to its mean, than the simulated epochs' range relative to theirs (fixed start-up costs
    make the time range the narrower); each phase's mean error reported (no target: the figures calibrate the
    `estimate:` constants of the phases after the sweep).

Run after install: .venv/bin/python benchmarks/bench_estimate.py [--rows 20000] [--runs 10] [--config C] [--smoke]
                   .venv/bin/python benchmarks/bench_estimate.py --from-homes HOME [HOME ...]

`--from-homes` reports on the runs already made in those homes (every training-pipeline run in each home's MLflow
store, e.g. homes kept by `bench_quality.py --keep`) instead of running again; their wall time is then the sum
of the pipeline's phases.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from smoke import smoke_config

REPO = Path(__file__).resolve().parents[1]
MLOPS = str(Path(sys.executable).parent / "mlops")
CONFIG = REPO / "configs" / "crm_leads.yaml"
FOREIGN = ("PREFECT_API_URL", "PREFECT_HOME", "MLFLOW_TRACKING_URI", "BENTOML_HOME", "RAY_ADDRESS")
TARGET_INSIDE = 0.8
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class RunFigures:
    seed: int
    wall_seconds: float
    metrics: dict[str, float] = field(default_factory=dict)

    def get(self, key: str) -> float:
        return self.metrics.get(key, float("nan"))

    @property
    def inside(self) -> bool:
        low, high = self.get("estimate/sweep_seconds_p05"), self.get("estimate/sweep_seconds_p95")
        return low <= self.get("actual/sweep_seconds") <= high

    @property
    def time_width(self) -> float:
        """The time range's width relative to its mean."""
        return (self.get("estimate/sweep_seconds_p95") - self.get("estimate/sweep_seconds_p05")) / self.get(
            "estimate/sweep_seconds"
        )

    @property
    def epoch_width(self) -> float:
        """The simulated epochs' range width relative to their mean."""
        return (self.get("estimate/sweep_epochs_p95") - self.get("estimate/sweep_epochs_p05")) / self.get(
            "estimate/sweep_epochs"
        )


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "MLOPS_HOME": str(home)}
    for key in FOREIGN:
        env.pop(key, None)
    return env


def _mlops(*args: str, home: Path) -> str:
    proc = subprocess.run(
        [MLOPS, *args], cwd=REPO, env=_env(home), capture_output=True, text=True, timeout=7200
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"`mlops {' '.join(args)}` exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    return ANSI.sub("", proc.stdout)


def run_once(config: Path, seed: int, home: Path) -> RunFigures:
    """One `mlops run` of ``config`` with root seed ``seed``, both gates by policy; its parent run's metrics."""
    from mlflow.tracking import MlflowClient

    raw = yaml.safe_load(config.read_text())
    raw["seed"] = seed
    raw["approval"] = {"budget": {"mode": "auto"}, "promotion": {"mode": "auto"}}
    raw.setdefault("promotion", {})["require_beat_baseline"] = False
    home.mkdir(parents=True, exist_ok=True)
    seeded = home / f"seed-{seed}.yaml"
    seeded.write_text(yaml.safe_dump(raw))
    started = time.perf_counter()
    stdout = _mlops("run", "--config", str(seeded), home=home)
    wall = time.perf_counter() - started
    model = re.search(r"model: \S+ v\S+ \(MLflow run (\w+)\)", stdout)
    store = re.search(r"--backend-store-uri (\S+)", stdout)
    if model is None or store is None:
        raise SystemExit(f"cannot read the run and its store from `mlops run`:\n{stdout[-2000:]}")
    metrics = MlflowClient(store.group(1)).get_run(model.group(1)).data.metrics
    return RunFigures(seed, wall, dict(metrics))


def runs_in(home: Path) -> list[RunFigures]:
    """The training-pipeline runs recorded in ``home``'s MLflow store (the parent runs, which log the estimate),
    oldest first; wall time: the sum of their phases' seconds."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(
        experiments,
        filter_string="metrics.`estimate/sweep_seconds` >= 0",
        order_by=["attributes.start_time ASC"],
    )
    runs = []
    for run in found:
        metrics = dict(run.data.metrics)
        phases = sum(v for k, v in metrics.items() if k.startswith("phase/") and k.endswith("/seconds"))
        runs.append(RunFigures(int(run.data.params.get("seed", -1)), phases, metrics))
    return runs


def report(runs: list[RunFigures], rows: int | None) -> None:
    source = f"{rows:,} generated rows" if rows is not None else "the runs kept in the homes given"
    print(f"{len(runs)} runs of `mlops run` on {source}, root seeds {runs[0].seed}-{runs[-1].seed}")
    print(
        f"{'seed':>5}{'estimate s':>12}{'90% range s':>16}{'actual s':>10}{'inside':>8}{'time width':>12}"
        f"{'epoch width':>13}{'epochs est':>12}{'epochs act':>12}"
    )
    for r in runs:
        print(
            f"{r.seed:>5}{r.get('estimate/sweep_seconds'):>12.1f}"
            f"{r.get('estimate/sweep_seconds_p05'):>8.1f}-{r.get('estimate/sweep_seconds_p95'):<7.1f}"
            f"{r.get('actual/sweep_seconds'):>10.1f}{'yes' if r.inside else 'NO':>8}{r.time_width:>12.0%}"
            f"{r.epoch_width:>13.0%}{r.get('estimate/sweep_epochs'):>12.1f}{r.get('actual/sweep_epochs'):>12.0f}"
        )
    inside = sum(r.inside for r in runs)
    verdict = "meets" if inside >= TARGET_INSIDE * len(runs) else "misses"
    print(
        f"sweep inside its 90% range: {inside} of {len(runs)} ({inside / len(runs):.0%}); {verdict} the {TARGET_INSIDE:.0%} target"
    )
    narrower = sum(r.time_width <= r.epoch_width + 1e-9 for r in runs)
    print(
        f"time range no wider than the epochs' range implies: {narrower} of {len(runs)} runs "
        f"(mean relative width {statistics.fmean(r.time_width for r in runs):.0%} vs "
        f"{statistics.fmean(r.epoch_width for r in runs):.0%})"
    )
    keys = sorted(
        {k.split("/")[1] for r in runs for k in r.metrics if k.startswith("phase/") and k.endswith("/error")}
    )
    print(f"{'phase':<32}{'mean error':>11}{'min':>8}{'max':>8}{'mean actual s':>15}")
    for key in keys:
        errors = [r.metrics[f"phase/{key}/error"] for r in runs if f"phase/{key}/error" in r.metrics]
        actual = [r.metrics[f"phase/{key}/seconds"] for r in runs if f"phase/{key}/seconds" in r.metrics]
        print(
            f"phase {key:<26}{statistics.fmean(errors):>+11.0%}{min(errors):>+8.0%}{max(errors):>+8.0%}{statistics.fmean(actual):>15.1f}"
        )
    what = "`mlops run` wall time" if rows is not None else "pipeline time (the sum of its phases)"
    print(f"mean {what} {statistics.fmean(r.wall_seconds for r in runs):.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="Generated leads (one table for every run).")
    parser.add_argument("--runs", type=int, default=10, help="Runs, each with its own root seed.")
    parser.add_argument(
        "--config", type=Path, default=CONFIG, help="Pipeline config (its data path is replaced)."
    )
    parser.add_argument("--seed", type=int, default=100, help="Root seed of the first run; the next add 1.")
    parser.add_argument(
        "--smoke", action="store_true", help="2,000 rows, one run of the shrunken smoke config"
    )
    parser.add_argument(
        "--from-homes",
        nargs="+",
        type=Path,
        metavar="HOME",
        help="Report on the training-pipeline runs already made in these project homes; run nothing.",
    )
    args = parser.parse_args()
    if args.from_homes:
        runs = [run for home in args.from_homes for run in runs_in(home)]
        if not runs:
            raise SystemExit(f"no training-pipeline run in {', '.join(map(str, args.from_homes))}")
        report(runs, None)
        return
    if args.smoke:
        args.rows, args.runs = 2_000, 1
    with tempfile.TemporaryDirectory(prefix="bench-estimate-") as tmp:
        root = Path(tmp)
        data = root / "leads.parquet"
        _mlops("data", "generate", "--rows", str(args.rows), "--out", str(data), home=root / "data-home")
        if args.smoke:
            config = smoke_config(root / "smoke.yaml", data, model_name="bench-estimate")
        else:
            raw = yaml.safe_load(args.config.read_text())
            raw["data"]["path"] = str(data)
            expectations = raw["data"].get("expectations")
            if expectations and not Path(expectations).is_absolute():  # relative to the config it came from
                raw["data"]["expectations"] = str((args.config.parent / expectations).resolve())
            raw["registry"] = {"model_name": "bench-estimate"}
            config = root / "config.yaml"
            config.write_text(yaml.safe_dump(raw))
        runs = []
        for index in range(args.runs):
            runs.append(run_once(config, args.seed + index, root / f"home-{index}"))
            print(f"run {index + 1}/{args.runs} done in {runs[-1].wall_seconds:.0f} s", flush=True)
    report(runs, args.rows)


if __name__ == "__main__":
    main()
