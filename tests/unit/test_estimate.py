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

from models.estimate import resources as resources_module
from models.estimate.actual import ActualUsage, EstimateComparison, actual_from_sweep, compare
from models.estimate.asha import asha_expected_epochs, asha_rungs, simulate_asha
from models.estimate.config import EstimateConfig
from models.estimate.counts import (
    MemoryBreakdown,
    build_net,
    checkpoint_bytes,
    forward_flops_per_sample,
    memory_breakdown,
    parameter_count,
    train_flops_per_sample,
)
from models.estimate.pricing import device_price, storage_cost_per_month
from models.estimate.profiling import profile_training
from models.estimate.resources import estimate_resources
from models.estimate.result import ResourceEstimate
from models.features.config import FeatureConfig
from models.features.transform import EncodedFeatures, FeatureTransform
from models.nn.batches import TensorBatches
from models.nn.config import ModelConfig
from models.nn.module import TabularClassifier
from models.nn.network import TabularNet
from models.training.config import SweepConfig
from models.training.sweep import SweepResult, TrialSummary

SPEC = FeatureConfig(numeric=["tenure", "spend", "visits"], categorical=["plan", "region"])
# Shrunken for tests: small batches and a short profile keep the measured run well under a second. The
# plain MLP without numeric embeddings wherever the architecture is not what a test is about: it is the
# cheapest to build and profile, and its counts are the easiest to work by hand.
MODEL = ModelConfig(
    architecture="mlp", num_embedding="none", hidden_sizes=[32, 16], batch_size=64, max_epochs=6
)
# TabM with piecewise-linear numeric embeddings (the default recipe), as small as the tests need.
TABM = MODEL.with_overrides({"architecture": "tabm", "ensemble_size": 8, "num_embedding": "piecewise_linear"})
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
ROWS = 1_500
# The fixture's categoricals: plan (3 levels) and region (7), each plus the missing and unknown indices;
# fast.ai's width rule, worked by hand: round(1.6 * 5^0.56) = round(3.94) = 4, round(1.6 * 9^0.56) = 5.
CARDINALITIES = [5, 9]
CATEGORICAL_WIDTHS = [4, 5]
CATEGORICAL_PARAMETERS = 5 * 4 + 9 * 5


@pytest.fixture(scope="module")
def transform_and_train() -> tuple[FeatureTransform, EncodedFeatures]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "tenure": rng.normal(size=ROWS),
            "spend": rng.exponential(size=ROWS),
            "visits": rng.poisson(3, size=ROWS).astype(float),
            "plan": rng.choice(["basic", "plus", "pro"], size=ROWS),
            "region": rng.choice(list("nsewxyz"), size=ROWS),
        }
    )
    transform = FeatureTransform.fit(frame, SPEC)
    assert transform.n_numeric == 3 and transform.cardinalities == CARDINALITIES
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


def _net(transform: FeatureTransform, train: EncodedFeatures, model: ModelConfig) -> TabularNet:
    """The network a trial of `model` builds on the fixture's training split."""
    return build_net(transform.n_numeric, transform.cardinalities, model.for_data(len(train)), train.numeric)


def _module(transform: FeatureTransform, train: EncodedFeatures, model: ModelConfig) -> TabularClassifier:
    """The real Lightning module of a trial of `model` (resolved for the fixture's rows, seeded)."""
    torch.manual_seed(0)
    return TabularClassifier.from_config(
        transform.n_numeric, transform.cardinalities, model.for_data(len(train)), train.numeric
    )


