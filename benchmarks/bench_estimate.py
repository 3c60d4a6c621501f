"""Accuracy of the pre-flight sweep estimate (`models.estimate`) against the real sweep.

Generates the default synthetic leads, splits and fits features as the training pipeline does with the
default config (configs/crm_leads.yaml), estimates the sweep, then runs it (`models.training.sweep.run_sweep`,
own local Ray runtime started outside the measured wall time) and prints estimated vs actual figures.

    error = (estimate - actual) / actual        target: |sweep_seconds_error| <= 30%

The estimate is an expectation over ASHA's outcomes; one 6-trial sweep is a single draw whose epoch count
varies by about +-35% around it (the estimate's own simulation: 5th-95th percentile 23-74 epochs for the
default config). So the actual figure is the mean over `--sweeps` sweeps with different root seeds (new
trial samples and seeds, same data), and each sweep's own error is printed beside it.

Run: .venv/bin/python benchmarks/bench_estimate.py [--rows 200000] [--sweeps 3] [--architecture tabm] [--smoke]
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
from models.estimate.actual import actual_from_sweep, compare
from models.estimate.config import EstimateConfig
from models.estimate.resources import estimate_resources
from models.features.transform import FeatureTransform
from models.training.sweep import SweepData, run_sweep

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "crm_leads.yaml"
TARGET_ERROR = 0.30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="Generated leads before the split.")
    parser.add_argument("--markdown", action="store_true", help="Also print the approver's table.")
    parser.add_argument("--architecture", choices=["mlp", "tabm"], help="Override model.architecture.")
    parser.add_argument("--sweeps", type=int, default=3, help="Sweeps (root seeds) averaged for the actual.")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="3,000 rows, one sweep of 2 trials x 2 epochs, one at a time: checks that it runs",
    )
    args = parser.parse_args()
    overrides: dict[str, object] = {"model.architecture": args.architecture} if args.architecture else {}
    if args.smoke:
        args.rows, args.sweeps = 3_000, 1
        overrides.update(
            {
                "model.max_epochs": 2,
                "sweep.num_samples": 2,
                "sweep.grace_period": 1,
                "sweep.max_concurrent_trials": 1,
            }
        )

    with tempfile.TemporaryDirectory() as tmp:
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
        results = []
        try:
            for index in range(args.sweeps):
                results.append(
                    run_sweep(
                        data,
                        transform=transform,
                        base=config.model,
                        sweep=config.sweep,
                        seed=config.seed + index,
                        storage_path=Path(tmp) / "sweeps",
                        name=f"bench-estimate-{index}",
                    )
                )
        finally:
            ray.shutdown()

    actuals = [actual_from_sweep(result, estimate.device) for result in results]
    if args.markdown:
        print(estimate.to_markdown(), end="\n\n")
    print(
        f"{args.rows} rows ({len(data.y_train)} train, {len(data.y_val)} val), {estimate.trials} trials, "
        f"{estimate.concurrency} at a time, on {estimate.device} ({estimate.architecture}); estimate took "
        f"{estimate_seconds:.1f} s, CPU contention x{estimate.cpu_contention:.2f}"
    )
    for index, (result, actual) in enumerate(zip(results, actuals, strict=True)):
        error = compare(estimate, actual).sweep_seconds_error
        epochs = ", ".join(
            f"{t.params.get('hidden_sizes', t.params.get('architecture', ''))}:{t.epochs}"
            for t in result.trials
        )
        print(
            f"  sweep {index}: {actual.sweep_seconds:6.1f} s, {actual.epochs_total:3d} epochs ({epochs}); error {error:+.1%}"
        )
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    measured_epoch = mean([a.train_seconds_total / max(a.epochs_total, 1) for a in actuals])
    rows = (
        ("sweep wall seconds", estimate.sweep_seconds, mean([a.sweep_seconds for a in actuals])),
        ("epochs, all trials", estimate.sweep_epochs, mean([a.epochs_total for a in actuals])),
        (
            "train seconds, all",
            estimate.sweep_epochs * estimate.seconds_per_epoch,
            mean([a.train_seconds_total for a in actuals]),
        ),
        ("seconds per epoch", estimate.seconds_per_epoch, measured_epoch),
    )
    print(f"mean of {len(actuals)} sweeps:{'estimate':>10}{'actual':>10}{'error':>9}")
    for label, est, act in rows:
        print(f"{label:22}{est:10.2f}{act:10.2f}{(est - act) / act:+9.1%}")
    error = (rows[0][1] - rows[0][2]) / rows[0][2]
    verdict = "within" if abs(error) <= TARGET_ERROR else "outside"
    print(
        f"sweep wall time error (mean of {len(actuals)} sweeps) {error:+.1%}: {verdict} the ±{TARGET_ERROR:.0%} target"
    )


if __name__ == "__main__":
    main()
