"""Time the vectorised bootstrap against a naive per-resample sklearn loop.

Run from the repository root: ``.venv/bin/python benchmarks/bench_bootstrap.py``. The naive loop runs
fewer resamples and is scaled linearly to the same count, since its cost is one sklearn call per metric
per resample.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics

from models.evaluation.bootstrap import bootstrap_metrics
from models.evaluation.config import EvaluationConfig


@dataclass(frozen=True)
class BenchConfig:
    """Benchmark sizes; the defaults match the target of 1000 resamples of 10k rows in about a second."""

    n_rows: int = 10_000
    n_resamples: int = 1_000
    naive_resamples: int = 100  # scaled up to n_resamples; the full naive run takes tens of seconds
    repeats: int = 3  # best of, to damp scheduler noise
    seed: int = 0


@dataclass(frozen=True)
class BenchResult:
    """Wall-clock seconds for each implementation."""

    vectorised_s: float
    naive_measured_s: float
    naive_scaled_s: float

    @property
    def speedup(self) -> float:
        """How many times faster the vectorised version is than the scaled naive loop."""
        return self.naive_scaled_s / self.vectorised_s


def _data(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated synthetic scores with continuous values (no ties), like a real model's output."""
    rng = np.random.default_rng(seed)
    scores = rng.beta(2.0, 2.0, size=n_rows)
    labels = (rng.random(n_rows) < scores).astype(int)
    return labels, scores


def _naive(y: np.ndarray, s: np.ndarray, n_resamples: int, seed: int) -> None:
    """The reference: draw indices, call each sklearn metric, repeat."""
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        idx = rng.integers(0, y.size, size=y.size)
        yi, si = y[idx], s[idx]
        metrics.roc_auc_score(yi, si)
        metrics.average_precision_score(yi, si)
        metrics.log_loss(yi, si)
        metrics.brier_score_loss(yi, si)
        metrics.f1_score(yi, (si >= 0.5).astype(int))


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` wall-clock runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(cfg: BenchConfig) -> BenchResult:
    """Time both implementations on the same data."""
    y, s = _data(cfg.n_rows, cfg.seed)
    shipped = EvaluationConfig()
    options = {"threshold": shipped.threshold, "confidence": shipped.confidence}
    bootstrap_metrics(y, s, n_resamples=10, seed=cfg.seed, **options)  # warm up allocations and imports
    vectorised = _best_time(
        lambda: bootstrap_metrics(y, s, n_resamples=cfg.n_resamples, seed=cfg.seed, **options), cfg.repeats
    )
    naive = _best_time(lambda: _naive(y, s, cfg.naive_resamples, cfg.seed), 1)
    return BenchResult(vectorised, naive, naive * cfg.n_resamples / cfg.naive_resamples)


def main() -> None:
    """Parse sizes from the command line, run the benchmark and print the figures."""
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=defaults.n_rows, help="rows in the synthetic test set")
    parser.add_argument("--resamples", type=int, default=defaults.n_resamples, help="bootstrap resamples")
    parser.add_argument(
        "--naive-resamples", type=int, default=defaults.naive_resamples, help="resamples actually run naively"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed for data and resampling")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs (seconds)")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.resamples, args.naive_resamples = 2_000, 100, 10
    cfg = BenchConfig(
        n_rows=args.rows, n_resamples=args.resamples, naive_resamples=args.naive_resamples, seed=args.seed
    )
    result = run(cfg)
    print(f"rows={cfg.n_rows} resamples={cfg.n_resamples}")
    print(f"vectorised bootstrap_metrics: {result.vectorised_s:.3f} s (best of {cfg.repeats})")
    print(
        f"naive sklearn loop: {result.naive_measured_s:.3f} s for {cfg.naive_resamples} resamples, "
        f"{result.naive_scaled_s:.3f} s scaled to {cfg.n_resamples}"
    )
    print(f"speed-up: {result.speedup:.1f}x")


if __name__ == "__main__":
    main()
