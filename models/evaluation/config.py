"""Typed parameters of the evaluation: bootstrap intervals and the business value model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BaselineName = Literal["logistic_regression", "gradient_boosted_trees", "catboost", "lightgbm"]


class EvaluationConfig(BaseModel):
    """How the final model is judged on the untouched test split."""

    model_config = ConfigDict(extra="forbid")

    n_bootstrap: int = Field(default=1000, ge=100, description="Resamples for confidence intervals.")
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1.0, description="Level of the bootstrap confidence intervals."
    )
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0, description="Decision threshold for F1.")
    slice_min_count: int = Field(default=30, ge=1, description="Smaller slices get no AUC.")
    importance_repeats: int = Field(
        default=3, ge=1, description="Shuffles per column in permutation importance, averaged."
    )
    max_eval_rows: int | None = Field(
        default=None, ge=1000, description="Subsample the test split for slow diagnostics."
    )
    baselines: list[BaselineName] = Field(
        default_factory=lambda: ["logistic_regression", "gradient_boosted_trees", "catboost", "lightgbm"],
        min_length=1,
        description="Baselines fitted beside the network on the same rows and folds (the promotion's bar is "
        "the strongest): logistic_regression, gradient_boosted_trees (scikit-learn's), catboost and lightgbm "
        "(early-stopped on an inner split); the last two are also the blend's members (model.ensemble).",
    )

    @field_validator("baselines")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError(f"baselines lists a name twice: {names}")
        return names


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
