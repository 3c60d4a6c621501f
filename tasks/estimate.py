"""The resource and cost estimate as a Prefect task (pure code in the ``models.estimate`` package)."""

from __future__ import annotations

from prefect import task

from models.data.config import SplitConfig
from models.estimate.config import EstimateConfig
from models.estimate.resources import estimate_resources
from models.estimate.result import ResourceEstimate
from models.features.transform import FeatureTransform
from models.nn.config import ModelConfig
from models.training.config import SweepConfig
from tasks.caching import ONCE_PER_RUN, REPLAYABLE
from tasks.training import PreparedData


@task(name="estimate-resources", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def estimate(
    prepared: PreparedData,
    transform: FeatureTransform,
    model: ModelConfig,
    sweep: SweepConfig,
    prices: EstimateConfig,
    seed: int,
    split: SplitConfig | None = None,
) -> ResourceEstimate:
    """Parameters, FLOPs, memory, a measured profiling run, sweep time, storage and cost (and the
    cross-validation's time when ``split`` cross-validates this table)."""
    rows = len(prepared.split.train) + len(prepared.split.val)
    cv = split is not None and split.cross_validates(rows)
    return estimate_resources(
        transform.transform(prepared.split.train),
        len(prepared.split.val),
        transform=transform,
        model=model,
        sweep=sweep,
        prices=prices,
        seed=seed,
        cv_fits=split.cv_folds * split.cv_top_trials if cv else 0,
        cv_fit_rows=rows * (split.cv_folds - 1) // split.cv_folds if cv else 0,
        test_rows=len(prepared.split.test),
    )
