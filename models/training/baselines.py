"""Baselines: the bar the deep model must clear, on the same features and the same split.

Both use the fitted ``FeatureTransform`` so their inputs are exactly the network's: a linear
model (logistic regression on scaled numerics plus one-hot categories) and gradient-boosted
trees (native categorical splits on the vocabulary indices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from models.features.transform import EncodedFeatures, FeatureTransform

# HistGradientBoosting treats a feature as categorical only below this many levels.
MAX_NATIVE_CATEGORIES = 255


@dataclass
class Baseline:
    """A fitted baseline that scores raw rows like the network does."""

    name: str
    transform: FeatureTransform
    model: LogisticRegression | HistGradientBoostingClassifier
    onehot: OneHotEncoder | None = None

    def _design(self, encoded: EncodedFeatures) -> np.ndarray:
        if self.onehot is None:
            return np.hstack([encoded.numeric, encoded.categorical.astype(np.float32)])
        return np.hstack([encoded.numeric, self.onehot.transform(encoded.categorical)])

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Positive-class probabilities, float64 [n]."""
        return self.predict_encoded(self.transform.transform(df))

    def predict_encoded(self, encoded: EncodedFeatures) -> np.ndarray:
        """Positive-class probabilities of already encoded rows, float64 [n]."""
        return self.model.predict_proba(self._design(encoded))[:, 1].astype(np.float64)


def fit_logistic(transform: FeatureTransform, train: EncodedFeatures, y: np.ndarray, seed: int) -> Baseline:
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
    onehot.fit(train.categorical if train.categorical.shape[1] else np.zeros((len(train), 0)))
    baseline = Baseline(
        "logistic_regression", transform, LogisticRegression(max_iter=1000, random_state=seed), onehot
    )
    baseline.model.fit(baseline._design(train), y)
    return baseline


def fit_boosted_trees(
    transform: FeatureTransform, train: EncodedFeatures, y: np.ndarray, seed: int
) -> Baseline:
    n_num = train.numeric.shape[1]
    categorical = [
        n_num + j for j, card in enumerate(transform.cardinalities) if card <= MAX_NATIVE_CATEGORIES
    ]
    model = HistGradientBoostingClassifier(
        categorical_features=categorical or None, early_stopping=True, random_state=seed
    )
    baseline = Baseline("gradient_boosted_trees", transform, model)
    model.fit(baseline._design(train), y)
    return baseline


def fit_baselines(
    transform: FeatureTransform, train_df: pd.DataFrame, y: np.ndarray, seed: int
) -> list[Baseline]:
    """Fit every baseline on the training split."""
    return fit_baselines_encoded(transform, transform.transform(train_df), y, seed)


def fit_baselines_encoded(
    transform: FeatureTransform, encoded: EncodedFeatures, y: np.ndarray, seed: int
) -> list[Baseline]:
    """Fit every baseline on already encoded rows (the cross-validation's folds)."""
    return [fit_logistic(transform, encoded, y, seed), fit_boosted_trees(transform, encoded, y, seed)]
