"""Typed parameters of the hyperparameter sweep: the search space and ASHA's budget."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UniformParam(_Param):
    """A real drawn evenly between low and high."""

    type: Literal["uniform"] = Field(description="uniform: a real drawn evenly between low and high.")
    low: float = Field(description="Lower end of the range.")
    high: float = Field(description="Upper end of the range; above low.")

    @model_validator(mode="after")
    def _ordered(self) -> UniformParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class LogUniformParam(UniformParam):
    """A positive real whose logarithm is drawn evenly: as likely in [1e-4, 1e-3] as in [1e-3, 1e-2]."""

    type: Literal["loguniform"] = Field(  # type: ignore[assignment]
        description="loguniform: a positive real whose logarithm is drawn evenly (learning rates, decays)."
    )

    @model_validator(mode="after")
    def _positive(self) -> LogUniformParam:
        if self.low <= 0:
            raise ValueError(f"loguniform needs low > 0, got {self.low}")
        return self


class IntParam(_Param):
    """An integer drawn evenly from low to high, both included."""

    type: Literal["int"] = Field(description="int: an integer drawn evenly from low to high, both included.")
    low: int = Field(description="Smallest integer drawn.")
    high: int = Field(description="Largest integer drawn (inclusive).")


class ChoiceParam(_Param):
    """One of a list of values, each equally likely."""

    type: Literal["choice"] = Field(description="choice: one of values, each equally likely.")
    values: list[Any] = Field(
        min_length=1, description="The values to choose from (any YAML value, lists too)."
    )


SearchParam = Annotated[UniformParam | LogUniformParam | IntParam | ChoiceParam, Field(discriminator="type")]


class SweepConfig(BaseModel):
    """Ray Tune sweep: search space over ModelConfig fields, budget and scheduler."""

    model_config = ConfigDict(extra="forbid")

    num_samples: int = Field(default=6, ge=1, description="Trials to sample.")
    max_concurrent_trials: int = Field(
        default=2, ge=1, description="Trials at once; one per CPU core on the default machine."
    )
    cpus_per_trial: float = Field(default=1.0, gt=0, description="CPU cores Ray reserves for each trial.")
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


# What `mlops data profile` writes into a new pipeline config: a small space to edit. Architecture is
# searched because which one wins depends on the table (a plain MLP won on one real table, only TabM
# with embeddings reached par on another); learning rate and weight decay matter most on small tables.
STARTER_SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "architecture": {"type": "choice", "values": ["mlp", "tabm"]},
    "learning_rate": {"type": "loguniform", "low": 0.0005, "high": 0.005},
    "weight_decay": {"type": "loguniform", "low": 0.00001, "high": 0.001},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
}
