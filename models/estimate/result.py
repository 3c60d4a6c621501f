"""`ResourceEstimate`: what a sweep is expected to use, as the approver reads it (table, tags, JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from models.estimate.counts import MemoryBreakdown


@dataclass(frozen=True)
class WhatIf:
    """The same sweep projected onto one device of the price table (one such device, reserved whole)."""

    device: str  # its key in the price table, e.g. "nvidia h100"
    measured: str | None  # where its speed was measured; None: a projection from its datasheet
    concurrency: int  # trials side by side on the one device
    seconds_per_epoch: float  # mean over the architectures the sampler can pick
    sweep_seconds: float
    sweep_seconds_range: tuple[float, float]  # 90%: 5th-95th percentile of the simulated sweeps
    price_per_hour: float
    cost: float
    memory_bytes: float  # peak of the costliest trial x trials side by side
    memory_capacity_bytes: float

    @property
    def fits(self) -> bool:
        return self.memory_bytes <= self.memory_capacity_bytes


@dataclass(frozen=True)
class ResourceEstimate:
    """What a sweep is expected to use; figures per trial unless named `sweep_*` or `total_*`."""

    device: str  # "cpu" or "cuda:<device name>"
    precision: str  # Lightning precision of a trial
    hidden_sizes: list[int]  # hidden widths of the costliest architecture in the search space
    architecture: str  # that architecture in words, e.g. "TabM k=8 [128, 128] piecewise_linear"
    parameters: int
    bytes_per_parameter: int
    train_flops_per_sample: int  # forward + backward (about 3x the forward pass)
    sweep_flops: float  # training and validation FLOPs over every expected epoch of every trial
    memory: MemoryBreakdown
    samples_per_second: float  # measured training throughput (mean over profiled architectures)
    seconds_per_epoch: float  # rows / samples_per_second + validation + checkpoint, x CPU contention
    cpu_contention: float  # epoch-time stretch when the trials ask for more cores than exist (1 on GPU)
    trials: int
    concurrency: int  # trial slots actually used: min(max_concurrent_trials, trials)
    epochs_per_trial_asha: float  # large-sweep ASHA figure: 1/reduction_factor of trials survive each rung
    epochs_per_trial: float  # expected epochs per trial for this sweep (finite-trial ASHA simulation)
    seconds_per_trial: float  # trial_overhead + epochs_per_trial * seconds_per_epoch
    sweep_seconds: float  # expected wall time of the sweep
    device_hours: float  # reserved device-hours (CPU: cores per trial x slots)
    price_key: str  # which price_per_hour entry applied
    price_per_hour: float
    cost: float
    currency: str
    checkpoint_bytes: int  # Tune checkpoints kept once the sweep has finished (pruned), all trials
    checkpoint_peak_bytes: int  # while the sweep runs: one checkpoint per epoch of every trial
    artifact_bytes: int  # the registered model: weights + transform
    storage_cost_per_month: float | None
    assumptions: list[str] = field(default_factory=list)
    cv_fits: int = 0  # cross-validation fits after the sweep (small tables), 0 when off
    cv_seconds: float = 0.0  # their expected wall time, not part of sweep_seconds or cost
    sweep_seconds_range: tuple[float, float] = (0.0, 0.0)  # 90%: 5th-95th percentile of the simulated sweeps
    sweep_epochs_range: tuple[float, float] = (0.0, 0.0)  # the same for the epochs summed over all trials
    cost_range: tuple[float, float] = (0.0, 0.0)  # the cost at the two ends of the sweep's range
    sweep_start_seconds: float = 0.0  # Ray's start and the parent run before the trials (timeline only)
    evaluation_seconds: float = 0.0  # the phases after the sweep (calibrated constants, see EstimateConfig)
    registration_seconds: float = 0.0
    packaging_seconds: float = 0.0
    what_if: list[WhatIf] = field(default_factory=list)

    @property
    def sweep_epochs(self) -> float:
        return self.epochs_per_trial * self.trials

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (nested memory breakdown with its total)."""
        out = asdict(self)
        out["memory"]["total"] = self.memory.total
        out["sweep_epochs"] = self.sweep_epochs
        return out

    def to_tags(self) -> dict[str, str]:
        """Flat `estimate.*` string tags, e.g. for an MLflow run or a Prefect artifact."""
        values: dict[str, Any] = {
            "device": self.device,
            "precision": self.precision,
            "parameters": self.parameters,
            "train_flops_per_sample": self.train_flops_per_sample,
            "sweep_flops": f"{self.sweep_flops:.3g}",
            "peak_memory_bytes": self.memory.total,
            "samples_per_second": f"{self.samples_per_second:.0f}",
            "seconds_per_epoch": f"{self.seconds_per_epoch:.3f}",
            "trials": self.trials,
            "concurrency": self.concurrency,
            "epochs_per_trial": f"{self.epochs_per_trial:.2f}",
            "seconds_per_trial": f"{self.seconds_per_trial:.1f}",
            "sweep_seconds": f"{self.sweep_seconds:.1f}",
            "sweep_seconds_p05": f"{self.sweep_seconds_range[0]:.1f}",
            "sweep_seconds_p95": f"{self.sweep_seconds_range[1]:.1f}",
            "device_hours": f"{self.device_hours:.4f}",
            "cost": f"{self.cost:.4f}",
            "currency": self.currency,
            "checkpoint_bytes": self.checkpoint_bytes,
            "checkpoint_peak_bytes": self.checkpoint_peak_bytes,
            "artifact_bytes": self.artifact_bytes,
        }
        if self.storage_cost_per_month is not None:
            values["storage_cost_per_month"] = f"{self.storage_cost_per_month:.4f}"
        return {f"estimate.{key}": str(value) for key, value in values.items()}

    def to_markdown(self) -> str:
        """A table for the approver (what, estimate, unit) followed by the assumptions behind it."""
        m = self.memory
        rows = [
            ("Device", self.device, f"precision {self.precision}"),
            ("Trials (concurrent)", f"{self.trials} ({self.concurrency})", "trials"),
            ("Costliest architecture", self.architecture, "memory and FLOPs below are for it"),
            ("Parameters (largest architecture)", f"{self.parameters:,}", f"x {self.bytes_per_parameter} B"),
            ("Training FLOPs per sample", f"{self.train_flops_per_sample:,}", "FLOP"),
            ("Sweep FLOPs", f"{self.sweep_flops:.3g}", "FLOP"),
            ("Peak memory per trial", _mb(m.total), "MB"),
            (
                "  weights / gradients / AdamW state",
                f"{_mb(m.weights)} / {_mb(m.gradients)} / {_mb(m.optimizer_state)}",
                "MB",
            ),
            ("  activations (one batch) / data tensors", f"{_mb(m.activations)} / {_mb(m.data)}", "MB"),
            ("Measured training throughput", f"{self.samples_per_second:,.0f}", "samples/s"),
            (
                "Time per epoch",
                f"{self.seconds_per_epoch:.2f}",
                f"s (x{self.cpu_contention:.2f} CPU contention)",
            ),
            (
                "Epochs per trial (ASHA, this sweep)",
                f"{self.epochs_per_trial:.1f} (90%: {self.sweep_epochs_range[0] / max(self.trials, 1):.1f}-"
                f"{self.sweep_epochs_range[1] / max(self.trials, 1):.1f})",
                "epochs",
            ),
            ("Epochs per trial (ASHA, large sweep)", f"{self.epochs_per_trial_asha:.1f}", "epochs"),
            ("Time per trial", f"{self.seconds_per_trial:.1f}", "s"),
            (
                "Sweep wall time",
                f"{self.sweep_seconds:.0f} ({self.sweep_seconds / 60:.1f} min; 90%: {self.sweep_seconds_range[0]:.0f}-"
                f"{self.sweep_seconds_range[1]:.0f})",
                "s",
            ),
            *(
                [("Cross-validation after the sweep", f"{self.cv_seconds:.0f} ({self.cv_fits} fits)", "s")]
                if self.cv_fits
                else []
            ),
            ("Device-hours", f"{self.device_hours:.4f}", f"{self.price_key}-hours"),
            (
                "Compute cost",
                f"{self.cost:.4f} (90%: {self.cost_range[0]:.4f}-{self.cost_range[1]:.4f})",
                f"{self.currency} at {self.price_per_hour:g}/h",
            ),
            ("Checkpoint storage while the sweep runs", _mb(self.checkpoint_peak_bytes), "MB"),
            ("Checkpoint storage kept after it", _mb(self.checkpoint_bytes), "MB"),
            ("Model artifact", _mb(self.artifact_bytes), "MB"),
        ]
        if self.storage_cost_per_month is not None:
            rows.append(("Storage cost", f"{self.storage_cost_per_month:.6f}", f"{self.currency}/month"))
        lines = ["| What | Estimate | Unit |", "|---|---|---|"]
        lines += [f"| {what} | {value} | {unit} |" for what, value, unit in rows]
        lines += ["", "Assumptions:", *(f"- {assumption}" for assumption in self.assumptions)]
        return "\n".join(lines)

    def what_if_markdown(self) -> str:
        """The same sweep on each device of the price table: time, cost and memory fit, this machine first."""
        lines = [
            "| Device | Basis | Trials at a time | Time per epoch | Sweep wall time (90%) | Cost | Memory |",
            "|---|---|---|---|---|---|---|",
            f"| {self.device} (this run) | measured here | {self.concurrency} | {self.seconds_per_epoch:.2f} s | "
            f"{self.sweep_seconds / 60:.1f} min ({self.sweep_seconds_range[0] / 60:.1f}-"
            f"{self.sweep_seconds_range[1] / 60:.1f}) | {self.cost:.4f} {self.currency} | "
            f"{_mb(self.memory.total)} MB per trial |",
        ]
        for row in self.what_if:
            basis = f"measured ({row.measured})" if row.measured else "projection (not measured)"
            memory = (
                f"fits ({row.memory_bytes / row.memory_capacity_bytes:.1%} of {row.memory_capacity_bytes / 1e9:g} GB)"
                if row.fits
                else f"does NOT fit ({_mb(row.memory_bytes)} MB > {row.memory_capacity_bytes / 1e9:g} GB)"
            )
            lines.append(
                f"| {row.device} | {basis} | {row.concurrency} | {row.seconds_per_epoch:.2f} s | "
                f"{row.sweep_seconds / 60:.1f} min ({row.sweep_seconds_range[0] / 60:.1f}-"
                f"{row.sweep_seconds_range[1] / 60:.1f}) | {row.cost:.4f} {self.currency} at {row.price_per_hour:g}/h | "
                f"{memory} |"
            )
        return "\n".join(lines)


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.2f}"
