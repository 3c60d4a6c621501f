"""Baselines: the bar the deep model must clear, on the same features and the same split.

All use the fitted ``FeatureTransform`` so their inputs are exactly the network's: a linear model (logistic
regression on scaled numerics plus one-hot categories), scikit-learn's gradient-boosted trees with defaults,
and the two gradient-boosted tree libraries a user would reach for on a table, CatBoost and LightGBM (native
categorical handling on the vocabulary indices). Those two stop early on an inner split of the rows they are
fitted on (``EARLY_STOPPING_SHARE`` of them, stratified and seeded), never on the rows that score them: the
validation or test split, or a cross-validation's held-out fold. Each baseline records its fit time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder

from models.artifact.blend import TreeModel, catboost_frame, tree_matrix
from models.features.transform import EncodedFeatures, FeatureTransform

# HistGradientBoosting treats a feature as categorical only below this many levels.
MAX_NATIVE_CATEGORIES = 255
# CatBoost and LightGBM: the share of their fit rows held out for early stopping, the rounds without
# improvement of the held-out log loss before they stop, and the most rounds they may take.
EARLY_STOPPING_SHARE = 0.15
EARLY_STOPPING_ROUNDS = 50
MAX_ROUNDS = 2000
LOGISTIC, SKLEARN_TREES, CATBOOST, LIGHTGBM = (
    "logistic_regression",
    "gradient_boosted_trees",
    "catboost",
    "lightgbm",
)
BASELINES = (LOGISTIC, SKLEARN_TREES, CATBOOST, LIGHTGBM)


@dataclass
class Baseline:
    """A fitted baseline that scores raw rows like the network does."""

    name: str
    transform: FeatureTransform
    model: Any  # a fitted classifier with predict_proba over `_design`'s matrix
    onehot: OneHotEncoder | None = None
    fit_seconds: float = 0.0  # wall time of the fit (early stopping included)
    rounds: int | None = None  # boosting rounds kept after early stopping (CatBoost, LightGBM)

    def _design(self, encoded: EncodedFeatures) -> np.ndarray | pd.DataFrame:
        if self.name == CATBOOST:
            return catboost_frame(encoded)
        if self.onehot is None:
            return tree_matrix(encoded)
        return np.hstack([encoded.numeric, self.onehot.transform(encoded.categorical)])

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Positive-class probabilities, float64 [n]."""
        return self.predict_encoded(self.transform.transform(df))

    def predict_encoded(self, encoded: EncodedFeatures) -> np.ndarray:
        """Positive-class probabilities of already encoded rows, float64 [n]."""
        return self.model.predict_proba(self._design(encoded))[:, 1].astype(np.float64)

    def tree_model(self) -> TreeModel | None:
        """The fitted CatBoost or LightGBM model as a blend member scores it (raw margins); None for the
        others (they are never blended)."""
        if self.name == CATBOOST:
            return TreeModel("catboost", self.model)
        if self.name == LIGHTGBM:
            return TreeModel("lightgbm", self.model.booster_)
        return None


def _timed(fit: Callable[[], Baseline]) -> Baseline:
    started = time.perf_counter()
    baseline = fit()
    baseline.fit_seconds = time.perf_counter() - started
    return baseline


