"""Typed parameters of the hyperparameter sweep: the search space and ASHA's budget."""

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


# What `mlops data profile` writes into a new pipeline config: a small space to edit. Architecture is
# searched because which one wins depends on the table (a plain MLP won on one real table, only TabM
# with embeddings reached par on another); learning rate and weight decay matter most on small tables.
STARTER_SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "architecture": {"type": "choice", "values": ["mlp", "tabm"]},
    "learning_rate": {"type": "loguniform", "low": 0.0005, "high": 0.005},
    "weight_decay": {"type": "loguniform", "low": 0.00001, "high": 0.001},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
}
