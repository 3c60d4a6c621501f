"""Typed parameters of the data layer: where the data is, how to read it, how to split it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DataConfig(BaseModel):
    """The data source, its column roles and its data contract (the expectation suite)."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(
        description="CSV or Parquet file. Relative paths are relative to the config file; "
        "${MLOPS_HOME} expands to the project home."
    )
    expectations: Path = Field(
        description="Great Expectations suite (JSON), relative to the config file; edit it by hand."
    )
    target: str = Field(min_length=1, description="Binary label column.")
    positive_class: str | int | bool = Field(
        default=1, description="Label value counted as the positive class (e.g. 1, 'Yes', true)."
    )
    id_column: str | None = Field(
        default=None, description="Unique row id: checked for uniqueness, never used as a feature."
    )
    time_column: str | None = Field(
        default=None, description="Event time; when set, the split is by time instead of random."
    )
    parse_dates: list[str] = Field(
        default_factory=list, description="Columns read as datetimes (CSV stores them as text)."
    )
    delimiter: str | None = Field(
        default=None, description="CSV delimiter; null sniffs it from the file (',' ';' tab '|')."
    )
    na_values: list[str] = Field(
        default_factory=list,
        description="Extra tokens read as missing, e.g. ' ' for blanks in an exported numeric column.",
    )

    @model_validator(mode="after")
    def _time_column_is_parsed(self) -> DataConfig:
        if self.time_column and self.time_column not in self.parse_dates:
            self.parse_dates = [*self.parse_dates, self.time_column]
        return self


class SplitConfig(BaseModel):
    """Train/validation/test split. The test split is never seen before final evaluation."""

    model_config = ConfigDict(extra="forbid")

    test_fraction: float = Field(
        default=0.2,
        gt=0.0,
        lt=0.5,
        description="Share of rows held out as the test split (final evaluation only).",
    )
    val_fraction: float = Field(
        default=0.1,
        gt=0.0,
        lt=0.5,
        description="Share of rows held out for validation (early stopping, ASHA).",
    )
    strategy: Literal["auto", "random", "time"] = Field(
        default="auto", description="auto = time-based when data.time_column is set, else random."
    )
    stratify: bool = Field(default=True, description="Keep the label rate equal across random splits.")

    cv_folds: int = Field(
        default=5,
        ge=0,
        description="Stratified K-fold cross-validation on train+validation (the test split stays untouched) "
        "of the sweep's best configurations, the baselines alike; the final model is the K fold models' "
        "ensemble. 0 = off.",
    )
    cv_max_rows: int = Field(
        default=20_000,
        ge=1,
        description="Cross-validate only below this many train+validation rows: there one validation split "
        "is noisy, and K fits are cheap; above it one split is precise enough.",
    )
    cv_top_trials: int = Field(
        default=2, ge=1, description="How many of the sweep's best trials the cross-validation re-evaluates."
    )

    @model_validator(mode="after")
    def _folds(self) -> SplitConfig:
        if self.cv_folds == 1:
            raise ValueError("cv_folds must be 0 (off) or at least 2")
        return self

    def cross_validates(self, rows: int) -> bool:
        """Whether a table with `rows` train+validation rows is cross-validated."""
        return self.cv_folds >= 2 and rows < self.cv_max_rows


class LeakageConfig(BaseModel):
    """Possible target leakage: a feature that predicts the label too well, checked by `mlops data profile` and
    again in the evaluation. Its limits are the same at both places."""

    model_config = ConfigDict(extra="forbid")

    single_feature_auc: float = Field(
        default=0.9,
        gt=0.5,
        le=1.0,
        description="A feature whose cross-validated one-feature model reaches this ROC AUC on its own is "
        "reported as possible target leakage (on the profiled table and on the training split).",
    )
    importance_share: float = Field(
        default=1 / 3,
        gt=0.0,
        le=1.0,
        description="After training, a feature carrying at least this share of the model's permutation "
        "importance (its AUC drop over the sum of all positive drops) is reported as possible leakage too.",
    )
    confirmed_safe: list[str] = Field(
        default_factory=list,
        description="Features a person has confirmed are known when the prediction is made: reported with "
        "their figures but never flagged, so they never make the promotion gate wait for a person.",
    )
    folds: int = Field(
        default=5, ge=2, le=20, description="Cross-validation folds of the one-feature models."
    )
    max_rows: int = Field(
        default=100_000,
        ge=1_000,
        description="Rows the one-feature check reads at most (a seeded sample beyond): the AUC's figure "
        "barely moves past this, and the profile stays fast on large tables.",
    )
