"""Prefect tasks of the training stage: split, features, baselines, sweep, final model.

Each wraps pure code from ``models/``; data-frame inputs are not hashed for caching (NO_CACHE):
hashing a large frame costs more than the step it would skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from prefect import get_run_logger, task

from models.data.config import DataConfig, SplitConfig
from models.data.split import DataSplit, binary_labels, split_frame
from models.evaluation.config import BusinessConfig, EvaluationConfig
from models.features.config import FeatureConfig
from models.features.store import FeatureLookup
from models.features.transform import FeatureTransform
from models.nn.config import ModelConfig
from models.seeds import Seeds
from models.training.baselines import Baseline, fit_baselines
from models.training.config import SweepConfig
from models.training.selection import FinalModel, finalize_model
from models.training.sweep import SweepData, SweepResult, run_sweep
from tasks.caching import ONCE_PER_RUN, REPLAYABLE

if TYPE_CHECKING:  # the registry's tasks load serving code: not needed by commands that only split
    from tasks.registry import LoggedSplit


@dataclass(frozen=True)
class PreparedData:
    """The split plus its labels, computed once and shared by every later step."""

    split: DataSplit
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray


@task(name="split-data", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def split_data(df, data: DataConfig, split: SplitConfig, seed: int) -> PreparedData:
    """Seeded, stratified (or time-based) split; the test part is held out until evaluation."""
    y = binary_labels(df, data.target, data.positive_class)
    parts = split_frame(df, y, config=split, seed=seed, time_column=data.time_column)
    label = lambda part: binary_labels(part, data.target, data.positive_class)  # noqa: E731
    return PreparedData(parts, label(parts.train), label(parts.val), label(parts.test))


@task(name="reuse-logged-split", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def reuse_split(logged: LoggedSplit, data: DataConfig) -> PreparedData:
    """The split a version logged, as it was: its rows are not split again, only labelled."""
    parts = DataSplit(train=logged.train, val=logged.validation, test=logged.test, strategy=logged.strategy)
    label = lambda part: binary_labels(part, data.target, data.positive_class)  # noqa: E731
    return PreparedData(parts, label(parts.train), label(parts.val), label(parts.test))


@task(name="fit-feature-transform", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def fit_transform(prepared: PreparedData, features: FeatureConfig) -> FeatureTransform:
    """Fit scaling and vocabularies on the training split only."""
    return FeatureTransform.fit(prepared.split.train, features)


@task(name="fit-baselines", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def train_baselines(
    prepared: PreparedData, transform: FeatureTransform, seed: int, evaluation: EvaluationConfig
) -> list[Baseline]:
    """The baselines ``evaluation.baselines`` names, fitted on the training split."""
    return fit_baselines(transform, prepared.split.train, prepared.y_train, seed, evaluation.baselines)


@task(name="hyperparameter-sweep", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def sweep(
    prepared: PreparedData,
    transform: FeatureTransform,
    model: ModelConfig,
    sweep_config: SweepConfig,
    *,
    seed: int,
    storage_path: Path,
    name: str,
) -> SweepResult:
    """Ray Tune sweep; a sweep of the same name found on disk (interrupted earlier) is resumed."""
    data = SweepData(
        train=transform.transform(prepared.split.train),
        y_train=prepared.y_train,
        val=transform.transform(prepared.split.val),
        y_val=prepared.y_val,
    )
    result = run_sweep(
        data,
        transform=transform,
        base=model,
        sweep=sweep_config,
        seed=seed,
        storage_path=storage_path,
        name=name,
    )
    if result.set_aside:
        get_run_logger().warning(
            "the sweep on disk could not be resumed; it was moved to %s and the sweep started over",
            result.set_aside,
        )
    return result


@task(name="finalize-model", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def finalize(
    result: SweepResult,
    prepared: PreparedData,
    transform: FeatureTransform,
    model: ModelConfig,
    split: SplitConfig,
    business: BusinessConfig | None,
    evaluation: EvaluationConfig,
    seeds: Seeds,
    lookup: FeatureLookup | None = None,
    baselines: list[Baseline] | None = None,
) -> FinalModel:
    """Cross-validate the sweep's best trials on a small table, blend with the tree baselines when that earns
    its margin (``model.ensemble``), then calibrate and set the decision threshold; with ``lookup`` (trained
    from a feature service) the model also scores by entity id through it."""
    parts = prepared.split
    final = finalize_model(
        result,
        parts.train,
        prepared.y_train,
        parts.val,
        prepared.y_val,
        transform=transform,
        model=model,
        split=split,
        business=business,
        evaluation=evaluation,
        cv_seed=seeds.cv,
        business_seed=seeds.business,
        baselines=baselines,
    )
    return final if lookup is None else final.reading(lookup)
