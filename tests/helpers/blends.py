"""A blend as the pipeline makes one, for the tests that serve, follow or compare a blend champion."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.artifact.blend import Blend, BlendMember
from models.artifact.calibrator import fit_temperature
from models.artifact.scorer import TabularScorer
from models.training.baselines import CATBOOST, LIGHTGBM, fit_baselines
from models.training.blend import NETWORK, fit_weights


def blended(
    scorer: TabularScorer, train: pd.DataFrame, val: pd.DataFrame, target: str, seed: int
) -> TabularScorer:
    """``scorer``'s network blended with CatBoost and LightGBM fitted on ``train``: weights by non-negative
    stacking on ``val``, each kept at 0.2 at least (so that every member serves whatever the fit says on
    small data), then calibrated on ``val``'s blended logits."""
    y_train, y_val = train[target].to_numpy(), val[target].to_numpy()
    trees = [
        b.tree_model()
        for b in fit_baselines(scorer.transform, train, y_train, seed=seed, names=(CATBOOST, LIGHTGBM))
    ]
    encoded = scorer.transform.transform(val)
    inputs = np.column_stack([scorer.logits(val), *(tree.margin(encoded) for tree in trees)])
    fitted = fit_weights(inputs, y_val, (NETWORK, CATBOOST, LIGHTGBM))
    weights = fitted.as_dict()
    blend = Blend(
        max(weights[NETWORK], 0.2),
        fitted.intercept,
        [BlendMember(t.kind, t.kind, max(weights[t.kind], 0.2), [t]) for t in trees],
    )
    uncalibrated = scorer.with_blend(blend, scorer.calibration)
    return scorer.with_blend(blend, fit_temperature(uncalibrated.logits(val), y_val))
