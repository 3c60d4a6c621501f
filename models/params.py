"""Typed parameters of the sweep, the evaluation and the promotion policy (pure ML layer)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UniformParam(_Param):
    type: Literal["uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> UniformParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class LogUniformParam(UniformParam):
    type: Literal["loguniform"]  # type: ignore[assignment]

    @model_validator(mode="after")
    def _positive(self) -> LogUniformParam:
        if self.low <= 0:
            raise ValueError(f"loguniform needs low > 0, got {self.low}")
        return self


class IntParam(_Param):
    type: Literal["int"]
    low: int
    high: int  # inclusive


class ChoiceParam(_Param):
    type: Literal["choice"]
    values: list[Any] = Field(min_length=1)


SearchParam = Annotated[UniformParam | LogUniformParam | IntParam | ChoiceParam, Field(discriminator="type")]


class SweepConfig(BaseModel):
    """Ray Tune sweep: search space over ModelConfig fields, budget and scheduler."""

    model_config = ConfigDict(extra="forbid")

    num_samples: int = Field(default=6, ge=1, description="Trials to sample.")
    max_concurrent_trials: int = Field(
        default=2, ge=1, description="Trials at once; one per CPU core on the default machine."
    )
    cpus_per_trial: float = Field(default=1.0, gt=0)
    gpus_per_trial: float = Field(default=0.0, ge=0, description="Set >0 to place trials on GPUs.")
    grace_period: int = Field(
        default=2, ge=1, description="ASHA: epochs every trial runs before it can be stopped."
    )
    reduction_factor: int = Field(default=3, ge=2, description="ASHA: keep 1/reduction_factor per rung.")
    max_failures: int = Field(
        default=1, ge=0, description="Retries of a failed trial, restarted from its last checkpoint."
    )
    time_budget_s: float | None = Field(default=None, gt=0, description="Stop the sweep after this long.")
    ray_address: str | None = Field(
        default=None,
        description="Existing Ray cluster ('auto' or host:port); RAY_ADDRESS overrides; null = local.",
    )
    search_space: dict[str, SearchParam] = Field(
        default_factory=dict, description="ModelConfig field -> distribution to sample it from."
    )


class EvaluationConfig(BaseModel):
    """How the final model is judged on the untouched test split."""

    model_config = ConfigDict(extra="forbid")

    n_bootstrap: int = Field(default=1000, ge=100, description="Resamples for confidence intervals.")
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0, description="Decision threshold for F1.")
    slice_min_count: int = Field(default=30, ge=1, description="Smaller slices get no AUC.")
    importance_repeats: int = Field(default=3, ge=1)
    max_eval_rows: int | None = Field(
        default=None, ge=1000, description="Subsample the test split for slow diagnostics."
    )


class BusinessConfig(BaseModel):
    """What a contact costs and a conversion is worth, so scores can be judged in money.

    Contacting a row costs ``cost_per_contact``; a contacted positive yields ``value_per_conversion``;
    an uncontacted row yields nothing. Value and cost have no defaults on purpose: only the business
    knows them, and the whole section is optional in a pipeline config.
    """

    model_config = ConfigDict(extra="forbid")

    value_per_conversion: float = Field(
        gt=0,
        allow_inf_nan=False,
        description="Value of one converted lead or retained customer, earned when that row is contacted.",
    )
    cost_per_contact: float = Field(
        ge=0, allow_inf_nan=False, description="Cost of one contact (call, offer, discount), paid per row."
    )
    capacity: int | None = Field(
        default=None, ge=1, description="At most this many contacts per scoring batch; null = no limit."
    )
    batch_rows: int | None = Field(
        default=None,
        ge=1,
        description="Rows in one scoring batch that capacity applies to (consecutive rows); "
        "null = the whole scored table is one batch. Needs capacity.",
    )
    currency: str = Field(default="USD", min_length=1, description="Currency of value and cost, shown as is.")

    @model_validator(mode="after")
    def _batch_needs_capacity(self) -> BusinessConfig:
        if self.batch_rows is not None and self.capacity is None:
            raise ValueError("batch_rows only applies to a capacity limit; set capacity or remove batch_rows")
        return self


class PromotionPolicy(BaseModel):
    """When a challenger may replace the champion."""

    model_config = ConfigDict(extra="forbid")

    require_beat_baseline: bool = Field(
        default=True,
        description="The challenger must hold its own against every baseline: the paired-bootstrap interval "
        "of its test AUC minus the baseline's lies above -baseline_margin (non-inferiority).",
    )
    baseline_margin: float = Field(
        default=0.005,
        ge=0.0,
        lt=0.1,
        description="Non-inferiority margin in ROC AUC: how far below a baseline the challenger's AUC may "
        "plausibly be and still count as holding its own (its interval's low end above -margin).",
    )
    require_significant_gain: bool = Field(
        default=True,
        description="Against an existing champion, the paired AUC-difference interval must be above 0.",
    )
    min_auc: float = Field(default=0.5, ge=0.0, le=1.0, description="Absolute floor on test ROC AUC.")


# What `mlops data profile` writes into a new pipeline config: a small space to edit. Architecture is
# searched because which one wins depends on the table (FACTS.md: a plain MLP won on one real table, only
# TabM with embeddings reached par on another); learning rate and weight decay matter most on small tables.
STARTER_SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "architecture": {"type": "choice", "values": ["mlp", "tabm"]},
    "learning_rate": {"type": "loguniform", "low": 0.0005, "high": 0.005},
    "weight_decay": {"type": "loguniform", "low": 0.00001, "high": 0.001},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
}


class GatePolicy(BaseModel):
    """Who decides at one approval gate."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["auto", "human", "threshold"] = Field(
        default="auto",
        description="auto: the policy decides alone; human: always a person; threshold: the policy "
        "approves when the estimated cost is under max_cost and no check failed, otherwise a person decides.",
    )
    max_cost: float | None = Field(
        default=None, ge=0, description="threshold mode: estimated sweep cost above this needs a person."
    )

    @model_validator(mode="after")
    def _threshold_needs_cost(self) -> GatePolicy:
        if self.mode == "threshold" and self.max_cost is None:
            raise ValueError("mode 'threshold' needs max_cost")
        return self


class ApprovalConfig(BaseModel):
    """The two gates: budget (before the sweep) and promotion (before the champion alias moves)."""

    model_config = ConfigDict(extra="forbid")

    budget: GatePolicy = Field(default_factory=GatePolicy)
    promotion: GatePolicy = Field(default_factory=GatePolicy)
    timeout_seconds: int = Field(
        default=86_400, ge=10, description="A gate left undecided this long counts as rejected."
    )
    allowlist: list[str] = Field(
        default_factory=list, description="Approvers allowed to decide; empty allows anyone."
    )

    @property
    def may_need_human(self) -> bool:
        return any(g.mode != "auto" for g in (self.budget, self.promotion))


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
