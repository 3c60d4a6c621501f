"""Typed parameters of the monitoring layer."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitoring.alert_routing import AlertRoutingConfig

# Evidently 0.7.23's default threshold of each stat test its DataDriftPreset can pick, keyed by the
# registry name Evidently itself accepts (`DataDriftPreset(method="wasserstein")`). Read from
# `StatTest(default_threshold=...)` in evidently/legacy/calculations/stattests/*.py (the StatTest dataclass
# defaults to 0.05, which chi-square and Z inherit). This is the one place these defaults live.
EVIDENTLY_DEFAULT_THRESHOLDS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "ks": 0.05,  # p-value
        "chisquare": 0.05,  # p-value
        "z": 0.05,  # p-value
        "wasserstein": 0.1,  # normed distance
        "jensenshannon": 0.1,  # distance
    }
)
P_VALUE_STATTESTS: Final = frozenset({"ks", "chisquare", "z"})


class MonitoringConfig(BaseModel):
    """Drift detection against the training reference."""

    model_config = ConfigDict(extra="forbid")

    stattest_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Per stat test threshold overrides, keyed by Evidently's test name "
            f"({', '.join(EVIDENTLY_DEFAULT_THRESHOLDS)}); a test left out keeps Evidently's default "
            "(0.05 for the p-values, 0.1 for the distances). Applies to every column that test is picked for."
        ),
    )
    drift_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Share of drifted feature columns at or above which the dataset drifted (Evidently's rule).",
    )
    reference_rows: int = Field(default=50_000, ge=100, description="Rows kept as the drift reference.")
    retrain_data: Path | None = Field(
        default=None,
        description="Labelled table a drift-triggered retraining reads (relative to the config file); null = "
        "data.path, which your own data pipeline refreshes. Retraining never reads the unlabelled log.",
    )
    schedule_interval_minutes: int = Field(
        default=60, ge=1, description="How often the drift-monitor deployment runs."
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description='Slack-compatible webhook (POST {"text": ...}) that Prefect automations notify on drift and '
        "when a gate starts waiting; set up by `mlops deploy`. Null: no alerts.",
    )
    alert_routing: AlertRoutingConfig = Field(
        default_factory=AlertRoutingConfig,
        description="Prometheus's scrape and rule intervals and Alertmanager's grouping of the service alerts "
        "(`mlops alerts routing`); they go to alert_webhook_url.",
    )
    dashboard_max_runs: int = Field(
        default=2000,
        ge=1,
        description="Checks kept per model in the Evidently workspace (about 150 kB each); older ones are "
        "deleted. 2000 is 83 days of hourly checks.",
    )
    retrain_cooldown_minutes: int = Field(
        default=360, ge=0, description="Minimum time between drift retrains."
    )

    @field_validator("stattest_thresholds")
    @classmethod
    def _known_tests_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(EVIDENTLY_DEFAULT_THRESHOLDS))
        if unknown:
            raise ValueError(f"unknown stat test(s) {unknown}; known: {sorted(EVIDENTLY_DEFAULT_THRESHOLDS)}")
        for name, threshold in value.items():
            if name in P_VALUE_STATTESTS and not 0.0 < threshold < 1.0:
                raise ValueError(
                    f"{name} compares a p-value: its threshold must lie in (0, 1), got {threshold}"
                )
            if threshold <= 0.0:
                raise ValueError(f"{name} compares a distance: its threshold must be > 0, got {threshold}")
        return value

    def threshold_for(self, stattest: str) -> float:
        """Threshold of one stat test: the override if configured, else Evidently's default."""
        return self.stattest_thresholds.get(stattest, EVIDENTLY_DEFAULT_THRESHOLDS[stattest])


class PredictionLogConfig(BaseModel):
    """How large the prediction log may grow: rotation by size, and the folder's retention limit."""

    model_config = ConfigDict(extra="forbid")

    max_file_mb: float = Field(
        default=64.0,
        gt=0.0,
        description="A writer's file past this size is closed and the next segment opened. A scored row is "
        "about 0.4 KB, so 64 MB holds about 160,000 rows.",
    )
    max_total_mb: float = Field(
        default=2048.0,
        gt=0.0,
        description="At each rotation the oldest files are deleted while the folder holds more than this (about "
        "5 million rows at the default): size it to hold the drift monitor's and A/B report's windows. The "
        "folder can exceed it by one open segment per writer.",
    )

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1_000_000)

    @property
    def max_total_bytes(self) -> int:
        return int(self.max_total_mb * 1_000_000)
