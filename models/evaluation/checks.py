"""Input checks shared by every evaluation function, so each one fails early with the same clear message."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_labels(y_true: Any, name: str = "y_true") -> np.ndarray:
    """Return labels as a 1-D float array of 0/1, raising a clear error for anything else."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} is empty")
    if y.dtype == bool:
        return y.astype(np.float64)
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"{name} must be numeric 0/1 labels, got dtype {y.dtype}")
    values = np.unique(y)
    if not np.isin(values, (0, 1)).all():
        shown = values[:10].tolist()
        raise ValueError(f"{name} must be binary with labels 0 and 1, got values {shown}")
    return y.astype(np.float64)


def as_scores(y_score: Any, n: int, name: str = "y_score") -> np.ndarray:
    """Return scores as a 1-D float array of probabilities in [0, 1] with length ``n``."""
    s = np.asarray(y_score, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"{name} must be 1-D positive-class probabilities, got shape {s.shape}")
    if s.shape[0] != n:
        raise ValueError(f"length mismatch: y_true has {n} rows but {name} has {s.shape[0]}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if s.min() < 0.0 or s.max() > 1.0:
        raise ValueError(
            f"{name} must be probabilities in [0, 1] (log loss and Brier score need them), "
            f"got range [{s.min():.4g}, {s.max():.4g}]"
        )
    return s


def require_both_classes(y: np.ndarray) -> None:
    """ROC AUC and average precision are undefined with one class; say so up front."""
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(
            f"y_true contains a single class ({n_pos} positives of {y.size}); ROC AUC is undefined"
        )
