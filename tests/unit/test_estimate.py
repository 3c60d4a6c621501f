"""Pre-flight sweep estimate: analytic figures, ASHA model, profiling run, report formats, config."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import time

import numpy as np
import pandas as pd
import pydantic
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from models.batches import TensorBatches
from models.config import FeatureConfig, ModelConfig
from models.estimate import (
    ActualUsage,
    EstimateComparison,
    EstimateConfig,
    MemoryBreakdown,
    ResourceEstimate,
    actual_from_sweep,
    asha_expected_epochs,
    asha_rungs,
    checkpoint_bytes,
    compare,
    device_price,
    estimate_resources,
    forward_flops_per_sample,
    memory_breakdown,
    parameter_count,
    profile_training,
    simulate_asha,
    storage_cost_per_month,
    train_flops_per_sample,
)
from models.features import EncodedFeatures, FeatureTransform
from models.lightning_module import TabularClassifier
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


def _rows(features: EncodedFeatures, rows: int) -> EncodedFeatures:
    return EncodedFeatures(numeric=features.numeric[:rows], categorical=features.categorical[:rows])


def _tensor_bytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _one_adamw_step(
    transform: FeatureTransform, train: EncodedFeatures, model: ModelConfig
) -> tuple[TabularClassifier, torch.optim.Optimizer]:
    """The real module and its own optimizer after one step on a batch: gradients and moments exist."""
    torch.manual_seed(0)
    module = TabularClassifier.from_config(transform.n_numeric, transform.cardinalities, model)
    optimizer = module.configure_optimizers()
    batch = _rows(train, model.batch_size)
    logits = module(torch.as_tensor(batch.numeric), torch.as_tensor(batch.categorical))
    torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.rand(len(logits))).backward()
    optimizer.step()
    return module, optimizer


def _saved_for_backward_bytes(net: TabularNet, x_num: torch.Tensor, x_cat: torch.Tensor) -> int:
    """Bytes autograd keeps for backward from one training forward and loss, parameters left out."""
    weights = {p.data_ptr() for p in net.parameters()}
    saved: dict[tuple[int, int], int] = {}  # one entry per tensor: ReLU and the next Linear share one

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.data_ptr() not in weights:
            saved[(tensor.data_ptr(), tensor.numel())] = _tensor_bytes(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logits = net(x_num, x_cat)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.rand(len(logits)))
    return sum(saved.values())


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


def test_flops_match_torch_flop_counter_on_the_real_network(transform_and_train) -> None:
    transform, train = transform_and_train
    n_num, cards = transform.n_numeric, transform.cardinalities
    batch = _rows(train, 64)
    x_num, x_cat = torch.as_tensor(batch.numeric), torch.as_tensor(batch.categorical)
    for model in (MODEL, MODEL.with_overrides({"hidden_sizes": [256, 128, 8], "embedding_dim": 2})):
        net = TabularNet(n_num, cards, model.hidden_sizes, model.embedding_dim, model.dropout)
        with FlopCounterMode(display=False) as forward:
            net(x_num, x_cat)
        with FlopCounterMode(display=False) as step:
            logits = net(x_num, x_cat)
            torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.rand(64)).backward()
        assert forward.get_total_flops() == 64 * forward_flops_per_sample(n_num, cards, model)
        # With embeddings the MLP's input needs a gradient, so backward is exactly twice the forward.
        assert step.get_total_flops() == 64 * train_flops_per_sample(n_num, cards, model)


def test_flops_of_a_tiny_known_net() -> None:
    # 3 numerics, no categoricals, one hidden layer of 4: Linear(3, 4) + Linear(4, 1) = 12 + 4 MACs.
    model = ModelConfig(hidden_sizes=[4])
    assert forward_flops_per_sample(3, [], model) == 2 * 16
    net = TabularNet(3, [], [4], model.embedding_dim, model.dropout)
    with FlopCounterMode(display=False) as step:
        torch.nn.functional.binary_cross_entropy_with_logits(
            net(torch.randn(1, 3), torch.zeros(1, 0, dtype=torch.int64)), torch.ones(1)
        ).backward()
    # Without embeddings nothing needs the input's gradient: backward skips it for the first layer
    # (12 + 4 + 4 MACs, 72 FLOPs in all), and 3 x forward (96) is an upper bound.
    assert step.get_total_flops() == 72 < train_flops_per_sample(3, [], model) == 96


def test_memory_matches_real_tensors(transform_and_train) -> None:
    transform, train = transform_and_train
    n_num, cards = transform.n_numeric, transform.cardinalities
    memory = memory_breakdown(n_num, cards, MODEL, train_rows=1000, val_rows=200, activation_bytes=4)
    module, optimizer = _one_adamw_step(transform, train, MODEL)
    assert memory.weights == _tensor_bytes(*module.parameters())
    assert memory.gradients == _tensor_bytes(*(p.grad for p in module.parameters()))
    moments = [s[k] for s in optimizer.state.values() for k in ("exp_avg", "exp_avg_sq")]
    assert memory.optimizer_state == _tensor_bytes(*moments)

    # Data: the tensors `TensorBatches` holds, plus the copy one shuffled epoch gathers (the storage
    # behind the batch views it yields), plus the validation tensors.
    labels = np.zeros(1000, dtype=np.float32)
    train_batches = TensorBatches.from_features(
        _rows(train, 1000), labels, batch_size=MODEL.batch_size, shuffle=True
    )
    val_batches = TensorBatches.from_features(_rows(train, 200), labels[:200], batch_size=200, shuffle=False)
    gathered = sum(t.untyped_storage().nbytes() for t in next(iter(train_batches)))
    held = _tensor_bytes(train_batches.x_num, train_batches.x_cat, train_batches.y)
    assert gathered == held
    assert memory.data == held + gathered + _tensor_bytes(val_batches.x_num, val_batches.x_cat, val_batches.y)


def test_activation_memory_bounds_what_autograd_saves(transform_and_train) -> None:
    transform, train = transform_and_train
    n_num, cards = transform.n_numeric, transform.cardinalities
    batch = _rows(train, MODEL.batch_size)
    x_num, x_cat = torch.as_tensor(batch.numeric), torch.as_tensor(batch.categorical)
    for model in (MODEL, MODEL.with_overrides({"hidden_sizes": [256, 128, 8], "embedding_dim": 2})):
        net = TabularNet(n_num, cards, model.hidden_sizes, model.embedding_dim, model.dropout).train()
        saved = _saved_for_backward_bytes(net, x_num, x_cat)
        # One validation row: the training batch is the larger of the two and decides the figure.
        memory = memory_breakdown(n_num, cards, model, train_rows=1, val_rows=1, activation_bytes=4)
        # The estimate also counts what is live but not saved for backward (the batch as fed, the
        # embedding outputs, each Linear's output before ReLU): above the saved bytes, by under half.
        assert saved <= memory.activations <= 1.5 * saved


def test_checkpoint_bytes_match_a_serialised_checkpoint(transform_and_train) -> None:
    transform, train = transform_and_train
    model = MODEL.with_overrides({"hidden_sizes": [256, 128]})
    module, optimizer = _one_adamw_step(transform, train, model)
    buffer = io.BytesIO()
    torch.save({"state_dict": module.state_dict(), "optimizer_states": [optimizer.state_dict()]}, buffer)
    expected = checkpoint_bytes(parameter_count(transform.n_numeric, transform.cardinalities, model))
    # torch.save adds a zip entry and a pickle record per tensor (under 1 KB each): about 2% here.
    assert buffer.tell() == pytest.approx(expected, rel=0.05)


def test_asha_epochs_without_and_with_rungs() -> None:
    assert asha_rungs(2, 3, 20) == [2, 6, 18]
    assert asha_rungs(8, 3, 8) == []
    assert asha_expected_epochs(8, 3, 8) == 8  # grace = max_t: no rung, every trial runs max_t
    # Worked by hand: 2 epochs for all, 4 more for 1/3, 12 more for 1/9, 2 more for 1/27 = 128/27.
    assert asha_expected_epochs(2, 3, 20) == pytest.approx(128 / 27)
    # r = 2: rungs 1, 2, 4 keep half each (1 + 1/2 + 2/4 + 4/8); r = 3 cuts harder (1 + 2/3 + 5/9).
    assert asha_expected_epochs(1, 2, 8) == pytest.approx(2.5)
    assert asha_expected_epochs(1, 3, 8) == pytest.approx(1 + 2 / 3 + 5 / 9)


def test_simulated_asha_two_trials_by_hand() -> None:
    """Two trials, max_t 2, one rung at epoch 1, one second per epoch, no start-up costs.

    The first trial to reach the rung always passes (nothing recorded there yet) and runs 2 epochs;
    the second stops at the rung when its quality is below the first's (the 50th percentile of one
    score): half the time. Epochs per trial: (2 + 1.5) / 2 = 1.75. One slot: the second starts at 2 s and
    ends at 3 or 4 s (3.5 on average); two slots: both start at 0 and the first ends last, at 2 s.
    """
    common = {
        "epoch_seconds": [1.0], "trials": 2, "grace_period": 1, "reduction_factor": 2, "max_t": 2,
        "trial_overhead_seconds": 0.0, "worker_start_seconds": 0.0, "seed": 0,
    }  # fmt: skip
    # 400 simulations: the mean of a coin flip per run has a standard deviation of 0.025 epochs.
    one = simulate_asha(concurrency=1, **common)
    assert one.epochs_per_trial == pytest.approx(1.75, abs=0.05)
    assert one.sweep_seconds == pytest.approx(3.5, abs=0.1)
    two = simulate_asha(concurrency=2, **common)
    assert two.epochs_per_trial == pytest.approx(1.75, abs=0.05)
    assert two.sweep_seconds == 2.0


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


def test_simulated_early_stopping_by_hand() -> None:
    """No rungs (grace = max_t = 4): a trial's metric peaks at an epoch uniform in 1..4 and it stops
    `patience` epochs later, at most at 4. Patience 0: (1 + 2 + 3 + 4) / 4 = 2.5 epochs; patience 1:
    (2 + 3 + 4 + 4) / 4 = 3.25."""
    common = {
        "epoch_seconds": [1.0], "trials": 50, "concurrency": 2, "grace_period": 4, "reduction_factor": 2,
        "max_t": 4, "trial_overhead_seconds": 0.0, "worker_start_seconds": 0.0, "seed": 0,
    }  # fmt: skip
    # 20,000 draws per figure: the mean's standard deviation is under 0.01 epochs.
    assert simulate_asha(patience=0, **common).epochs_per_trial == pytest.approx(2.5, abs=0.05)
    assert simulate_asha(patience=1, **common).epochs_per_trial == pytest.approx(3.25, abs=0.05)
    assert simulate_asha(patience=None, **common).epochs_per_trial == 4


def test_concurrency_halves_wall_time() -> None:
    common = {
        "epoch_seconds": [1.5],
        "trials": 4,
        "grace_period": 5,
        "reduction_factor": 2,
        "max_t": 5,
        "trial_overhead_seconds": 1.0,
        "seed": 0,
    }
    one = simulate_asha(concurrency=1, worker_start_seconds=0.0, **common)
    two = simulate_asha(concurrency=2, worker_start_seconds=0.0, **common)
    assert one.sweep_seconds == pytest.approx(4 * (1.0 + 5 * 1.5))
    assert two.sweep_seconds == pytest.approx(one.sweep_seconds / 2)
    # A fresh worker per slot delays only each slot's first trial: 2 + 2 x 8.5 s.
    started = simulate_asha(concurrency=2, worker_start_seconds=2.0, **common)
    assert started.sweep_seconds == pytest.approx(19.0)


def test_cost_is_hours_times_price_of_the_device(estimate: ResourceEstimate) -> None:
    assert estimate.device == "cpu" and estimate.price_key == "cpu"
    cores = SWEEP.cpus_per_trial * estimate.concurrency
    assert estimate.device_hours == pytest.approx(estimate.sweep_seconds / 3600 * cores)
    assert estimate.cost == pytest.approx(estimate.device_hours * PRICES.price_per_hour["cpu"])
    prices = EstimateConfig(price_per_hour={"cpu": 0.1, "gpu": 3.0, "nvidia h200": 4.0})
    assert device_price(prices, "cuda:NVIDIA H200") == ("nvidia h200", 4.0)
    assert device_price(prices, "cuda:NVIDIA L4") == ("gpu", 3.0)
    assert device_price(prices, "cpu") == ("cpu", 0.1)


def test_storage_cost_is_priced_per_decimal_gigabyte_month(estimate: ResourceEstimate) -> None:
    assert storage_cost_per_month(2_500_000_000, EstimateConfig(storage_price_per_gb_month=0.02)) == (
        pytest.approx(0.05)
    )
    assert storage_cost_per_month(2_500_000_000, EstimateConfig()) is None
    assert (
        estimate.storage_cost_per_month is None
        and "estimate.storage_cost_per_month" not in estimate.to_tags()
    )
    priced = dataclasses.replace(estimate, storage_cost_per_month=0.25)
    assert priced.to_tags()["estimate.storage_cost_per_month"] == "0.2500"
    assert "| Storage cost | 0.250000 |" in priced.to_markdown()


def test_estimate_uses_largest_architecture_and_sweep_size(
    estimate: ResourceEstimate, transform_and_train
) -> None:
    transform, _ = transform_and_train
    assert estimate.hidden_sizes == [32, 16]
    largest = TabularNet(transform.n_numeric, transform.cardinalities, [32, 16], MODEL.embedding_dim, 0.0)
    assert estimate.parameters == sum(p.numel() for p in largest.parameters())
    assert estimate.trials == 4 and estimate.concurrency == 2
    # ASHA (grace 1) stops part of the 4 trials before max_epochs: on average they run fewer epochs.
    assert 1 <= estimate.epochs_per_trial < MODEL.max_epochs
    assert estimate.sweep_seconds > estimate.seconds_per_trial
    # After pruning: best and latest of each of the 4 trials (the size of one is checked above against
    # a serialised checkpoint); while the sweep runs, every epoch's checkpoint.
    one = checkpoint_bytes(estimate.parameters)
    assert estimate.checkpoint_bytes == one * 2 * 4
    assert estimate.checkpoint_peak_bytes == one * math.ceil(estimate.sweep_epochs)
    assert dataclasses.replace(estimate, epochs_per_trial=2.5, trials=4).sweep_epochs == 10


def test_profiling_run_is_quick_and_its_timers_fit_in_it(transform_and_train) -> None:
    transform, train = transform_and_train
    rng_state, threads = torch.get_rng_state(), torch.get_num_threads()
    start = time.perf_counter()
    profile = profile_training(
        train, 300, transform=transform, model=MODEL, accelerator="cpu", precision="32-true", steps=10, seed=0
    )
    elapsed = time.perf_counter() - start
    assert elapsed < 10
    # The timed windows (10 steps of 64 rows, one validation pass, one checkpoint write, one shuffle)
    # are disjoint parts of the call: together they cannot take longer than it did.
    windows = (
        10 * MODEL.batch_size / profile.samples_per_second
        + profile.validation_seconds
        + profile.checkpoint_seconds
        + profile.shuffle_seconds
    )
    assert 0 < windows < elapsed
    # It restores the global torch RNG and thread count it changes.
    assert torch.equal(torch.get_rng_state(), rng_state) and torch.get_num_threads() == threads


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
    as_dict = dataclasses.replace(estimate, memory=MemoryBreakdown(1, 2, 3, 4, 5)).to_dict()
    assert json.loads(json.dumps(as_dict))["memory"]["total"] == 15


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
    # Estimated: 12 s of wall time, 2 trials x 3.3 epochs of 0.5 s; measured: 10 s, 6 epochs in 4 s.
    known = dataclasses.replace(
        estimate, sweep_seconds=12.0, trials=2, epochs_per_trial=3.3, seconds_per_epoch=0.5
    )
    errors = compare(known, actual)
    assert isinstance(errors, EstimateComparison)
    assert errors.to_dict() == pytest.approx(
        {
            "sweep_seconds_error": 0.2,  # 12 vs 10 s
            "epochs_error": 0.1,  # 6.6 vs 6 epochs
            "train_seconds_error": -0.175,  # 3.3 vs 4 s
            "seconds_per_epoch_error": -0.25,  # 0.5 vs 4/6 s
            "trials_error": 0.0,
        }
    )

    # A resumed sweep's wall time is only this call's share: no wall-time error; per-trial figures stand.
    resumed = actual_from_sweep(dataclasses.replace(result, resumed=True), "cpu")
    assert resumed.resumed
    errors = compare(known, resumed)
    assert math.isnan(errors.sweep_seconds_error)
    assert errors.epochs_error == pytest.approx(0.1)
    # Nothing measured, nothing to compare: NaN rather than a division by zero.
    idle = dataclasses.replace(actual, epochs_total=0, train_seconds_total=0.0)
    assert math.isnan(compare(known, idle).epochs_error) and math.isnan(
        compare(known, idle).train_seconds_error
    )


def test_estimate_comparison_keeps_only_finite_errors_for_metrics() -> None:
    nan = float("nan")
    comparison = EstimateComparison(
        sweep_seconds_error=nan,
        epochs_error=0.12,
        train_seconds_error=-0.5,
        seconds_per_epoch_error=float("inf"),
        trials_error=0.0,
    )
    assert comparison.finite() == {
        "estimate/epochs_error": 0.12,
        "estimate/train_seconds_error": -0.5,
        "estimate/trials_error": 0.0,  # a zero error is an error of zero, not a missing one
    }
    assert comparison.to_tags() == {
        "actual.sweep_seconds_error": "n/a",
        "actual.epochs_error": "+0.120",
        "actual.train_seconds_error": "-0.500",
        "actual.seconds_per_epoch_error": "n/a",
        "actual.trials_error": "+0.000",
    }
    assert comparison.describe("epochs_error") == "+12%"
    assert comparison.describe("train_seconds_error") == "-50%"
    assert comparison.describe("sweep_seconds_error") == "n/a"
    with pytest.raises(KeyError, match="sweep_secs"):
        comparison.describe("sweep_secs")
    with pytest.raises(dataclasses.FrozenInstanceError):
        comparison.epochs_error = 0.0  # type: ignore[misc]


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