def _training_batch(train: EncodedFeatures, rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    batch = _rows(train, rows)
    labels = torch.as_tensor(np.random.default_rng(0).integers(0, 2, size=rows).astype(np.float32))
    return torch.as_tensor(batch.numeric), torch.as_tensor(batch.categorical), labels


def _training_loss(module: TabularClassifier, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The loss of the module's own `training_step` (per-member BCE, averaged), outside a Trainer."""
    module.train()
    module.on_train_epoch_start()  # the step accumulates the epoch's loss into what this sets up
    return module.training_step(batch, 0)


def _one_adamw_step(
    transform: FeatureTransform, train: EncodedFeatures, model: ModelConfig
) -> tuple[TabularClassifier, torch.optim.Optimizer]:
    """The real module and its own optimizer after one step on a batch: gradients and moments exist."""
    # The cosine schedule reads the trainer's step count, and there is no trainer here; the schedule
    # holds no tensors, so the constant one leaves what is measured unchanged.
    module = _module(transform, train, model.with_overrides({"lr_schedule": "constant"}))
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    _training_loss(module, _training_batch(train, model.for_data(len(train)).batch_size)).backward()
    optimizer.step()
    return module, optimizer


def _saved_for_backward_bytes(module: TabularClassifier, batch: tuple[torch.Tensor, ...]) -> int:
    """Bytes autograd keeps for backward from one training step's forward and loss, parameters left out.

    Counted by storage, once each: a view (a ReLU's output the next layer also saves, TabM's k-fold
    expanded input) holds no memory of its own. What the device really keeps, independently of how
    `counts` sizes each saved tensor.
    """
    weights = {p.untyped_storage().data_ptr() for p in module.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        _training_loss(module, batch)
    return sum(saved.values())


# Counts worked by hand, from the layers' shapes, independently of the network code.
def _mlp_parameters(d_in: int, hidden: list[int]) -> int:
    """nn.Linear layers d_in -> hidden... -> 1: weight out x in plus bias out each."""
    widths = [d_in, *hidden, 1]
    return sum(n_in * n_out + n_out for n_in, n_out in zip(widths, widths[1:], strict=False))


def _tabm_parameters(d_in: int, hidden: list[int], k: int) -> int:
    """TabM: LinearBatchEnsemble layers (one shared weight out x in; per member the input scaling r,
    the output scaling s and a bias: k x in + k x out + k x out), then a LinearEnsemble head (k
    separate in x 1 weights and k biases)."""
    widths = [d_in, *hidden]
    body = sum(o * i + k * i + 2 * k * o for i, o in zip(widths, widths[1:], strict=False))
    return body + k * hidden[-1] + k


def _ple_parameters(n_numeric: int, max_bins: int, dim: int) -> int:
    """PiecewiseLinearEmbeddings version B: a linear embedding per column (weight and bias, n x d each)
    plus one bias-free n_bins x d map per column on the encoding (padded to the widest column's bins);
    the encoding itself is fixed by the bin edges (buffers, not parameters)."""
    return 2 * n_numeric * dim + n_numeric * max_bins * dim


def _mlp_macs(d_in: int, hidden: list[int]) -> int:
    widths = [d_in, *hidden, 1]
    return sum(n_in * n_out for n_in, n_out in zip(widths, widths[1:], strict=False))


def _tabm_macs(d_in: int, hidden: list[int], k: int) -> int:
    """Per row: each member's copy of the row goes through the shared weight, k x in x out; the head
    is k separate in x 1 products."""
    widths = [d_in, *hidden]
    return k * sum(i * o for i, o in zip(widths, widths[1:], strict=False)) + k * hidden[-1]


def _max_bins(net: TabularNet) -> int:
    # The bin edges are data (quantiles of the training split; a column with few values gets fewer).
    assert net.bins is not None
    return max(len(edges) - 1 for edges in net.bins)


def test_parameter_count_matches_a_count_by_hand(transform_and_train) -> None:
    transform, train = transform_and_train
    d_in = sum(CATEGORICAL_WIDTHS) + 3  # raw numerics: one input each
    mlp = _net(transform, train, MODEL)
    assert parameter_count(mlp) == CATEGORICAL_PARAMETERS + _mlp_parameters(d_in, [32, 16]) == 1_026
    # Capped at 2 wide, both tables are 2 wide: 5 x 2 + 9 x 2.
    wide = _net(transform, train, MODEL.with_overrides({"hidden_sizes": [256, 128, 8], "embedding_dim": 2}))
    assert parameter_count(wide) == 5 * 2 + 9 * 2 + _mlp_parameters(2 + 2 + 3, [256, 128, 8])

    raw_tabm = _net(transform, train, TABM.with_overrides({"num_embedding": "none", "ensemble_size": 4}))
    assert parameter_count(raw_tabm) == CATEGORICAL_PARAMETERS + _tabm_parameters(d_in, [32, 16], 4)
    small = TABM.with_overrides({"ensemble_size": 4, "num_embedding_dim": 4, "num_bins": 8})
    tabm = _net(transform, train, small)
    assert _max_bins(tabm) == 8
    assert parameter_count(tabm) == (
        CATEGORICAL_PARAMETERS
        + _ple_parameters(3, 8, 4)
        + _tabm_parameters(sum(CATEGORICAL_WIDTHS) + 3 * 4, [32, 16], 4)
    )
    # And it is what the trial's module trains: every parameter of the Lightning module is in the net.
    assert parameter_count(_module(transform, train, small)) == parameter_count(tabm)


def test_flops_of_a_tiny_known_net() -> None:
    # 3 numerics, no categoricals, one hidden layer of 4: Linear(3, 4) + Linear(4, 1) = 12 + 4 MACs.
    model = ModelConfig(architecture="mlp", num_embedding="none", hidden_sizes=[4])
    net = build_net(3, [], model, np.zeros((1, 3), dtype=np.float32))
    assert forward_flops_per_sample(net) == 2 * 16
    # Without embeddings nothing needs the input's gradient: backward skips it for the first layer
    # (12 + 4 weight-gradient MACs and 4 for the second layer's input gradient): 2 x 36 = 72 FLOPs in
    # all, under the 3 x forward (96) of a net whose input needs a gradient.
    assert train_flops_per_sample(net) == 72 < 3 * forward_flops_per_sample(net)


def test_flops_of_a_tiny_tabm() -> None:
    # 3 numerics, hidden [4], k = 2: the BatchEnsemble layer's product runs on every member's copy of the
    # row (k x 3 x 4 = 24 MACs), the LinearEnsemble head is k x 4 x 1 = 8 MACs: 2 x 32 = 64 FLOPs.
    model = ModelConfig(architecture="tabm", ensemble_size=2, num_embedding="none", hidden_sizes=[4])
    net = build_net(3, [], model, np.zeros((1, 3), dtype=np.float32))
    assert forward_flops_per_sample(net) == 2 * (2 * 3 * 4 + 2 * 4 * 1) == 64
    # What FlopCounterMode counts: the matrix products only (aten.mm for the shared weight, aten.bmm for
    # the per-member head). The per-member scalings x * r and x * s (k x (3 + 4) multiplies a row), the
    # biases, the expand to k copies and the ensemble's mean are element-wise and counted as zero.
    with FlopCounterMode(display=False) as counter:
        net(torch.randn(5, 3), torch.zeros(5, 0, dtype=torch.int64))
    counts = counter.get_flop_counts()["Global"]
    assert counts == {torch.ops.aten.mm: 5 * 2 * 24, torch.ops.aten.bmm: 5 * 2 * 8}
    # Unlike the MLP, the first product's input x * r depends on the parameter r, so backward computes
    # its gradient too: input and weight gradients for both products, 2 x forward, 3 x forward in all.
    assert train_flops_per_sample(net) == 3 * 64


def test_flops_by_hand_on_the_real_networks(transform_and_train) -> None:
    transform, train = transform_and_train
    d_in = sum(CATEGORICAL_WIDTHS) + 3
    mlp = MODEL
    wide = MODEL.with_overrides({"hidden_sizes": [256, 128, 8], "embedding_dim": 2})
    # With categorical embeddings the MLP's input needs a gradient: backward is exactly twice the forward.
    for model, macs in ((mlp, _mlp_macs(d_in, [32, 16])), (wide, _mlp_macs(2 + 2 + 3, [256, 128, 8]))):
        net = _net(transform, train, model)
        assert forward_flops_per_sample(net) == 2 * macs
        assert train_flops_per_sample(net) == 3 * 2 * macs

    tabm = _net(transform, train, TABM)
    bins = _max_bins(tabm)
    assert bins == TABM.num_bins  # the continuous columns get every bin; the widest sets the padding
    dim = TABM.num_embedding_dim
    # The piecewise-linear map: per column a bins x dim product on its (fixed) encoding. Its input needs no
    # gradient, so backward adds only its weight gradient (1 x forward), not 2 x like the backbone's.
    embedding = 3 * bins * dim
    backbone = _tabm_macs(sum(CATEGORICAL_WIDTHS) + 3 * dim, [32, 16], TABM.ensemble_size)
    assert forward_flops_per_sample(tabm) == 2 * (embedding + backbone)
    assert train_flops_per_sample(tabm) == 2 * (3 * backbone + 2 * embedding)

    # The counts come from probe rows; a real training step of the trial's module on real rows counts
    # the same per row (FLOPs grow linearly with rows and do not depend on the values).
    for model in (mlp, TABM):
        module = _module(transform, train, model)
        with FlopCounterMode(display=False) as step:
            _training_loss(module, _training_batch(train, 64)).backward()
        assert step.get_total_flops() == 64 * train_flops_per_sample(_net(transform, train, model))


@pytest.mark.parametrize("model", [MODEL, TABM], ids=["mlp", "tabm"])
def test_memory_matches_real_tensors(transform_and_train, model: ModelConfig) -> None:
    transform, train = transform_and_train
    resolved = model.for_data(1000)
    net = _net(transform, train, model)
    memory = memory_breakdown(net, resolved, train_rows=1000, val_rows=200, activation_bytes=4)
    module, optimizer = _one_adamw_step(transform, train, model)
    assert memory.weights == _tensor_bytes(*module.parameters())
    assert memory.gradients == _tensor_bytes(*(p.grad for p in module.parameters()))
    moments = [s[k] for s in optimizer.state.values() for k in ("exp_avg", "exp_avg_sq")]
    assert len(moments) == 2 * len(list(module.parameters()))
    assert memory.optimizer_state == _tensor_bytes(*moments)

    # Data: the tensors `TensorBatches` holds, plus the copy one shuffled epoch gathers (the storage
    # behind the batch views it yields), plus the validation tensors.
    labels = np.zeros(1000, dtype=np.float32)
    train_batches = TensorBatches.from_features(
        _rows(train, 1000), labels, batch_size=resolved.batch_size, shuffle=True
    )
    val_batches = TensorBatches.from_features(_rows(train, 200), labels[:200], batch_size=200, shuffle=False)
    gathered = sum(t.untyped_storage().nbytes() for t in next(iter(train_batches)))
    held = _tensor_bytes(train_batches.x_num, train_batches.x_cat, train_batches.y)
    assert gathered == held
    assert memory.data == held + gathered + _tensor_bytes(val_batches.x_num, val_batches.x_cat, val_batches.y)


@pytest.mark.parametrize(
    ("model", "above"),
    [
        # MLP: only the batch as fed (36 B a row) is added to what autograd saves a row (650 B; 4.8 KB for
        # the wide one): 5% and under 1% above.
        (MODEL, 1.10),
        (MODEL.with_overrides({"hidden_sizes": [256, 128, 8], "embedding_dim": 2}), 1.10),
        # TabM: the estimate also sizes each expanded view (the k copies of the 57-wide concatenated input
        # and of the targets) as if it were a copy of its own: k - 1 of k copies hold no memory, 17% here.
        (TABM, 1.25),
    ],
    ids=["mlp", "wide-mlp", "tabm-ple"],
)
def test_activation_memory_bounds_what_autograd_saves(
    transform_and_train, model: ModelConfig, above: float
) -> None:
    transform, train = transform_and_train
    resolved = model.for_data(len(train))
    batch = _training_batch(train, resolved.batch_size)
    saved = _saved_for_backward_bytes(_module(transform, train, model), batch)
    # One validation row: the training batch is the larger of the two and decides the figure.
    net = _net(transform, train, model)
    memory = memory_breakdown(net, resolved, train_rows=1, val_rows=1, activation_bytes=4)
    # The estimate counts what the real step saves (measured here on real rows and the module's own loss,
    # the estimate on probe rows) plus what is live but not saved: never below it, above it by the margin.
    assert saved <= memory.activations <= above * saved


@pytest.mark.parametrize("model", [MODEL, TABM], ids=["mlp", "tabm"])
def test_checkpoint_bytes_match_a_serialised_checkpoint(transform_and_train, model: ModelConfig) -> None:
    transform, train = transform_and_train
    model = model.with_overrides({"hidden_sizes": [256, 128]})
    module, optimizer = _one_adamw_step(transform, train, model)
    buffer = io.BytesIO()
    torch.save({"state_dict": module.state_dict(), "optimizer_states": [optimizer.state_dict()]}, buffer)
    expected = checkpoint_bytes(parameter_count(_net(transform, train, model)))
    # torch.save adds a zip entry and a pickle record per tensor (under 1 KB each; TabM has 18 state
    # entries to the MLP's 8, its piecewise-linear encoding's bin buffers among them): 2-3% here.
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
        "epoch_seconds": [1.0],
        "trials": 2,
        "grace_period": 1,
        "reduction_factor": 2,
        "max_t": 2,
        "trial_overhead_seconds": 0.0,
        "worker_start_seconds": 0.0,
        "seed": 0,
    }
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
        "epoch_seconds": [1.0],
        "trials": 50,
        "concurrency": 2,
        "grace_period": 4,
        "reduction_factor": 2,
        "max_t": 4,
        "trial_overhead_seconds": 0.0,
        "worker_start_seconds": 0.0,
        "seed": 0,
    }
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
    transform, train = transform_and_train
    # Both searched widths are profiled; the wider MLP is the costlier and the one reported.
    (throughput,) = [line for line in estimate.assumptions if line.startswith("Throughput")]
    assert "MLP [16] none" in throughput and "MLP [32, 16] none" in throughput
    assert estimate.hidden_sizes == [32, 16] and estimate.architecture == "MLP [32, 16] none"
    d_in = sum(CATEGORICAL_WIDTHS) + 3
    assert estimate.parameters == CATEGORICAL_PARAMETERS + _mlp_parameters(d_in, [32, 16])
    assert estimate.train_flops_per_sample == train_flops_per_sample(_net(transform, train, MODEL))
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


def test_estimate_profiles_each_searched_architecture_and_reports_the_costliest(
    transform_and_train, monkeypatch: pytest.MonkeyPatch
) -> None:
    transform, train = transform_and_train
    profiled: list[ModelConfig] = []

    def recording(*args: object, model: ModelConfig, **kwargs: object) -> object:
        profiled.append(model)
        return profile_training(*args, model=model, **kwargs)

    monkeypatch.setattr(resources_module, "profile_training", recording)
    base = TABM.with_overrides({"num_bins": 8})
    sweep = SweepConfig.model_validate(
        {
            "num_samples": 2,
            "max_concurrent_trials": 2,
            "search_space": {
                "architecture": {"type": "choice", "values": ["mlp", "tabm"]},
                "ensemble_size": {"type": "choice", "values": [2, 4]},
            },
        }
    )
    result = estimate_resources(
        train, 300, transform=transform, model=base, sweep=sweep, prices=PRICES, seed=7
    )
    # Four combinations, but an MLP ignores the ensemble size: three networks, each profiled once, each
    # resolved for the training rows first (a number for the batch size).
    assert sorted((m.architecture, m.k) for m in profiled) == [("mlp", 1), ("tabm", 2), ("tabm", 4)]
    assert all(m.batch_size == base.for_data(len(train)).batch_size for m in profiled)
    (throughput,) = [line for line in result.assumptions if line.startswith("Throughput")]
    for described in ("MLP [32, 16] piecewise_linear", "TabM k=2 [32, 16]", "TabM k=4 [32, 16]"):
        assert described in throughput
    # The costliest by training FLOPs is TabM k=4 (k copies of every row through the backbone): memory,
    # FLOPs and parameters are its, and the report and its assumptions say so.
    costliest = base.with_overrides({"ensemble_size": 4})
    tabm_net = _net(transform, train, costliest)
    mlp_net = _net(transform, train, base.with_overrides({"architecture": "mlp"}))
    assert train_flops_per_sample(tabm_net) > train_flops_per_sample(mlp_net)
    assert result.architecture == "TabM k=4 [32, 16] piecewise_linear"
    assert any(f"costliest architecture ({result.architecture})" in line for line in result.assumptions)
    assert "TabM k=4" in result.to_markdown()
    assert result.train_flops_per_sample == train_flops_per_sample(tabm_net)
    assert result.parameters == parameter_count(tabm_net) > parameter_count(mlp_net)
    assert result.memory == memory_breakdown(
        tabm_net, costliest.for_data(len(train)), train_rows=len(train), val_rows=300, activation_bytes=4
    )


@pytest.mark.parametrize("model", [MODEL, TABM], ids=["mlp", "tabm"])
def test_profiling_timers_fit_inside_the_run(transform_and_train, model: ModelConfig) -> None:
    transform, train = transform_and_train
    # As `estimate_resources` profiles each candidate: resolved for the training rows.
    resolved = model.for_data(len(train))
    rng_state, threads = torch.get_rng_state(), torch.get_num_threads()
    start = time.perf_counter()
    profile = profile_training(
        train,
        300,
        transform=transform,
        model=resolved,
        accelerator="cpu",
        precision="32-true",
        steps=10,
        seed=0,
    )
    elapsed = time.perf_counter() - start  # how fast it is belongs to benchmarks, not to a test
    # The timed windows (10 steps of 64 rows, one validation pass, one checkpoint write, one shuffle)
    # are disjoint parts of the call: together they cannot take longer than it did.
    windows = (
        10 * resolved.batch_size / profile.samples_per_second
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
        estimate.architecture,
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
        trial_id="t1",
        params={},
        status="TERMINATED",
        best_val_auc=0.7,
        epochs=3,
        history=[],
        node_id=None,
        error=None,
        train_seconds=2.0,
    )
    result = SweepResult(
        name="s",
        best_trial_id="t1",
        best_params={},
        best_val_auc=0.7,
        scorer=None,
        trials=[trial, trial],
        wall_seconds=10.0,
        resumed=False,
        storage_path="/tmp/s",
    )
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
