"""Typed parameters of the model layer; every default of this layer lives here and only here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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


class ModelConfig(BaseModel):
    """Architecture and optimisation hyperparameters of the tabular classifier."""

    model_config = ConfigDict(extra="forbid")

    hidden_sizes: list[int] = Field(
        default_factory=lambda: [128, 64],
        min_length=1,
        description="Widths of the MLP's hidden layers; two layers suffice for typical CRM tables.",
    )
    embedding_dim: int = Field(
        default=8,
        ge=1,
        description="Cap on embedding width; a column gets min(embedding_dim, (cardinality + 1) // 2) "
        "so low-cardinality columns do not get more dimensions than levels.",
    )
    dropout: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Dropout after each hidden layer, against overfitting."
    )
    learning_rate: float = Field(default=3e-3, gt=0.0, description="AdamW step size.")
    weight_decay: float = Field(
        default=1e-5, ge=0.0, description="AdamW decoupled weight decay; small, the MLP is small."
    )
    batch_size: int = Field(
        default=512, ge=1, description="Rows per optimiser step; large enough to amortise per-step overhead."
    )
    max_epochs: int = Field(
        default=8, ge=1, description="Upper bound on epochs; early stopping usually ends sooner."
    )
    early_stopping_patience: int = Field(
        default=3, ge=1, description="Epochs without val/roc_auc improvement before training stops."
    )
    precision: Literal["auto", "32", "bf16-mixed"] = Field(
        default="auto",
        description="auto = bf16-mixed on a CUDA GPU that supports bf16 (faster, same AUC), else 32.",
    )
    accelerator: str = Field(
        default="auto", description="Lightning accelerator; auto picks the GPU when present, else CPU."
    )

    def with_overrides(self, params: dict[str, Any]) -> ModelConfig:
        """Return a validated copy with `params` applied (used by the sweep for sampled values).

        Unknown keys and invalid values raise `pydantic.ValidationError`, so a typo in a search space
        fails loudly instead of being silently ignored.
        """
        return ModelConfig.model_validate({**self.model_dump(), **params})
