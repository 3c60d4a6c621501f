"""Typed parameters of the feature transform: which columns the model uses, how rare categories are treated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FeatureConfig(BaseModel):
    """Which input columns the model uses and how rare categories are treated."""

    model_config = ConfigDict(extra="forbid")

    numeric: list[str] = Field(
        default_factory=list,
        description="Numeric columns: median-imputed and standardised with training statistics.",
    )
    categorical: list[str] = Field(
        default_factory=list,
        description="Categorical columns: cast to str and embedded; one embedding table per column.",
    )
    log_transform_skewed: bool = Field(
        default=True,
        description="log1p-scale numeric columns that are never negative and strongly right-skewed "
        "(amounts, sizes, counts) before standardising, so a heavy tail does not squeeze most rows together.",
    )
    min_category_count: int = Field(
        default=1,
        ge=1,
        description="Values seen fewer times in training map to the unknown bucket, so rare levels "
        "do not get embeddings trained on a handful of rows.",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Columns of the table left out on purpose (identifiers other than data.id_column, free "
        "text, constant columns): never features. Listed so the config says what happened to every column; "
        "a column both here and among the features is an error.",
    )

    @model_validator(mode="after")
    def _excluded_are_not_features(self) -> FeatureConfig:
        both = sorted(set(self.exclude) & {*self.numeric, *self.categorical})
        if both:
            raise ValueError(f"exclude: {both} also listed as features; keep each column in one place")
        return self
