"""The resource and cost estimate as a Prefect task (pure code in the ``models.estimate`` package)."""

from __future__ import annotations

from prefect import task

from models.config import ModelConfig
from models.estimate import ResourceEstimate, estimate_resources
from models.features import FeatureTransform
from models.params import EstimateConfig, SweepConfig
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
) -> ResourceEstimate:
    """Parameters, FLOPs, memory, a measured profiling run, sweep time, storage and cost."""
    return estimate_resources(
        transform.transform(prepared.split.train),
        len(prepared.split.val),
        transform=transform,
        model=model,
        sweep=sweep,
        prices=prices,
        seed=seed,
    )