def _inner_split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices to fit on and to stop early on: a stratified, seeded share of the fit rows."""
    rows = np.arange(len(y))
    stratify = y if min(np.bincount(y.astype(np.int64), minlength=2)) >= 2 else None
    fit, stop = train_test_split(rows, test_size=EARLY_STOPPING_SHARE, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(stop)


def _rows(encoded: EncodedFeatures, index: np.ndarray) -> EncodedFeatures:
    return EncodedFeatures(numeric=encoded.numeric[index], categorical=encoded.categorical[index])


def fit_logistic(transform: FeatureTransform, train: EncodedFeatures, y: np.ndarray, seed: int) -> Baseline:
    def fit() -> Baseline:
        onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
        onehot.fit(train.categorical if train.categorical.shape[1] else np.zeros((len(train), 0)))
        baseline = Baseline(LOGISTIC, transform, LogisticRegression(max_iter=1000, random_state=seed), onehot)
        baseline.model.fit(baseline._design(train), y)
        return baseline

    return _timed(fit)


def fit_boosted_trees(
    transform: FeatureTransform, train: EncodedFeatures, y: np.ndarray, seed: int
) -> Baseline:
    """scikit-learn's HistGradientBoosting with its defaults (its own early stopping on a 10% split of the
    fit rows above 10,000 of them)."""

    def fit() -> Baseline:
        n_num = train.numeric.shape[1]
        categorical = [
            n_num + j for j, card in enumerate(transform.cardinalities) if card <= MAX_NATIVE_CATEGORIES
        ]
        model = HistGradientBoostingClassifier(
            categorical_features=categorical or None, early_stopping=True, random_state=seed
        )
        baseline = Baseline(SKLEARN_TREES, transform, model)
        model.fit(baseline._design(train), y)
        return baseline

    return _timed(fit)


def fit_catboost(transform: FeatureTransform, train: EncodedFeatures, y: np.ndarray, seed: int) -> Baseline:
    """CatBoost with its defaults (ordered target statistics on the categorical columns), stopped early on
    the held-out log loss of an inner split, keeping its best round."""
    from catboost import CatBoostClassifier

    def fit() -> Baseline:
        fit_rows, stop_rows = _inner_split(y, seed)
        n_num = train.numeric.shape[1]
        model = CatBoostClassifier(
            iterations=MAX_ROUNDS,
            random_seed=seed,
            od_type="Iter",
            od_wait=EARLY_STOPPING_ROUNDS,
            use_best_model=True,
            cat_features=list(range(n_num, n_num + train.categorical.shape[1])),
            allow_writing_files=False,
            verbose=False,
        )
        baseline = Baseline(CATBOOST, transform, model)
        model.fit(
            baseline._design(_rows(train, fit_rows)),
            y[fit_rows],
            eval_set=(baseline._design(_rows(train, stop_rows)), y[stop_rows]),
        )
        baseline.rounds = int(model.get_best_iteration()) + 1
        return baseline

    return _timed(fit)


def fit_lightgbm(transform: FeatureTransform, train: EncodedFeatures, y: np.ndarray, seed: int) -> Baseline:
    """LightGBM with its defaults (categorical splits on the vocabulary indices), stopped early on the
    held-out log loss of an inner split, keeping its best round."""
    import lightgbm

    def fit() -> Baseline:
        fit_rows, stop_rows = _inner_split(y, seed)
        n_num = train.numeric.shape[1]
        model = lightgbm.LGBMClassifier(n_estimators=MAX_ROUNDS, random_state=seed, verbose=-1)
        baseline = Baseline(LIGHTGBM, transform, model)
        categorical = list(range(n_num, n_num + train.categorical.shape[1]))
        model.fit(
            baseline._design(_rows(train, fit_rows)),
            y[fit_rows],
            eval_X=baseline._design(_rows(train, stop_rows)),
            eval_y=y[stop_rows],
            categorical_feature=categorical or "auto",
            callbacks=[lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
        )
        baseline.rounds = int(model.best_iteration_ or model.n_estimators)
        return baseline

    return _timed(fit)


FITTERS = {
    LOGISTIC: fit_logistic,
    SKLEARN_TREES: fit_boosted_trees,
    CATBOOST: fit_catboost,
    LIGHTGBM: fit_lightgbm,
}


def fit_baselines(
    transform: FeatureTransform,
    train_df: pd.DataFrame,
    y: np.ndarray,
    seed: int,
    names: tuple[str, ...] | list[str] = BASELINES,
) -> list[Baseline]:
    """Fit every baseline named (all by default) on the training split."""
    return fit_baselines_encoded(transform, transform.transform(train_df), y, seed, names)


def fit_baselines_encoded(
    transform: FeatureTransform,
    encoded: EncodedFeatures,
    y: np.ndarray,
    seed: int,
    names: tuple[str, ...] | list[str] = BASELINES,
) -> list[Baseline]:
    """Fit every baseline named (all by default) on already encoded rows (the cross-validation's folds)."""
    return [FITTERS[name](transform, encoded, y, seed) for name in names]
