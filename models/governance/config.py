"""Typed parameters of governance: the promotion policy and who decides at each approval gate."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
    leakage_needs_human: bool = Field(
        default=False,
        description="A feature flagged as possible target leakage and not in leakage.confirmed_safe makes the "
        "promotion gate ask a person whenever the policy would promote, whatever approval.promotion.mode says. "
        "Off by default: a dominant honest feature is flagged too, and a run with no Prefect server stops at "
        "a gate that needs a person.",
    )


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

    budget: GatePolicy = Field(
        default_factory=GatePolicy, description="The gate before the sweep: the resource and cost estimate."
    )
    promotion: GatePolicy = Field(
        default_factory=GatePolicy,
        description="The gate before the champion alias moves: metrics, comparison, estimate vs actual.",
    )
    timeout_seconds: int = Field(
        default=86_400, ge=10, description="A gate left undecided this long counts as rejected."
    )
    allowlist: list[str] = Field(
        default_factory=list, description="Approvers allowed to decide; empty allows anyone."
    )

    @property
    def may_need_human(self) -> bool:
        return any(g.mode != "auto" for g in (self.budget, self.promotion))
