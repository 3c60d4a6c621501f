"""What a finished sweep really used, and how far the estimate was from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from models.estimate.result import ResourceEstimate
from models.training.sweep import SweepResult


@dataclass(frozen=True)
class ActualUsage:
    """What a finished sweep really used, for `compare`."""

    sweep_seconds: float
    trials: int
    epochs_total: int
    train_seconds_total: float
    device: str
    resumed: bool = False  # restored from disk: `sweep_seconds` covers only this call, not the whole sweep


@dataclass(frozen=True)
class EstimateComparison:
    """Relative errors (estimate - actual) / actual of a sweep's estimate; positive: it was too high.

    NaN is the value of an error there is nothing to compute from (a measured zero, or the wall time of a
    resumed sweep), so the fields stay plain floats; the formatters below drop or mark those.
    """

    sweep_seconds_error: float  # wall time of the sweep; NaN when it was resumed
    epochs_error: float  # epochs summed over all trials
    train_seconds_error: float  # training seconds summed over all trials
    seconds_per_epoch_error: float  # estimated epoch time vs measured train seconds per epoch
    trials_error: float

    def to_dict(self) -> dict[str, float]:
        """Every error by field name, NaN included."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def finite(self) -> dict[str, float]:
        """The errors that are numbers, keyed `estimate/<name>`: MLflow metrics (which reject NaN)."""
        return {f"estimate/{name}": value for name, value in self.to_dict().items() if math.isfinite(value)}

    def to_tags(self) -> dict[str, str]:
        """Every error as an `actual.<name>` tag, `{:+.3f}`, or "n/a" where there is none."""
        return {f"actual.{name}": _format(value, "{:+.3f}") for name, value in self.to_dict().items()}

    def describe(self, name: str) -> str:
        """One error as a whole percentage for people, e.g. "+12%", or "n/a" where there is none."""
        errors = self.to_dict()
        if name not in errors:
            raise KeyError(f"no estimate error named {name!r}; known: {', '.join(errors)}")
        return _format(errors[name], "{:+.0%}")


def _format(value: float, pattern: str) -> str:
    return pattern.format(value) if math.isfinite(value) else "n/a"


def actual_from_sweep(result: SweepResult, device: str) -> ActualUsage:
    """What a finished sweep used, read from its `SweepResult`."""
    return ActualUsage(
        sweep_seconds=result.wall_seconds,
        trials=len(result.trials),
        epochs_total=sum(trial.epochs for trial in result.trials),
        train_seconds_total=sum(trial.train_seconds for trial in result.trials),
        device=device,
        resumed=result.resumed,
    )


def compare(estimate: ResourceEstimate, actual: ActualUsage) -> EstimateComparison:
    """Relative errors (estimate - actual) / actual: positive means the estimate was too high.

    NaN where there is nothing to compare: a measured zero, or the wall time of a resumed sweep (part of
    it, or all of it, ran in an earlier call). Per-trial epochs and training seconds survive a resume.
    """

    def error(estimated: float, measured: float) -> float:
        return (estimated - measured) / measured if measured else float("nan")

    estimated_train = estimate.sweep_epochs * estimate.seconds_per_epoch
    return EstimateComparison(
        sweep_seconds_error=float("nan")
        if actual.resumed
        else error(estimate.sweep_seconds, actual.sweep_seconds),
        epochs_error=error(estimate.sweep_epochs, actual.epochs_total),
        train_seconds_error=error(estimated_train, actual.train_seconds_total),
        seconds_per_epoch_error=error(
            estimate.seconds_per_epoch, actual.train_seconds_total / max(actual.epochs_total, 1)
        ),
        trials_error=error(estimate.trials, actual.trials),
    )
