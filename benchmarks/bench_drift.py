"""Speed of the drift check (`monitoring.drift.detect_drift`) against Evidently's DataDriftPreset, and parity.

One run, three figures, on synthetic data generated once into a temporary directory with a seeded numpy
generator: a reference of 50,000 rows (`monitoring.reference_rows`' default) and a current batch of
`--rows` rows, each its own Parquet file, 30 feature columns: 20 numeric (normal, lognormal, gamma, beta,
Student t, Pareto, a bimodal mixture, Poisson and uniform integers, a column with NaN and ±inf, and two
with at most 5 distinct values, which Evidently tests with Jensen-Shannon) and 10 categorical strings with
3 to 50 levels (one with missing values, one with levels the reference never saw). About half the columns
are shifted in the current batch, some by less than the threshold.

1. End to end at `--rows` (default 1,000,000): `pd.read_parquet` of both files + `detect_drift`, best of
   `--repeats`. Target: <= 10 s on 2 cores; printed as seconds and the ratio to 10 s. The files were just
   written, so the read is from the page cache, not a cold disk.
2. At `--evidently-rows` (default 100,000; the first rows of the same batch) against the same reference:
   Evidently 0.7.23 `Report([DataDriftPreset()], include_tests=True).run(...)` with an explicit
   `DataDefinition`, `Dataset.from_pandas` included, run once (measured here: about 16.6 s at 100k x 30 and
   255 s at 1M, hence not at 1M), and `detect_drift` on the same in-memory frames, best of `--repeats`.
   Printed: both times and Evidently's time / ours.
3. Parity at `--evidently-rows`: for every column the same method, threshold and drifted verdict and the
   score equal to 1e-6 relative (as `tests/integration/test_drift_parity.py` checks), and the same drifted
   share. Prints how many columns agree; exits 1 if any disagrees.

Run from the repository root: .venv/bin/python benchmarks/bench_drift.py [--rows 1000000]
[--evidently-rows 100000] [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.config import MonitoringConfig
from monitoring.drift import DriftReport, detect_drift
from monitoring.evidently_report import EvidentlyColumn

TARGET_SECONDS = 10.0  # end to end at 1M rows x 30 columns on 2 cores
EVIDENTLY_MEASURED_SECONDS = 16.6  # Evidently 0.7.23 measured here on 2 cores, 100k x 30 columns
SCORE_RELATIVE_TOLERANCE = 1e-6
REFERENCE_ROWS = MonitoringConfig().reference_rows

# Categorical columns: name -> (levels, shift strength towards the reversed frequencies).
CATEGORICAL_SPEC: dict[str, tuple[int, float]] = {
    "c_plan": (3, 0.0),
    "c_tier": (4, 0.5),
    "c_region": (6, 0.0),
    "c_channel": (8, 0.3),
    "c_industry": (12, 0.0),
    "c_country": (20, 0.08),  # shifted a little: below the Jensen-Shannon threshold
    "c_source": (25, 0.0),  # 2% missing on both sides
    "c_campaign": (30, 0.4),
    "c_product": (40, 0.0),  # 3% of the current rows take 2 levels the reference never saw
    "c_city": (50, 0.25),
}


def _numeric(rng: np.random.Generator, rows: int, shifted: bool) -> dict[str, np.ndarray]:
    """20 numeric columns; with ``shifted`` the drifting ones come from their shifted distribution."""
    s = 1.0 if shifted else 0.0
    bimodal = np.where(
        rng.random(rows) < 0.3 + 0.1 * s, rng.normal(4.0, 1.0, rows), rng.normal(0.0, 1.0, rows)
    )
    with_missing = rng.normal(50.0, 10.0, rows)
    with_missing[rng.random(rows) < 0.05 + 0.03 * s] = np.nan
    with_missing[rng.random(rows) < 0.001] = np.inf
    rating_p = (1 - 0.3 * s) * np.array([0.1, 0.15, 0.3, 0.3, 0.15]) + 0.3 * s * np.full(5, 0.2)
    return {
        "n_normal": rng.normal(0.0, 1.0, rows),
        "n_normal_shift": rng.normal(0.3 * s, 1.0, rows),
        "n_normal_small_shift": rng.normal(0.05 * s, 1.0, rows),  # below the Wasserstein threshold
        "n_normal_scale": rng.normal(0.0, 1.0 + 0.4 * s, rows),
        "n_lognormal": rng.lognormal(8.5, 0.9, rows),
        "n_lognormal_shift": rng.lognormal(8.5 + 0.2 * s, 0.9, rows),
        "n_exponential": rng.exponential(2.0, rows),
        "n_gamma_shift": rng.gamma(2.0 + 0.3 * s, 1.0, rows),
        "n_uniform": rng.uniform(0.0, 100.0, rows),
        "n_beta": rng.beta(2.0, 5.0, rows) * 100.0,
        "n_beta_shift": rng.beta(2.0 + 0.4 * s, 5.0, rows) * 100.0,
        "n_student_t": rng.standard_t(3.0, rows),
        "n_bimodal": bimodal,
        "n_pareto": rng.pareto(3.0, rows),
        "n_poisson": rng.poisson(12.0, rows),
        "n_poisson_shift": rng.poisson(12.0 + 1.0 * s, rows),
        "n_int_uniform": rng.integers(0, 1000, rows),
        "n_with_missing": with_missing,
        "n_flag": (rng.random(rows) < 0.3 + 0.15 * s).astype(np.float64),  # 2 values: Jensen-Shannon
        "n_rating": rng.choice(np.arange(1, 6), rows, p=rating_p),  # 5 values: Jensen-Shannon
    }


def _categorical(rng: np.random.Generator, rows: int, shifted: bool) -> dict[str, np.ndarray]:
    """10 string columns with Zipf-like frequencies; shifted ones mix in the reversed frequencies."""
    columns = {}
    for name, (levels, strength) in CATEGORICAL_SPEC.items():
        labels = np.array([f"{name[2:]}_{i:02d}" for i in range(levels)], dtype=object)
        base = 1.0 / np.arange(1, levels + 1) ** 0.8
        base /= base.sum()
        mix = strength if shifted else 0.0
        p = (1 - mix) * base + mix * base[::-1]
        values = rng.choice(labels, rows, p=p / p.sum())
        if name == "c_source":
            values[rng.random(rows) < 0.02] = None
        if name == "c_product" and shifted:
            unseen = rng.random(rows) < 0.03
            values[unseen] = rng.choice(
                np.array(["product_new_a", "product_new_b"], dtype=object), unseen.sum()
            )
        columns[name] = values
    return columns


def _frame(seed: int, rows: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({**_numeric(rng, rows, shifted), **_categorical(rng, rows, shifted)})


NUMERIC = list(_numeric(np.random.default_rng(0), 1, False))
CATEGORICAL = list(CATEGORICAL_SPEC)


def _our_check(
    reference_path: Path, current_path: Path, config: MonitoringConfig
) -> tuple[float, DriftReport, pd.DataFrame, pd.DataFrame]:
    """End to end: read both Parquet files and run the check. Returns seconds, report and the frames."""
    start = time.perf_counter()
    reference = pd.read_parquet(reference_path)
    current = pd.read_parquet(current_path)
    report = detect_drift(reference, current, numeric=NUMERIC, categorical=CATEGORICAL, config=config)
    return time.perf_counter() - start, report, reference, current


def _evidently(
    reference: pd.DataFrame, current: pd.DataFrame
) -> tuple[float, dict[str, EvidentlyColumn], float]:
    """Evidently's DataDriftPreset with an explicit DataDefinition: seconds, per-column results read from
    ``snapshot.dict()`` and its drifted share (as in tests/integration/test_drift_parity.py)."""
    from monitoring.evidently_report import evidently_drift  # imports Evidently: seconds

    start = time.perf_counter()
    columns, share = evidently_drift(reference, current, NUMERIC, CATEGORICAL)
    return time.perf_counter() - start, columns, share


def _disagreements(ours: DriftReport, theirs: dict[str, EvidentlyColumn]) -> list[str]:
    """One line per column whose method, threshold, verdict or score (1e-6 relative) differs."""
    lines = []
    mine = {c.column: c for c in ours.columns}
    for name in sorted(set(mine) | set(theirs)):
        if name not in mine or name not in theirs:
            lines.append(f"{name}: only in {'ours' if name in mine else 'Evidently'}")
            continue
        a, b = mine[name], theirs[name]
        same = (
            a.method == b.method
            and a.drifted == b.drifted
            and math.isclose(a.threshold, b.threshold, rel_tol=1e-12)
            and math.isclose(a.score, b.score, rel_tol=SCORE_RELATIVE_TOLERANCE)
        )
        if not same:
            lines.append(
                f"{name}: ours {a.method} {a.score:.9g} (threshold {a.threshold:g}, drifted {a.drifted}); "
                f"Evidently {b.method} {b.score:.9g} (threshold {b.threshold:g}, drifted {b.drifted})"
            )
    return lines


def _best(times: list[float]) -> str:
    return f"{min(times):.2f} s (best of {len(times)}: {', '.join(f'{t:.2f}' for t in times)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the current batch")
    parser.add_argument(
        "--evidently-rows", type=int, default=100_000, help="first rows of the batch compared with Evidently"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of our check, best of")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs (seconds)")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.evidently_rows, args.repeats = 5_000, 2_000, 1
    if not 0 < args.evidently_rows <= args.rows:
        parser.error("--evidently-rows must be between 1 and --rows")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    config = MonitoringConfig()

    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        reference_path, current_path = Path(tmp) / "reference.parquet", Path(tmp) / "current.parquet"
        start = time.perf_counter()
        _frame(args.seed, REFERENCE_ROWS, shifted=False).to_parquet(reference_path, index=False)
        _frame(args.seed + 1, args.rows, shifted=True).to_parquet(current_path, index=False)
        size_mb = current_path.stat().st_size / 2**20
        print(
            f"generated reference {REFERENCE_ROWS:,} rows, current {args.rows:,} rows x "
            f"{len(NUMERIC)} numeric + {len(CATEGORICAL)} categorical columns ({size_mb:.0f} MB Parquet) "
            f"in {time.perf_counter() - start:.1f} s"
        )

        times = []
        for _ in range(args.repeats):
            seconds, report, reference, current = _our_check(reference_path, current_path, config)
            times.append(seconds)
    methods = pd.Series([c.method for c in report.columns]).value_counts()
    print(
        f"1. our check, read_parquet (both) + detect_drift, {args.rows:,} rows: {_best(times)}; "
        f"ratio to the {TARGET_SECONDS:g} s target {min(times) / TARGET_SECONDS:.2f} "
        f"({'within' if min(times) <= TARGET_SECONDS else 'over'})"
    )
    print(
        f"   {len(report.drifted_columns)} of {len(report.columns)} columns drifted "
        f"(share {report.drifted_share:.2f}, dataset drift {report.dataset_drift}); methods: "
        + ", ".join(f"{name} {count}" for name, count in methods.items())
    )

    head = current.iloc[: args.evidently_rows].reset_index(drop=True)
    del current
    small_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours = detect_drift(reference, head, numeric=NUMERIC, categorical=CATEGORICAL, config=config)
        small_times.append(time.perf_counter() - start)
    evidently_seconds, theirs, their_share = _evidently(reference, head)
    print(
        f"2. {args.evidently_rows:,} rows: Evidently DataDriftPreset {evidently_seconds:.2f} s "
        f"(measured before: ~{EVIDENTLY_MEASURED_SECONDS:g} s at 100k), detect_drift {_best(small_times)}; "
        f"Evidently / ours {evidently_seconds / min(small_times):.0f}x"
    )

    bad = _disagreements(ours, theirs)
    if not math.isclose(ours.drifted_share, their_share, rel_tol=1e-12):
        bad.append(f"drifted share: ours {ours.drifted_share:.6g}, Evidently {their_share:.6g}")
    agree = len(ours.columns) - sum(not line.startswith("drifted share") for line in bad)
    print(
        f"3. parity at {args.evidently_rows:,} rows: {agree} of {len(ours.columns)} columns agree (method, "
        f"threshold, verdict, score to {SCORE_RELATIVE_TOLERANCE:g} relative); drifted share ours "
        f"{ours.drifted_share:.4f}, Evidently {their_share:.4f}; {len(ours.drifted_columns)} drifted"
    )
    for line in bad:
        print(f"   DISAGREE {line}")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
