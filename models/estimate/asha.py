"""ASHA's expected trial lengths and the sweep's wall time: the large-sweep formula and a simulation."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

# The interval shown beside the expected sweep: the 5th and 95th percentiles of the simulated sweeps.
INTERVAL_PERCENTILES = (5.0, 95.0)


@dataclass(frozen=True)
class AshaOutcome:
    """Expected trial lengths and sweep wall time from simulating ASHA, with their 90% ranges.

    The ranges are the 5th-95th percentiles over the simulated sweeps: how far one sweep can fall from the
    mean when ASHA lets more or fewer trials through, which a single figure cannot carry.
    """

    epochs_per_trial: float
    sweep_seconds: float
    sweep_seconds_range: tuple[float, float] = (0.0, 0.0)
    sweep_epochs_range: tuple[float, float] = (0.0, 0.0)  # epochs summed over the sweep's trials


def asha_rungs(grace_period: int, reduction_factor: int, max_t: int) -> list[int]:
    """Milestones where ASHA may stop a trial: grace * r^k below max_t (as Ray's `_Bracket` builds them)."""
    if grace_period >= max_t:
        return []
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return [m for m in (grace_period * reduction_factor**k for k in range(count)) if m < max_t]


def asha_expected_epochs(grace_period: int, reduction_factor: int, max_t: int) -> float:
    """Mean epochs per trial in a large sweep: every trial runs to the first rung, 1/r of them pass each.

    sum over segments [m_k, m_{k+1}) of (m_{k+1} - m_k) * r^-k, with m_0 = 0 and the last segment ending at
    max_t. Early stopping can end trials sooner, so this is an upper bound for a given survival rate.
    """
    bounds = [0, *asha_rungs(grace_period, reduction_factor, max_t), max_t]
    return sum(
        (b - a) * reduction_factor**-k for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    )


def simulate_asha(
    epoch_seconds: list[float],
    *,
    trials: int,
    concurrency: int,
    grace_period: int,
    reduction_factor: int,
    max_t: int,
    trial_overhead_seconds: float,
    worker_start_seconds: float,
    seed: int,
    patience: int | None = None,
    simulations: int = 400,
) -> AshaOutcome:
    """Expected epochs per trial and sweep wall time of asynchronous successive halving, by simulation.

    Why simulate: in a small sweep ASHA lets far more than 1/r of the trials through, because a trial
    reaching a rung is only compared with the trials that reached it before (the first always passes), and
    the slot schedule (who finishes when) decides that order. The model mirrors Ray's `_Bracket`: trials
    start in order on `concurrency` slots (the first on each slot after `worker_start_seconds`), each pays
    `trial_overhead_seconds` then one epoch per
    `epoch_seconds` (drawn uniformly from the list: one entry per architecture the sampler can pick); at a
    rung a trial stops when its score is below the (1 - 1/r) percentile of the scores recorded there
    earlier. Scores are a fixed per-trial quality (learning curves do not cross). Early stopping with
    ``patience``: each trial's validation metric peaks at an epoch drawn uniformly from 1..max_t and the
    trial stops ``patience`` epochs later (or at max_t); without it trials that pass every rung run to
    max_t, an upper bound.
    """
    rungs = asha_rungs(grace_period, reduction_factor, max_t)
    rng = np.random.default_rng(seed)
    choices = np.asarray(epoch_seconds, dtype=float)
    epochs_by_run = np.empty(simulations)
    walls = np.empty(simulations)
    for run in range(simulations):
        peak = rng.integers(1, max_t + 1, size=trials)
        epochs, wall = _simulate_once(
            quality=rng.random(trials),
            seconds=rng.choice(choices, size=trials),
            limits=np.minimum(peak + patience, max_t) if patience is not None else np.full(trials, max_t),
            concurrency=concurrency,
            rungs=rungs,
            reduction_factor=reduction_factor,
            max_t=max_t,
            trial_overhead_seconds=trial_overhead_seconds,
            worker_start_seconds=worker_start_seconds,
        )
        epochs_by_run[run], walls[run] = epochs, wall
    low, high = INTERVAL_PERCENTILES
    return AshaOutcome(
        epochs_per_trial=float(epochs_by_run.mean()) / trials,
        sweep_seconds=float(walls.mean()),
        sweep_seconds_range=(float(np.percentile(walls, low)), float(np.percentile(walls, high))),
        sweep_epochs_range=(
            float(np.percentile(epochs_by_run, low)),
            float(np.percentile(epochs_by_run, high)),
        ),
    )


def _simulate_once(
    *,
    quality: np.ndarray,
    seconds: np.ndarray,
    limits: np.ndarray,
    concurrency: int,
    rungs: list[int],
    reduction_factor: int,
    max_t: int,
    trial_overhead_seconds: float,
    worker_start_seconds: float,
) -> tuple[int, float]:
    """One ASHA run: (epochs summed over trials, wall seconds until the last trial ends)."""
    trials = len(quality)
    recorded: dict[int, list[float]] = {m: [] for m in rungs}
    events: list[tuple[float, int, int]] = []  # (report time, trial, epoch), popped in time order
    for trial in range(min(concurrency, trials)):
        heapq.heappush(events, (worker_start_seconds + trial_overhead_seconds + seconds[trial], trial, 1))
    next_trial = min(concurrency, trials)
    epochs_total, end = 0, 0.0
    while events:
        now, trial, epoch = heapq.heappop(events)
        stop = epoch >= limits[trial]
        earlier = recorded.get(epoch)
        if earlier is not None:
            cutoff = np.percentile(earlier, (1 - 1 / reduction_factor) * 100) if earlier else None
            stop = stop or (cutoff is not None and quality[trial] < cutoff)
            earlier.append(float(quality[trial]))
        if not stop:
            heapq.heappush(events, (now + seconds[trial], trial, epoch + 1))
            continue
        epochs_total += epoch
        end = max(end, now)
        if next_trial < trials:  # the freed slot starts the next trial
            heapq.heappush(events, (now + trial_overhead_seconds + seconds[next_trial], next_trial, 1))
            next_trial += 1
    return epochs_total, end
