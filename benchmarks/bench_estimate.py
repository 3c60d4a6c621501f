"""Accuracy of the pre-flight sweep estimate (`models.estimate`) against the real sweep.

Generates the default synthetic leads, splits and fits features as the training pipeline does with the
default config (configs/crm_leads.yaml), estimates the sweep, then runs it (`models.sweep.run_sweep`,
own local Ray runtime started outside the measured wall time) and prints estimated vs actual figures.

    error = (estimate - actual) / actual        target: |sweep_seconds_error| <= 30%

Run: .venv/bin/python benchmarks/bench_estimate.py [--rows 200000] [--architecture tabm]
(`--architecture` overrides the config's, e.g. to check the estimate of TabM on a smaller table.)
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import ray

from flows.config import load_config
from models.data.split import binary_labels, split_frame
from models.data.synthetic import generate_leads
from models.estimate import EstimateConfig, actual_from_sweep, compare, estimate_resources
from models.features import FeatureTransform
from models.sweep import SweepData, run_sweep

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "crm_leads.yaml"
TARGET_ERROR = 0.30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="Generated leads before the split.")
    parser.add_argument("--markdown", action="store_true", help="Also print the approver's table.")
    parser.add_argument("--architecture", choices=["mlp", "tabm"], help="Override model.architecture.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"model.architecture": args.architecture} if args.architecture else None
        config = load_config(CONFIG, home=Path(tmp), overrides=overrides)
        frame = generate_leads(args.rows, seed=7)
        y = binary_labels(frame, config.data.target, config.data.positive_class)
        split = split_frame(
            frame, y, config=config.split, seed=config.seed, time_column=config.data.time_column
        )
        transform = FeatureTransform.fit(split.train, config.features)
        data = SweepData(
            train=transform.transform(split.train),
            y_train=binary_labels(split.train, config.data.target, config.data.positive_class),
            val=transform.transform(split.val),
            y_val=binary_labels(split.val, config.data.target, config.data.positive_class),
        )

        start = time.perf_counter()
        estimate = estimate_resources(
            data.train,
            len(data.y_val),
            transform=transform,
            model=config.model,
            sweep=config.sweep,
            prices=EstimateConfig(),
            seed=config.seed,
        )
        estimate_seconds = time.perf_counter() - start

        num_cpus = max(1, math.ceil(config.sweep.max_concurrent_trials * config.sweep.cpus_per_trial))
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        try:
            result = run_sweep(
                data,
                transform=transform,
                base=config.model,
                sweep=config.sweep,
                seed=config.seed,
                storage_path=Path(tmp) / "sweeps",
                name="bench-estimate",
            )
        finally:
            ray.shutdown()

    actual = actual_from_sweep(result, estimate.device)
    errors = compare(estimate, actual)
    if args.markdown:
        print(estimate.to_markdown(), end="\n\n")
    print(
        f"{args.rows} rows ({len(data.y_train)} train, {len(data.y_val)} val), {estimate.trials} trials, "
        f"{estimate.concurrency} at a time, on {estimate.device}; estimate took {estimate_seconds:.1f} s, "
        f"CPU contention x{estimate.cpu_contention:.2f}"
    )
    print(f"{'':22}{'estimate':>10}{'actual':>10}{'error':>9}")
    measured_epoch = actual.train_seconds_total / max(actual.epochs_total, 1)
    for label, est, act, error in (
        ("sweep wall seconds", estimate.sweep_seconds, actual.sweep_seconds, errors.sweep_seconds_error),
        ("epochs, all trials", estimate.sweep_epochs, actual.epochs_total, errors.epochs_error),
        (
            "train seconds, all",
            estimate.sweep_epochs * estimate.seconds_per_epoch,
            actual.train_seconds_total,
            errors.train_seconds_error,
        ),
        ("seconds per epoch", estimate.seconds_per_epoch, measured_epoch, errors.seconds_per_epoch_error),
    ):
        print(f"{label:22}{est:10.2f}{act:10.2f}{error:+9.1%}")
    print("per trial (params -> epochs, train s):")
    for trial in result.trials:
        print(f"  {trial.params.get('hidden_sizes')!s:12} {trial.epochs:3d} {trial.train_seconds:7.2f}")
    verdict = "within" if abs(errors.sweep_seconds_error) <= TARGET_ERROR else "outside"
    print(
        f"sweep wall time error {errors.sweep_seconds_error:+.1%}: {verdict} the ±{TARGET_ERROR:.0%} target"
    )


if __name__ == "__main__":
    main()
