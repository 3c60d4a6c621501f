"""Deterministic train/validation/test splits and label extraction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.data.config import SplitConfig
from models.errors import UserInputError


@dataclass(frozen=True)
class DataSplit:
    """Three disjoint row sets; ``test`` is only touched by the final evaluation."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    strategy: str

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def binary_labels(df: pd.DataFrame, target: str, positive_class: str | int | bool) -> np.ndarray:
    """0/1 labels: 1 where the target equals ``positive_class``.

    Numbers compare as numbers (1 matches 1.0); anything else compares as text, so a YAML
    ``positive_class: 'Yes'`` matches the CSV's ``Yes``.
    """
    column = df[target]
    if pd.api.types.is_numeric_dtype(column) and isinstance(positive_class, int | float):
        labels = column.to_numpy() == positive_class
    else:
        labels = column.astype(str).to_numpy() == str(positive_class)
    if column.isna().any():
        raise UserInputError(f"target column {target!r} has {int(column.isna().sum())} missing labels")
    return labels.astype(np.int64)


def _stratified_random(y: np.ndarray, config: SplitConfig, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if config.stratify else [np.arange(len(y))]
    train, val, test = [], [], []
    for idx in groups:
        idx = rng.permutation(idx)
        n_test = int(round(len(idx) * config.test_fraction))
        n_val = int(round(len(idx) * config.val_fraction))
        test.append(idx[:n_test])
        val.append(idx[n_test : n_test + n_val])
        train.append(idx[n_test + n_val :])
    return tuple(np.sort(np.concatenate(part)) for part in (train, val, test))


def _by_time(times: pd.Series, config: SplitConfig) -> tuple[np.ndarray, ...]:
    order = np.argsort(times.to_numpy(), kind="stable")  # oldest first
    n = len(order)
    n_test = int(round(n * config.test_fraction))
    n_val = int(round(n * config.val_fraction))
    train_end = n - n_test - n_val
    return order[:train_end], order[train_end : n - n_test], order[n - n_test :]


def split_frame(
    df: pd.DataFrame, y: np.ndarray, *, config: SplitConfig, seed: int, time_column: str | None = None
) -> DataSplit:
    """Split ``df`` by time when configured (the newest rows are the test set), else at random.

    The random split is stratified by label so small positive classes are represented in each part.
    """
    strategy = config.strategy
    if strategy == "auto":
        strategy = "time" if time_column else "random"
    if strategy == "time":
        if not time_column or time_column not in df.columns:
            raise UserInputError(
                f"split.strategy is 'time' but the time column {time_column!r} is not in the data"
            )
        parts = _by_time(df[time_column], config)
    else:
        parts = _stratified_random(y, config, seed)
    train, val, test = (df.iloc[p].reset_index(drop=True) for p in parts)
    for name, part in (("train", train), ("validation", val), ("test", test)):
        if len(part) == 0:
            raise UserInputError(
                f"the {name} split is empty: {len(df)} rows are too few for the configured fractions"
            )
    return DataSplit(train=train, val=val, test=test, strategy=strategy)


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number (0..folds-1) of every row: each class dealt round-robin over the folds after a seeded
    shuffle, so folds are disjoint, cover every row, and hold each class in equal shares (within one row)."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    y = np.asarray(y)
    labels, counts = np.unique(y, return_counts=True)
    if len(y) == 0 or counts.min() < folds:
        raise UserInputError(f"a class has fewer rows than the {folds} cross-validation folds")
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(y), dtype=np.int64)
    offset = 0
    for label in labels:
        rows = rng.permutation(np.flatnonzero(y == label))
        # Continue the round-robin where the previous class stopped: fold sizes differ by at most one.
        assignment[rows] = (np.arange(len(rows)) + offset) % folds
        offset += len(rows)
    return assignment
