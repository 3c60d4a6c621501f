"""The drift reference a registered version carries: what "looks like the training data" means for it.

Two parts, saved as files beside each other (an MLflow artifact folder of the version's run; the version's
tag `monitoring.reference` says where):

- `features.parquet`: a seeded sample of at most `MonitoringConfig.reference_rows` rows of the training split,
  the model's raw feature columns only, in the canonical scoring schema: what data drift compares with.
- `holdout.parquet`: the calibrated scores and labels of held-out rows (the validation split), with no
  features: what prediction drift and the label-free performance estimate compare with. Training-row scores
  would be optimistic (the network has seen those rows).

A few quantiles of the held-out scores also go on the version as the tag `monitoring.score_quantiles`: the
service exports them (``mlops_reference_score_quantile``) so that Prometheus can compare what it serves
with them (`reference_score_quantiles`).
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
SCORE_QUANTILES_TAG = "monitoring.score_quantiles"  # on the version: JSON {"0.1": score, ...}
# Upper bounds of the service's score histogram (``mlops_prediction_score``); the reference quantiles are read
# through the same buckets, so an unchanged distribution gives the same estimate on both sides.
SCORE_BUCKETS: tuple[float, ...] = tuple(i / 10 for i in range(1, 11))
# The quantiles exported and compared by the score-shift alert: the middle and both tails.
REFERENCE_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)


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


def reference_score_quantiles(
    scores: np.ndarray,
    quantiles: tuple[float, ...] = REFERENCE_QUANTILES,
    bounds: tuple[float, ...] = SCORE_BUCKETS,
) -> dict[str, float]:
    """The quantiles of ``scores`` as Prometheus's ``histogram_quantile`` estimates them from a histogram with
    upper bounds ``bounds``, keyed by the quantile as Prometheus writes it (``"0.5"``).

    The service's score histogram has 0.1-wide buckets: ``histogram_quantile`` interpolates linearly inside
    the bucket that holds the rank, so its estimate of a skewed distribution can miss the exact quantile by
    up to a bucket. Reading the reference through the same buckets with the same rule makes an unchanged
    distribution compare equal (up to sampling), so the alert's threshold measures a shift, not the binning.
    """
    values = np.asarray(scores, dtype=np.float64)  # [n]
    assert values.size > 0, "no scores to take quantiles of"
    edges = np.asarray(bounds, dtype=np.float64)
    # A value v counts in every bucket with v <= bound; those above the last bound only in +Inf.
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    cumulative = np.cumsum(counts)  # [len(bounds) + 1], the last is +Inf
    result: dict[str, float] = {}
    for q in quantiles:
        rank = q * values.size
        b = int(np.searchsorted(cumulative, rank, side="left"))  # first bucket whose count reaches rank
        if b >= len(edges):  # the rank falls in +Inf: Prometheus answers the last finite bound
            result[str(q)] = float(edges[-1])
            continue
        start = 0.0 if b == 0 else float(edges[b - 1])
        below = 0 if b == 0 else int(cumulative[b - 1])
        inside = int(cumulative[b]) - below
        result[str(q)] = start + (float(edges[b]) - start) * (rank - below) / inside
    return result


def parse_score_quantiles(text: str | None) -> dict[str, float] | None:
    """The quantiles of a version's `monitoring.score_quantiles` tag; None when absent or unreadable (a version
    registered before the tag existed is served, only without a reference to compare with)."""
    if not text:
        return None
    try:
        raw = json.loads(text)
        return {str(float(q)): float(v) for q, v in raw.items()}
    except (ValueError, TypeError, AttributeError):
        return None
