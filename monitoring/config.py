"""Typed parameters of the monitoring layer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MonitoringConfig(BaseModel):
    """Drift detection against the training reference."""

    model_config = ConfigDict(extra="forbid")

    drift_threshold: float = Field(
        default=0.1,
        gt=0.0,
        description="Per-column distance above which a column drifted (Evidently's default).",
    )
    drift_share: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Share of drifted columns that makes the dataset drifted."
    )
    reference_rows: int = Field(default=50_000, ge=100, description="Rows kept as the drift reference.")
    schedule_interval_minutes: int = Field(default=60, ge=1)
    retrain_cooldown_minutes: int = Field(
        default=360, ge=0, description="Minimum time between drift retrains."
    )
