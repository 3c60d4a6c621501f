"""The drift reference a registered version carries: what "looks like the training data" means for it.

Two parts, saved as files beside each other (an MLflow artifact folder of the version's run; the version's
tag `monitoring.reference` says where):

- `features.parquet`: a seeded sample of at most `MonitoringConfig.reference_rows` rows of the training split,
  the model's raw feature columns only, in the canonical scoring schema: what data drift compares with.
- `holdout.parquet`: the calibrated scores and labels of held-out rows (the validation split), with no
  features: what prediction drift and the label-free performance estimate compare with. Training-row scores
  would be optimistic (the network has seen those rows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES_FILE = "features.parquet"
HOLDOUT_FILE = "holdout.parquet"
META_FILE = "reference.json"
SCORE = "score"
LABEL = "label"


@dataclass
class DriftReference:
    """Feature sample of the training split, and held-out scores with their labels."""

    features: pd.DataFrame  # [m, numeric + categorical] raw feature values
    numeric: list[str]
    categorical: list[str]
    holdout_scores: np.ndarray  # [h] calibrated P(label = 1) of held-out rows
    holdout_labels: np.ndarray  # [h] their 0/1 labels
    threshold: float | None  # the model's saved decision threshold, if any

    def __post_init__(self) -> None:
        missing = [c for c in [*self.numeric, *self.categorical] if c not in self.features.columns]
        assert not missing, f"reference sample lacks feature columns {missing}"
        assert len(self.holdout_scores) == len(self.holdout_labels)

    @classmethod
    def of(
        cls,
        train: pd.DataFrame,
        *,
        numeric: list[str],
        categorical: list[str],
        holdout_scores: np.ndarray,
        holdout_labels: np.ndarray,
        threshold: float | None,
        rows: int,
        seed: int,
    ) -> DriftReference:
        """Sample at most `rows` training rows (seeded, without replacement, in their original order)."""
        columns = [*numeric, *categorical]
        if len(train) > rows:
            index = np.sort(np.random.default_rng(seed).choice(len(train), size=rows, replace=False))
            train = train.iloc[index]
        return cls(
            features=train[columns].reset_index(drop=True),
            numeric=list(numeric),
            categorical=list(categorical),
            holdout_scores=np.asarray(holdout_scores, dtype=np.float64),
            holdout_labels=np.asarray(holdout_labels, dtype=np.int64),
            threshold=threshold,
        )

    def save(self, directory: Path) -> Path:
        """Write the three files into `directory` (created); returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.features.to_parquet(directory / FEATURES_FILE, index=False)
        pd.DataFrame({SCORE: self.holdout_scores, LABEL: self.holdout_labels}).to_parquet(
            directory / HOLDOUT_FILE, index=False
        )
        meta: dict[str, Any] = {
            "numeric": self.numeric,
            "categorical": self.categorical,
            "threshold": self.threshold,
            "feature_rows": len(self.features),
            "holdout_rows": len(self.holdout_scores),
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> DriftReference:
        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        holdout = pd.read_parquet(directory / HOLDOUT_FILE)
        return cls(
            features=pd.read_parquet(directory / FEATURES_FILE),
            numeric=list(meta["numeric"]),
            categorical=list(meta["categorical"]),
            holdout_scores=holdout[SCORE].to_numpy(dtype=np.float64),
            holdout_labels=holdout[LABEL].to_numpy(dtype=np.int64),
            threshold=meta["threshold"],
        )
