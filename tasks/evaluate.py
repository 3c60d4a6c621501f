"""Evaluation of the chosen model on the untouched test split, against baselines and champion.

The work is ``models.evaluation.evaluate.evaluate_model``; this module only makes it a Prefect task.
``EvaluationReport`` is re-exported because flows import it from here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from models.artifact.scorer import TabularScorer
from models.evaluation.config import BusinessConfig, EvaluationConfig
from models.evaluation.evaluate import ChampionModel, EvaluationReport, HeldOut, LeakageCheck, evaluate_model
from models.features.config import FeatureConfig
from models.seeds import Seeds
from models.training.baselines import Baseline
from tasks.caching import ONCE_PER_RUN, REPLAYABLE

__all__ = ["ChampionModel", "EvaluationReport", "evaluate"]


@task(name="evaluate-model", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def evaluate(
    scorer: TabularScorer,
    test: pd.DataFrame,
    y_test: np.ndarray,
    baselines: list[Baseline],
    champion: ChampionModel | None,
    *,
    features: FeatureConfig,
    config: EvaluationConfig,
    seeds: Seeds,
    plots_dir: Path,
    business: BusinessConfig | None = None,
    held_out: HeldOut | None = None,
    leakage: LeakageCheck | None = None,
) -> EvaluationReport:
    """Metrics with intervals, paired comparisons, calibration, slices, robustness, importance, plots,
    possible target leakage."""
    return evaluate_model(
        scorer,
        test,
        y_test,
        baselines,
        champion,
        features=features,
        config=config,
        seeds=seeds,
        plots_dir=plots_dir,
        business=business,
        held_out=held_out,
        leakage=leakage,
    )
