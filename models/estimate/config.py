"""Typed parameters of the resource estimate: the price table and the profiling run."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DeviceSpec(BaseModel):
    """One device of the price table, with what the what-if rows need: its price, memory and sustained speed."""

    model_config = ConfigDict(extra="forbid")

    price_per_hour: float = Field(
        ge=0.0, description="Price of one such device for one hour (on-demand list price)."
    )
    memory_gb: float = Field(
        gt=0.0, description="Device memory in GB: a trial fits when its peak memory is below."
    )
    train_tflops: float = Field(
        gt=0.0,
        description="Sustained training throughput on the project's small tabular networks, in TFLOP/s (forward "
        "+ backward as `estimate` counts them), not the datasheet peak.",
    )
    step_seconds: float = Field(
        default=0.002,
        ge=0.0,
        description="Least time of one optimiser step whatever its FLOPs (kernel launches, the framework's own "
        "work): on small networks a GPU step is bound by this, not by FLOPs.",
    )
    measured: str | None = Field(
        default=None,
        description="Where and when `train_tflops` and `step_seconds` were measured (benchmarks/"
        "bench_train_throughput.py on that device); null: derived from the datasheet, shown as a projection.",
    )


def _default_devices() -> dict[str, DeviceSpec]:
    # Projections until measured: sustained TFLOP/s well below the datasheets' dense fp32/tf32 peaks (67 and
    # 30 TFLOP/s), since networks of a few hundred units per layer keep the device partly idle; a 2 ms floor per
    # step is Lightning's per-step work on a GPU.
    return {
        "nvidia h100": DeviceSpec(price_per_hour=3.00, memory_gb=80, train_tflops=20.0, step_seconds=0.002),
        "nvidia l4": DeviceSpec(price_per_hour=0.80, memory_gb=24, train_tflops=6.0, step_seconds=0.002),
    }


class EstimateConfig(BaseModel):
    """Prices and measurement settings of the pre-flight estimate (the pipeline's `estimate:` section)."""

    model_config = ConfigDict(extra="forbid")

    price_per_hour: dict[str, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=lambda: {"cpu": 0.05, "gpu": 2.50},
        description="Price of one device for one hour: 'cpu' is one CPU core-hour (cloud vCPU list price), "
        "'gpu' one GPU-hour; a lower-case torch.cuda.get_device_name() key (e.g. 'nvidia h200') overrides "
        "'gpu' for that model. Defaults are on-demand cloud list prices, enough to rank sweeps by cost.",
    )
    currency: str = Field(default="USD", min_length=1, description="Currency of the prices, shown as is.")
    profile_steps: int = Field(
        default=30,
        ge=5,
        description="Optimiser steps in the timed profiling run (after a few warm-up steps): enough to average "
        "out timer noise, few enough to take about a second on CPU.",
    )
    trial_overhead_seconds: float = Field(
        default=0.8,
        ge=0.0,
        description="Per-trial start-up outside training (actor reuse, data fetch from the object store, "
        "Trainer set-up); benchmarks/bench_sweep_overhead.py measured 0.68-0.70 s with actor reuse.",
    )
    epoch_overhead_seconds: float = Field(
        default=0.1,
        ge=0.0,
        description="Per-epoch cost inside a Tune trial that profiling cannot see: the reported checkpoint "
        "copied to trial storage and Tune's experiment-state snapshot (calibrated with bench_estimate.py).",
    )
    worker_start_seconds: float = Field(
        default=2.0,
        ge=0.0,
        description="Paid once per concurrency slot by its first trial: Ray starts its worker processes at "
        "ray.init, before the sweep's clock, so a slot's first trial pays the torch and Lightning imports; later "
        "trials reuse the actor (reuse_actors=True). bench_estimate.py at 20k rows: with 5 s the sweeps came out "
        "4 s shorter than estimated while their epochs matched the simulation's; 2 s centres them.",
    )
    devices: dict[str, DeviceSpec] = Field(
        default_factory=_default_devices,
        description="Devices the estimate projects the same sweep onto (what-if rows: time, cost, whether a trial "
        "fits its memory), keyed by lower-case torch.cuda.get_device_name(); each is marked a projection until its "
        "`measured` says where its speed was measured. Empty: no what-if rows.",
    )
    sweep_start_seconds: float = Field(
        default=6.0,
        ge=0.0,
        description="Before the sweep's trials: the local Ray runtime's start and the MLflow parent run; in the "
        "timeline's sweep phase, not in the sweep's cost (bench_estimate.py: the phase ran 6.4 s longer than the "
        "sweep itself at 20k rows on 2 cores).",
    )
    evaluation_seconds: float = Field(
        default=1.5,
        ge=0.0,
        description="Fixed part of the phase after the sweep (final model, champion comparison, bootstrap "
        "intervals, importance, plots, leakage check): calibrated with benchmarks/bench_estimate.py.",
    )
    evaluation_seconds_per_1k_rows: float = Field(
        default=0.1,
        ge=0.0,
        description="Part of that phase that grows with the table, per 1,000 rows (train + validation + test): "
        "calibrated with benchmarks/bench_estimate.py.",
    )
    registration_seconds: float = Field(
        default=1.5,
        ge=0.0,
        description="Logging the model, registering the version, its card and drift reference (calibrated with "
        "benchmarks/bench_estimate.py).",
    )
    packaging_seconds: float = Field(
        default=3.0,
        ge=0.0,
        description="Recording the decision, moving the champion and building the Bento (calibrated with "
        "benchmarks/bench_estimate.py).",
    )
    storage_price_per_gb_month: float | None = Field(
        default=None, ge=0.0, description="Object-storage price per GB-month; null = no storage cost shown."
    )

    @model_validator(mode="after")
    def _has_device_prices(self) -> EstimateConfig:
        missing = {"cpu", "gpu"} - set(self.price_per_hour)
        if missing:
            raise ValueError(f"price_per_hour needs the keys 'cpu' and 'gpu'; missing {sorted(missing)}")
        return self
