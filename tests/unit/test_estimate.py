"""Pre-flight sweep estimate: analytic figures, ASHA model, profiling run, report formats, config."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pandas as pd
import pydantic
import pytest

from models.config import FeatureConfig, ModelConfig
from models.estimate import (
    ActualUsage,
    EstimateConfig,
    ResourceEstimate,
    actual_from_sweep,
    asha_expected_epochs,
    asha_rungs,
    compare,
    device_price,
    estimate_resources,
    forward_flops_per_sample,
    memory_breakdown,
    parameter_count,
    profile_training,
    simulate_asha,
    train_flops_per_sample,
)
from models.features import EncodedFeatures, FeatureTransform
from models.network import TabularNet
from models.params import SweepConfig
from models.sweep import SweepResult, TrialSummary

SPEC = FeatureConfig(numeric=["tenure", "spend", "visits"], categorical=["plan", "region"])
# Shrunken for tests: small batches and a short profile keep the measured run well under a second.
MODEL = ModelConfig(hidden_sizes=[32, 16], batch_size=64, max_epochs=6)
PRICES = EstimateConfig(profile_steps=5)
SWEEP = SweepConfig.model_validate(
    {
        "num_samples": 4,
        "max_concurrent_trials": 2,
        "grace_period": 1,
        "reduction_factor": 2,
        "search_space": {"hidden_sizes": {"type": "choice", "values": [[16], [32, 16]]}},
    }
)


@pytest.fixture(scope="module")
def transform_and_train() -> tuple[FeatureTransform, EncodedFeatures]:
    rng = np.random.default_rng(3)
    rows = 1_500
    frame = pd.DataFrame(
        {
            "tenure": rng.normal(size=rows),
            "spend": rng.exponential(size=rows),
            "visits": rng.poisson(3, size=rows).astype(float),
            "plan": rng.choice(["basic", "plus", "pro"], size=rows),
            "region": rng.choice(list("nsewxyz"), size=rows),
        }
    )
    transform = FeatureTransform.fit(frame, SPEC)
    return transform, transform.transform(frame)


@pytest.fixture(scope="module")
def estimate(transform_and_train: tuple[FeatureTransform, EncodedFeatures]) -> ResourceEstimate:
    transform, train = transform_and_train
    return estimate_resources(
        train, 300, transform=transform, model=MODEL, sweep=SWEEP, prices=PRICES, seed=7
    )


def test_parameter_count_matches_real_network(transform_and_train) -> None:
    transform, _ = transform_and_train
    for model in (MODEL, MODEL.with_overrides({"hidden_sizes": [256, 128, 8], "embedding_dim": 2})):
        net = TabularNet(
            transform.n_numeric,
            transform.cardinalities,
            model.hidden_sizes,
            model.embedding_dim,
            model.dropout,
        )
        assert parameter_count(transform.n_numeric, transform.cardinalities, model) == sum(
            p.numel() for p in net.parameters()
        )


def test_flops_of_a_tiny_known_net() -> None:
    # 3 numerics, no categoricals, one hidden layer of 4: Linear(3, 4) + Linear(4, 1) = 12 + 4 MACs.
    model = ModelConfig(hidden_sizes=[4])
    assert forward_flops_per_sample(3, [], model) == 2 * 16
    assert train_flops_per_sample(3, [], model) == 3 * 2 * 16


def test_memory_breakdown_adds_up() -> None:
    memory = memory_breakdown(3, [5, 6], MODEL, train_rows=1000, val_rows=200, activation_bytes=4)
    params = parameter_count(3, [5, 6], MODEL)
    assert memory.weights == memory.gradients == params * 4
    assert memory.optimizer_state == 2 * memory.weights
    assert memory.activations > 0 and memory.data > 0
    assert memory.total == (
        memory.weights + memory.gradients + memory.optimizer_state + memory.activations + memory.data
    )
    # Row bytes 3 x fp32 + 2 x int64 + fp32 label; training data is held twice (the epoch's shuffle).
    assert memory.data == (2 * 1000 + 200) * (3 * 4 + 2 * 8 + 4)


def test_asha_epochs_without_and_with_rungs() -> None:
    assert asha_rungs(2, 3, 20) == [2, 6, 18]
    assert asha_expected_epochs(8, 3, 8) == 8  # grace = max_t: no rung, every trial runs max_t
    expected = 2 + (6 - 2) / 3 + (18 - 6) / 9 + (20 - 18) / 27
    assert asha_expected_epochs(2, 3, 20) == pytest.approx(expected)
    # r = 2: rungs 1, 2, 4 keep half each (1 + 1/2 + 2/4 + 4/8); r = 3 cuts harder (1 + 2/3 + 5/9).
    assert asha_expected_epochs(1, 2, 8) == pytest.approx(2.5)
    assert asha_expected_epochs(1, 3, 8) == pytest.approx(1 + 2 / 3 + 5 / 9)


def test_simulated_asha_bounds() -> None:
    common = {"epoch_seconds": [1.0], "trial_overhead_seconds": 0.0, "worker_start_seconds": 0.0, "seed": 0}
    full = simulate_asha(trials=6, concurrency=2, grace_period=8, reduction_factor=3, max_t=8, **common)
    assert full.epochs_per_trial == 8
    halved = simulate_asha(trials=6, concurrency=2, grace_period=2, reduction_factor=3, max_t=20, **common)
    # A small sweep lets more trials through than the large-sweep 1/r figure, but fewer than all.
    assert asha_expected_epochs(2, 3, 20) < halved.epochs_per_trial < 20
    huge = simulate_asha(
        trials=300, concurrency=2, grace_period=2, reduction_factor=3, max_t=20, simulations=5, **common
    )
    assert huge.epochs_per_trial == pytest.approx(asha_expected_epochs(2, 3, 20), rel=0.2)


def test_concurrency_halves_wall_time() -> None:
    common = {
        "epoch_seconds": [1.5],
        "trials": 4,
        "grace_period": 5,
        "reduction_factor": 2,
        "max_t": 5,
        "trial_overhead_seconds": 1.0,
        "worker_start_seconds": 0.0,
        "seed": 0,
    }
    one = simulate_asha(concurrency=1, **common)
    two = simulate_asha(concurrency=2, **common)
    assert one.sweep_seconds == pytest.approx(4 * (1.0 + 5 * 1.5))
    assert two.sweep_seconds == pytest.approx(one.sweep_seconds / 2)


def test_cost_is_hours_times_price_of_the_device(estimate: ResourceEstimate) -> None:
    assert estimate.device == "cpu" and estimate.price_key == "cpu"
    cores = SWEEP.cpus_per_trial * estimate.concurrency
    assert estimate.device_hours == pytest.approx(estimate.sweep_seconds / 3600 * cores)
    assert estimate.cost == pytest.approx(estimate.device_hours * PRICES.price_per_hour["cpu"])
    prices = EstimateConfig(price_per_hour={"cpu": 0.1, "gpu": 3.0, "nvidia h200": 4.0})
    assert device_price(prices, "cuda:NVIDIA H200") == ("nvidia h200", 4.0)
    assert device_price(prices, "cuda:NVIDIA L4") == ("gpu", 3.0)
    assert device_price(prices, "cpu") == ("cpu", 0.1)


def test_estimate_uses_largest_architecture_and_sweep_size(estimate: ResourceEstimate) -> None:
    assert estimate.hidden_sizes == [32, 16]
    assert estimate.trials == 4 and estimate.concurrency == 2
    # ASHA (grace 1) stops part of the 4 trials before max_epochs: on average they run fewer epochs.
    assert 1 <= estimate.epochs_per_trial < MODEL.max_epochs
    assert estimate.sweep_epochs == pytest.approx(estimate.epochs_per_trial * estimate.trials)
    assert estimate.sweep_seconds > estimate.seconds_per_trial > 0
    checkpoint = estimate.memory.weights * 3  # weights + AdamW's two moments
    assert estimate.checkpoint_bytes == checkpoint * 2 * 4  # best and latest of 4 trials, after pruning
    # While the sweep runs every epoch's checkpoint is kept.
    assert estimate.checkpoint_peak_bytes == checkpoint * math.ceil(estimate.sweep_epochs)


def test_profiling_run_is_quick_and_positive(transform_and_train) -> None:
    transform, train = transform_and_train
    start = time.perf_counter()
    profile = profile_training(
        train, 300, transform=transform, model=MODEL, accelerator="cpu", precision="32-true", steps=10, seed=0
    )
    assert time.perf_counter() - start < 10
    assert profile.samples_per_second > 0 and math.isfinite(profile.samples_per_second)
    assert profile.validation_seconds > 0 and profile.checkpoint_seconds > 0


def test_markdown_and_tags(estimate: ResourceEstimate) -> None:
    markdown = estimate.to_markdown()
    assert "| What | Estimate | Unit |" in markdown
    for text in (
        f"{estimate.parameters:,}",
        f"{estimate.sweep_seconds:.0f}",
        f"{estimate.cost:.4f}",
        "Assumptions",
    ):
        assert text in markdown
    tags = estimate.to_tags()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    assert all(k.startswith("estimate.") for k in tags)
    assert tags["estimate.device"] == "cpu"
    assert float(tags["estimate.sweep_seconds"]) == pytest.approx(estimate.sweep_seconds, abs=0.05)
    as_dict = estimate.to_dict()
    assert as_dict["memory"]["total"] == estimate.memory.total


def test_compare_and_actual_from_sweep(estimate: ResourceEstimate) -> None:
    trial = TrialSummary(
        trial_id="t1", params={}, status="TERMINATED", best_val_auc=0.7, epochs=3, history=[],
        node_id=None, error=None, train_seconds=2.0,
    )  # fmt: skip
    result = SweepResult(
        name="s", best_trial_id="t1", best_params={}, best_val_auc=0.7, scorer=None, trials=[trial, trial],
        wall_seconds=10.0, resumed=False, storage_path="/tmp/s",
    )  # fmt: skip
    actual = actual_from_sweep(result, "cpu")
    assert actual == ActualUsage(
        sweep_seconds=10.0, trials=2, epochs_total=6, train_seconds_total=4.0, device="cpu"
    )
    errors = compare(estimate, actual)
    assert errors["sweep_seconds_error"] == pytest.approx((estimate.sweep_seconds - 10.0) / 10.0)
    assert errors["epochs_error"] == pytest.approx((estimate.sweep_epochs - 6) / 6)

    # A resumed sweep's wall time is only this call's share: no wall-time error; per-trial figures stand.
    resumed = actual_from_sweep(dataclasses.replace(result, resumed=True), "cpu")
    assert resumed.resumed
    errors = compare(estimate, resumed)
    assert math.isnan(errors["sweep_seconds_error"])
    assert errors["epochs_error"] == pytest.approx((estimate.sweep_epochs - 6) / 6)


@pytest.mark.parametrize(
    "bad",
    [
        {"price_per_hour": {"cpu": -0.1, "gpu": 2.5}},
        {"price_per_hour": {"cpu": 0.05}},
        {"profile_steps": 0},
        {"pricez": 1},
    ],
)
def test_estimate_config_rejects_invalid(bad: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        EstimateConfig.model_validate(bad)
