"""Typed parameters of the network and its optimisation; every default of this concept lives here."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# batch_size "auto": about this many optimiser steps per epoch, within these bounds.
AUTO_BATCH_STEPS = 64
AUTO_BATCH_MIN = 64
AUTO_BATCH_MAX = 512
# positive_weight "auto": weight positives only when they are rarer than this.
AUTO_WEIGHT_BELOW_RATE = 0.2


class ModelConfig(BaseModel):
    """Architecture and optimisation hyperparameters of the tabular classifier.

    The defaults are the recipe that held its own against gradient-boosted trees on real tables
    (TabM with piecewise-linear embeddings, AdamW with weight decay, early stopping on val AUC: on a
    7k-row churn table and a 41k-row marketing table it came within 0.001 test ROC AUC of sklearn's
    HistGradientBoosting).
    """

    model_config = ConfigDict(extra="forbid")

    architecture: Literal["mlp", "tabm"] = Field(
        default="tabm",
        description="mlp: one MLP; tabm: TabM, ensemble_size MLPs sharing their weights (BatchEnsemble), "
        "trained jointly and averaged, which regularises like an ensemble at a fraction of its cost.",
    )
    ensemble_size: int = Field(
        default=8,
        ge=2,
        le=64,
        description="TabM's members k; the paper uses 32, 8 keeps CPU training cheap at little AUC cost.",
    )
    hidden_sizes: list[int] = Field(
        default_factory=lambda: [128, 128],
        min_length=1,
        description="Widths of the hidden layers (of every member for tabm); two layers suffice for CRM tables.",
    )
    num_embedding: Literal["none", "piecewise_linear", "periodic"] = Field(
        default="piecewise_linear",
        description="How numeric columns enter the net: as is, or embedded (piecewise-linear over quantile "
        "bins, or periodic); embeddings let an MLP model the sharp, non-monotone effects trees find.",
    )
    num_embedding_dim: int = Field(default=16, ge=1, description="Width of each numeric column's embedding.")
    num_bins: int = Field(
        default=32,
        ge=2,
        description="Quantile bins of the piecewise-linear encoding (fewer where a column has fewer values).",
    )
    embedding_dim: int = Field(
        default=16,
        ge=1,
        description="Cap on a categorical column's embedding width, which otherwise grows with its "
        "cardinality as round(1.6 * cardinality^0.56) (fast.ai's rule).",
    )
    dropout: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Dropout after each hidden layer, against overfitting."
    )
    learning_rate: float = Field(default=2e-3, gt=0.0, description="AdamW peak step size.")
    weight_decay: float = Field(
        default=3e-4,
        ge=0.0,
        description="AdamW decoupled weight decay: the regulariser that matters most on small tables.",
    )
    lr_schedule: Literal["constant", "cosine"] = Field(
        default="cosine",
        description="cosine: linear warm-up over the first epoch, then cosine decay to 5% of the peak by "
        "max_epochs; lets a short run settle instead of stopping on a noisy high-LR epoch.",
    )
    batch_size: int | Literal["auto"] = Field(
        default="auto",
        description="Rows per optimiser step; auto = training rows / 64 rounded to a power of two, within "
        "64..512: enough steps per epoch on a small table, few enough per-step overheads on a large one.",
    )
    positive_weight: float | Literal["auto"] = Field(
        default="auto",
        description="Loss weight of positive rows; auto = sqrt(negatives / positives) when positives are "
        "under 20% of the training rows, else 1 (the softened inverse frequency keeps rare positives heard "
        "without swamping the negatives; calibration removes its shift of the scores).",
    )
    max_epochs: int = Field(
        default=8, ge=1, description="Upper bound on epochs; early stopping usually ends sooner."
    )
    early_stopping_patience: int = Field(
        default=3, ge=1, description="Epochs without val/roc_auc improvement before training stops."
    )
    ensemble: Literal["auto", "off", "always"] = Field(
        default="auto",
        description="Blend the network with the CatBoost and LightGBM baselines (non-negative logistic "
        "stacking on held-out predictions, calibrated after): auto = when the blend's cross-fitted held-out "
        "AUC beats the network's by more than ensemble_margin; always; off = the network alone.",
    )
    ensemble_margin: float = Field(
        default=0.001,
        ge=0.0,
        lt=0.5,
        description="Held-out ROC AUC the blend must gain over the network alone before auto picks it: "
        "a blend costs serving time and is harder to explain, so it must earn its place.",
    )
    precision: Literal["auto", "32", "bf16-mixed"] = Field(
        default="auto",
        description="auto = bf16-mixed on a CUDA GPU that supports bf16 (faster, same AUC), else 32.",
    )
    accelerator: str = Field(
        default="auto", description="Lightning accelerator; auto picks the GPU when present, else CPU."
    )

    def for_data(self, train_rows: int, positive_rate: float | None = None) -> ModelConfig:
        """This config with its data-dependent "auto" fields resolved for a training split.

        `positive_rate` None (cost estimates, which do not depend on it) resolves `positive_weight` to 1.
        """
        updates: dict[str, Any] = {}
        if self.batch_size == "auto":
            target = max(train_rows, 1) / AUTO_BATCH_STEPS
            updates["batch_size"] = int(
                min(AUTO_BATCH_MAX, max(AUTO_BATCH_MIN, 2 ** round(math.log2(target))))
            )
        if self.positive_weight == "auto":
            weight = 1.0
            if positive_rate is not None and 0 < positive_rate < AUTO_WEIGHT_BELOW_RATE:
                weight = math.sqrt((1 - positive_rate) / positive_rate)
            updates["positive_weight"] = weight
        return self.model_copy(update=updates)

    @property
    def k(self) -> int:
        """Members of the network: 1 for an MLP."""
        return self.ensemble_size if self.architecture == "tabm" else 1

    def with_overrides(self, params: dict[str, Any]) -> ModelConfig:
        """Return a validated copy with `params` applied (used by the sweep for sampled values).

        Unknown keys and invalid values raise `pydantic.ValidationError`, so a typo in a search space
        fails loudly instead of being silently ignored.
        """
        return ModelConfig.model_validate({**self.model_dump(), **params})
