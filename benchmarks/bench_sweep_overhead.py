"""Per-trial overhead of a Ray Tune sweep: time a trial costs beyond its own training.

Runs the same seeded 8-trial ASHA sweep (`models.training.sweep.run_sweep`) twice on about 20k rows, once with
`reuse_actors=True` (what `run_sweep` uses) and once with `reuse_actors=False` (a fresh worker process,
with its torch/Lightning imports, per trial) as the reference. Each run starts and stops its own local
Ray runtime; `ray.init` is outside the measured wall time.

Formula, per run:

    overhead per trial = (W - T / C) / N

    W  wall seconds of `Tuner.fit` (`SweepResult.wall_seconds`: scheduling, actor start-up, object-store
       fetches, checkpoint uploads, experiment-state snapshots and training)
    T  sum over trials of `TrialSummary.train_seconds` (time inside `Trainer.fit` from `on_fit_start` to
       the last reported epoch, validation included)
    C  max_concurrent_trials (trials train side by side, so T / C is the wall time training needs)
    N  number of trials

It charges to overhead any time a trial slot sits idle, so it is an upper bound on pure Ray cost.
Target: at most 2 s per trial with actor reuse.

Run: .venv/bin/python benchmarks/bench_sweep_overhead.py [--rows 20000] [--trials 8] [--epochs 4]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

from models.data.synthetic import LeadSchema, generate_leads
from models.features.config import FeatureConfig
from models.features.transform import FeatureTransform
from models.nn.config import ModelConfig
from models.training.config import SweepConfig
from models.training.sweep import SweepData, run_sweep

TARGET_SECONDS = 2.0


@dataclass(frozen=True)
class Overhead:
    wall_seconds: float
    train_seconds: float  # summed over trials
    trials: int
    concurrency: int

    @property
    def per_trial(self) -> float:
        return (self.wall_seconds - self.train_seconds / self.concurrency) / self.trials


def make_data(rows: int, seed: int) -> tuple[SweepData, FeatureTransform]:
    schema = LeadSchema()
    frame = generate_leads(rows, seed=seed)
    cut = int(rows * 0.8)
    train, val = frame.iloc[:cut], frame.iloc[cut:]
    transform = FeatureTransform.fit(
        train, FeatureConfig(numeric=list(schema.numeric), categorical=list(schema.categorical))
    )
    data = SweepData(
        train=transform.transform(train),
        y_train=train[schema.target].to_numpy(),
        val=transform.transform(val),
        y_val=val[schema.target].to_numpy(),
    )
    return data, transform


def measure(
    data: SweepData,
    transform: FeatureTransform,
    base: ModelConfig,
    sweep: SweepConfig,
    *,
    reuse_actors: bool,
    storage: Path,
    seed: int,
) -> Overhead:
    result = run_sweep(
        data,
        transform=transform,
        base=base,
        sweep=sweep,
        seed=seed,
        storage_path=storage,
        name=f"reuse-{reuse_actors}",
        reuse_actors=reuse_actors,
    )
    return Overhead(
        wall_seconds=result.wall_seconds,
        train_seconds=sum(trial.train_seconds for trial in result.trials),
        trials=len(result.trials),
        concurrency=sweep.max_concurrent_trials,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="Generated leads (80%% train, 20%% val).")
    parser.add_argument("--trials", type=int, default=8, help="Trials per sweep (num_samples).")
    parser.add_argument("--epochs", type=int, default=4, help="max_epochs, also ASHA's max_t.")
    parser.add_argument("--concurrency", type=int, default=2, help="max_concurrent_trials (1 CPU each).")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="2,000 rows, 1 trial of 1 epoch per sweep: checks that it runs",
    )
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.trials, args.epochs, args.concurrency = 2_000, 1, 1, 1

    data, transform = make_data(args.rows, args.seed)
    base = ModelConfig(max_epochs=args.epochs)
    sweep = SweepConfig.model_validate(
        {
            "num_samples": args.trials,
            "max_concurrent_trials": args.concurrency,
            "grace_period": 1,
            "reduction_factor": 2,
            "search_space": {
                "learning_rate": {"type": "loguniform", "low": 5e-4, "high": 1e-2},
                "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
                "hidden_sizes": {"type": "choice", "values": [[64, 32], [128, 64]]},
            },
        }
    )
    with tempfile.TemporaryDirectory() as storage:
        results = {
            reuse: measure(
                data, transform, base, sweep, reuse_actors=reuse, storage=Path(storage), seed=args.seed
            )
            for reuse in (True, False)
        }

    print(f"{args.trials} trials, {args.rows} rows, max {args.epochs} epochs, {args.concurrency} at a time")
    print("overhead per trial = (wall - sum(train_seconds) / concurrency) / trials")
    for reuse, overhead in results.items():
        print(
            f"reuse_actors={reuse!s:5}  wall {overhead.wall_seconds:6.1f} s  train {overhead.train_seconds:6.1f} s"
            f"  overhead {overhead.per_trial:5.2f} s/trial"
        )
    ratio = results[False].per_trial / results[True].per_trial
    verdict = "meets" if results[True].per_trial <= TARGET_SECONDS else "misses"
    print(f"reuse_actors=False / True: {ratio:.1f}x; with reuse {verdict} the {TARGET_SECONDS:.0f} s target")


if __name__ == "__main__":
    main()
