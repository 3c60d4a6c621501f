"""Model quality of the deep model against the baselines, on three tables, through the real pipeline.

Each case runs `mlops` as a user does (the installed script in a subprocess, a fresh temporary
MLOPS_HOME, PREFECT_API_URL and the other pointers to an existing stack removed, so the embedded
default is used), then reads the MLflow parent run's metrics (`test/roc_auc*`, `baseline/<name>/roc_auc`,
`vs_baseline/<name>/auc_diff*`) from the store the run printed on its "MLflow UI:" line:

    synthetic-20k   mlops data generate --rows 20000 --out <home>/data/crm_leads.parquet
                    mlops run --config configs/crm_leads.yaml
    synthetic-200k  make run   (the README's first command: the default 200,000 rows, then the same run;
                               its wall time is the 300 s `make run` figure)
    telco-sample    mlops data profile tests/data/telco_churn_sample.csv --target Churn --out-dir <home>/telco
                    mlops run --config <home>/telco/pipeline.yaml

Run after install: .venv/bin/python benchmarks/bench_quality.py [--cases telco-sample ...] [--table CSV TARGET]
[--keep] [--smoke]. Every baseline is shown with its test ROC AUC, interval and fit time, the deep model with its
interval and the time of its sweep and final fit.
References: the deep model's test ROC AUC should be at least the best baseline's (by test AUC), i.e.
deep AUC / best baseline AUC >= 1; the wall time of data preparation + `mlops run` is shown as a ratio
to the 300 s `make run` target for 2 CPU cores, and `make run`'s own wall time on its line. The venv must
already be installed (its stamp makes `make` skip the install); only the commands are timed. `--smoke` runs the
telco-sample case shrunk, as a new user would on a table of their own: `mlops data profile` of the bundled sample,
then `make run CONFIG=<its config, shrunk: one trial of one epoch, 2-fold cross-validation> DATA=<the sample>`.
Exits 1 when a command fails (the tail of its output is shown).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from smoke import shrink_profiled

REPO = Path(__file__).resolve().parents[1]
MLOPS = str(Path(sys.executable).parent / "mlops")
TELCO = REPO / "tests" / "data" / "telco_churn_sample.csv"
CONFIG = REPO / "configs" / "crm_leads.yaml"
REFERENCE_SECONDS = 300.0
TIMEOUT_SECONDS = 3600.0  # per command; the 200k case takes minutes on 2 cores
# Variables that would point a run at a stack or store outside the fresh home.
FOREIGN = ("PREFECT_API_URL", "PREFECT_HOME", "MLFLOW_TRACKING_URI", "BENTOML_HOME", "RAY_ADDRESS")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class CommandFailed(Exception):
    pass


@dataclass
class Result:
    case: str
    prepare_seconds: float = 0.0
    run_seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)  # train, val, test
    auc: tuple[float, float, float] | None = None  # value, low, high
    level: str = ""  # "95%"
    baselines: dict[str, float] = field(default_factory=dict)  # name -> test ROC AUC
    baseline_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (low, high)
    fit_seconds: dict[str, float] = field(default_factory=dict)  # baseline name -> wall time of its fit
    deep_fit_seconds: float | None = None  # the sweep and the cross-validation/final-model phases
    best: str = ""
    diff: tuple[float, float, float] | None = None  # deep - best baseline: value, low, high
    cv_auc: float | None = None
    promoted: bool | None = None
    reason: str = ""
    warnings: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def total_seconds(self) -> float:
        return self.prepare_seconds + self.run_seconds

    @property
    def meets_target(self) -> bool:
        return self.auc is not None and self.best != "" and self.auc[0] >= self.baselines[self.best]


def mlops(*args: str, home: Path) -> tuple[str, float]:
    """Run `mlops ARGS` in the repo with MLOPS_HOME=home; its stdout and wall seconds, or CommandFailed."""
    return command([MLOPS, *args], f"mlops {' '.join(args)}", home=home)


def make_run(home: Path, *variables: str) -> tuple[str, float]:
    """`make run [VAR=value ...]` in the repo with MLOPS_HOME=home, as a new user types it."""
    return command(["make", "run", *variables], " ".join(["make run", *variables]), home=home)


def command(argv: list[str], typed: str, *, home: Path) -> tuple[str, float]:
    env = {**os.environ, "MLOPS_HOME": str(home)}
    for key in FOREIGN:
        env.pop(key, None)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-3000:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        raise CommandFailed(f"`{typed}` timed out after {TIMEOUT_SECONDS:.0f} s\n{tail}") from None
    seconds = time.perf_counter() - start
    stdout = ANSI.sub("", proc.stdout)
    if proc.returncode != 0:
        raise CommandFailed(
            f"`{typed}` exited {proc.returncode} after {seconds:.1f} s\n"
            f"--- stdout (tail) ---\n{stdout[-1500:]}\n--- stderr (tail) ---\n{ANSI.sub('', proc.stderr)[-3000:]}"
        )
    return stdout, seconds


def generate(rows: int | None) -> Callable[[Path], tuple[Path, float]]:
    def prepare(home: Path) -> tuple[Path, float]:
        out = home / "data" / "crm_leads.parquet"
        extra = ("--rows", str(rows)) if rows is not None else ()
        _, seconds = mlops("data", "generate", *extra, "--out", str(out), home=home)
        return CONFIG, seconds

    return prepare


def profile_table(table: Path, target: str, name: str) -> Callable[[Path], tuple[Path, float]]:
    """`mlops data profile TABLE --target TARGET` into the home: the default profile config, as a new user runs
    a table the project has never seen."""

    def prepare(home: Path) -> tuple[Path, float]:
        out_dir = home / name
        _, seconds = mlops(
            "data", "profile", str(table), "--target", target, "--out-dir", str(out_dir), home=home
        )
        return out_dir / "pipeline.yaml", seconds

    return prepare


profile_telco = profile_table(TELCO, "Churn", "telco")


def smoke(home: Path) -> tuple[Path, float]:
    """The bundled Telco sample profiled into the home, and the config it got, shrunk (``shrink_profiled``)."""
    profiled, seconds = profile_telco(home)
    return shrink_profiled(profiled, profiled.with_name("pipeline.smoke.yaml")), seconds


def by_make(home: Path) -> tuple[Path, float]:
    """Nothing to prepare: `make run` generates the default data itself (timed with the run)."""
    return CONFIG, 0.0


CASES: dict[str, Callable[[Path], tuple[Path, float]]] = {
    "synthetic-20k": generate(20_000),
    "synthetic-200k": by_make,  # `make run`: the CLI's default row count, then the default config
    "telco-sample": profile_telco,
}
SMOKE_CASE = "telco-smoke"  # not among the measured cases: --smoke runs only this one
MAKE_CASES = ("synthetic-200k", SMOKE_CASE)  # run as `make run`, which they exercise and time


def summary_line(stdout: str, prefix: str | tuple[str, ...]) -> str:
    lines = [line.strip() for line in stdout.splitlines() if line.strip().startswith(prefix)]
    if not lines:
        raise CommandFailed(
            f"no line starting with {prefix!r} in the output of `mlops run`:\n{stdout[-2000:]}"
        )
    return lines[-1]


def read_run(result: Result, stdout: str) -> None:
    """Fill ``result`` from the summary lines of `mlops run` and the MLflow parent run they name."""
    from mlflow.tracking import MlflowClient

    model = re.match(r"model: (\S+) v(\S+) \(MLflow run (\w+)\)", summary_line(stdout, "model:"))
    if model is None:
        raise CommandFailed(f"cannot parse the model line of `mlops run`:\n{stdout[-2000:]}")
    name, version, run_id = model.groups()
    ui = summary_line(stdout, "MLflow UI:")
    uri = re.search(r"--backend-store-uri (\S+)", ui) or re.search(r"open (\S+)", ui)
    if uri is None:
        raise CommandFailed(f"cannot parse the tracking URI from {ui!r}")
    client = MlflowClient(uri.group(1))
    metrics = client.get_run(run_id).data.metrics
    tags = client.get_model_version(name, version).tags
    result.rows = {part: int(tags[f"data.rows_{part}"]) for part in ("train", "val", "test")}

    result.auc = tuple(metrics[f"test/roc_auc{s}"] for s in ("", "_low", "_high"))
    result.baselines = {
        key.split("/")[1]: value
        for key, value in metrics.items()
        if key.startswith("baseline/") and key.endswith("/roc_auc")
    }
    if not result.baselines:
        raise CommandFailed(f"MLflow run {run_id} has no baseline/<name>/roc_auc metrics")
    for baseline in result.baselines:
        bounds = (
            metrics.get(f"baseline/{baseline}/roc_auc_low"),
            metrics.get(f"baseline/{baseline}/roc_auc_high"),
        )
        if None not in bounds:
            result.baseline_intervals[baseline] = bounds
        if f"baseline/{baseline}/fit_seconds" in metrics:
            result.fit_seconds[baseline] = metrics[f"baseline/{baseline}/fit_seconds"]
    phases = [metrics.get(f"phase/{key}/seconds") for key in ("sweep", "cross_validation_final_model")]
    if phases[0] is not None:
        result.deep_fit_seconds = sum(p for p in phases if p is not None)
    result.best = max(result.baselines, key=result.baselines.__getitem__)
    result.diff = tuple(metrics[f"vs_baseline/{result.best}/auc_diff{s}"] for s in ("", "_low", "_high"))
    result.cv_auc = metrics.get("cv/roc_auc")

    verdict = summary_line(stdout, ("promoted to champion", "not promoted"))
    result.promoted = verdict.startswith("promoted")
    result.reason = verdict.split(":", 1)[1].strip() if ":" in verdict else ""

    # The printed summary and the tracked metrics must tell the same story.
    printed = summary_line(stdout, "test ROC AUC")
    found = re.match(r"test ROC AUC (\S+) \((\S+) CI (\S+)-(\S+)\); best baseline (\S+) (\S+)", printed)
    if found is None:
        result.warnings.append(f"cannot parse {printed!r}")
        return
    auc, level, low, high, best, best_auc = found.groups()
    result.level = level
    for label, shown, tracked in (
        ("test ROC AUC", auc, result.auc[0]),
        ("its low bound", low, result.auc[1]),
        ("its high bound", high, result.auc[2]),
        ("best baseline AUC", best_auc, result.baselines[result.best]),
    ):
        if abs(float(shown) - tracked) > 6e-5:
            result.warnings.append(f"printed {label} {shown} but MLflow has {tracked:.5f}")
    if best != result.best:
        result.warnings.append(f"printed best baseline {best} but by MLflow's test AUCs it is {result.best}")
    if not result.auc[1] <= result.auc[0] <= result.auc[2]:
        result.warnings.append(f"test AUC {result.auc[0]:.4f} outside its own interval")
    if not result.diff[1] <= result.diff[0] <= result.diff[2]:
        result.warnings.append(f"AUC difference {result.diff[0]:+.4f} outside its own interval")
    expected_diff = result.auc[0] - result.baselines[result.best]
    if abs(expected_diff - result.diff[0]) > 1e-6:
        result.warnings.append(
            f"vs_baseline/{result.best}/auc_diff {result.diff[0]:+.5f} differs from the AUCs' difference "
            f"{expected_diff:+.5f}"
        )


def run_case(case: str, keep: bool) -> Result:
    result = Result(case)
    home = Path(tempfile.mkdtemp(prefix=f"bench-quality-{case}-"))
    try:
        prepare = smoke if case == SMOKE_CASE else CASES[case]
        config, result.prepare_seconds = prepare(home)
        if case == SMOKE_CASE:
            stdout, result.run_seconds = make_run(home, f"CONFIG={config}", f"DATA={TELCO}")
        elif case in MAKE_CASES:
            stdout, result.run_seconds = make_run(home)
        else:
            stdout, result.run_seconds = mlops("run", "--config", str(config), home=home)
        read_run(result, stdout)
    except CommandFailed as exc:
        result.error = str(exc)
    except Exception:  # a metric or tag missing from the store, an unreadable store: report, go on
        result.error = traceback.format_exc()
    finally:
        if keep:
            print(f"[{case}] home kept: {home}", flush=True)
        else:
            shutil.rmtree(home, ignore_errors=True)
    return result


def describe(r: Result) -> None:
    if r.error:
        print(f"[{r.case}] FAILED\n{r.error}", flush=True)
        return
    auc, diff, level = r.auc, r.diff, r.level or "CI"
    print(
        f"[{r.case}] {sum(r.rows.values()):,} rows (train {r.rows['train']:,}, val {r.rows['val']:,}, test {r.rows['test']:,})"
    )
    fit = (
        ""
        if r.deep_fit_seconds is None
        else f", fit {r.deep_fit_seconds:.1f} s (sweep + cross-validation/final model)"
    )
    print(f"  deep model test ROC AUC {auc[0]:.4f} ({level} CI {auc[1]:.4f}-{auc[2]:.4f}){fit}")
    for name, value in sorted(r.baselines.items(), key=lambda kv: -kv[1]):
        low, high = r.baseline_intervals.get(name, (float("nan"), float("nan")))
        seconds = r.fit_seconds.get(name)
        print(
            f"  baseline {name:<24} {value:.4f} ({level} CI {low:.4f}-{high:.4f})"
            + ("" if seconds is None else f", fit {seconds:.1f} s")
            + ("  (best)" if name == r.best else "")
        )
    print(f"  deep - {r.best}: {diff[0]:+.4f} ({level} CI {diff[1]:+.4f} to {diff[2]:+.4f})")
    if r.cv_auc is not None:
        print(f"  cross-validated ROC AUC (train+val): {r.cv_auc:.4f}")
    print(f"  target (deep AUC >= best baseline's): {'met' if r.meets_target else 'NOT met'}")
    print(f"  {'promoted to champion' if r.promoted else 'not promoted'}: {r.reason}")
    if r.case in MAKE_CASES:
        print(f"  wall time: data {r.prepare_seconds:.1f} s, make run {r.run_seconds:.1f} s")
        print(
            f"make run wall time: {r.run_seconds:.1f} s; ratio to the {REFERENCE_SECONDS:.0f} s target: "
            f"{r.run_seconds / REFERENCE_SECONDS:.2f}"
        )
    else:
        print(f"  wall time: data {r.prepare_seconds:.1f} s, mlops run {r.run_seconds:.1f} s")
    for warning in r.warnings:
        print(f"  warning: {warning}")
    print(flush=True)


def table(results: list[Result]) -> None:
    columns = ["case", "rows", "deep AUC [CI]", "best baseline", "diff [CI]", "target", "promoted"]
    columns += ["data s", "run s", "AUC ratio", "time/300s"]
    rows = []
    for r in results:
        if r.error:
            rows.append([r.case, "FAILED", *[""] * (len(columns) - 2)])
            continue
        auc, diff, best_auc = r.auc, r.diff, r.baselines[r.best]
        rows.append(
            [
                r.case,
                f"{sum(r.rows.values()):,}",
                f"{auc[0]:.4f} [{auc[1]:.4f}, {auc[2]:.4f}]",
                f"{r.best} {best_auc:.4f}",
                f"{diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}]",
                "met" if r.meets_target else "no",
                "yes" if r.promoted else "no",
                f"{r.prepare_seconds:.1f}",
                f"{r.run_seconds:.1f}",
                f"{auc[0] / best_auc:.4f}",
                f"{r.total_seconds / REFERENCE_SECONDS:.2f}",
            ]
        )
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
    line = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    print(line.format(*columns))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for row in rows:
        print(line.format(*row).rstrip())
    print(
        "AUC ratio = deep test ROC AUC / best baseline's (reference: >= 1); "
        f"time/300s = (data + mlops run) wall time / the {REFERENCE_SECONDS:.0f} s `make run` target"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=list(CASES),
        default=None,
        help="Cases to run (default: all, or none when --table is given).",
    )
    parser.add_argument(
        "--table",
        nargs=2,
        action="append",
        default=[],
        metavar=("CSV", "TARGET"),
        help="Also a table of your own: profiled with `mlops data profile CSV --target TARGET` (its default "
        "config), then run. Repeatable.",
    )
    parser.add_argument("--keep", action="store_true", help="Keep each case's MLOPS_HOME for inspection.")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="Only the Telco sample, profiled, with a shrunken config, through `make run`: checks that it runs.",
    )
    args = parser.parse_args()

    tables = []
    for csv, target in args.table:
        name = f"table-{Path(csv).stem}"
        CASES[name] = profile_table(Path(csv).resolve(), target, name)
        tables.append(name)
    cases = args.cases if args.cases is not None else ([] if tables else [*CASES])
    results = []
    for case in [SMOKE_CASE] if args.smoke else [*cases, *tables]:
        print(f"[{case}] running ...", flush=True)
        results.append(run_case(case, args.keep))
        describe(results[-1])
    table(results)
    if any(r.error for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
