"""Typed parameters of the resource estimate: the price table and the profiling run."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
        default=5.0,
        ge=0.0,
        description="Start of a fresh Ray worker process (Python, torch and Lightning imports) paid once per "
        "concurrency slot by its first trial; later trials reuse the actor (reuse_actors=True).",
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
