"""The run's timeline at the budget gate: phase arithmetic by hand, the sweep's range, what-if rows per device,
the chart, and estimate against actual after the run."""

from __future__ import annotations

import base64
import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from models.estimate.asha import simulate_asha
from models.estimate.chart import markdown_image, timeline_png
from models.estimate.config import DeviceSpec, EstimateConfig
from models.estimate.resources import device_epoch_seconds, estimate_resources
from models.estimate.timeline import (
    BUDGET_APPROVAL,
    EVALUATION,
    PACKAGING,
    PROMOTION_APPROVAL,
    RUN_START,
    SWEEP,
    VALIDATION,
    Phase,
    PhaseClock,
    Timeline,
    clock,
    compare_phases,
    comparison_markdown,
    metric_key,
    phase_metrics,
    plan_run,
)
from models.features.config import FeatureConfig
from models.features.transform import FeatureTransform
from models.governance.config import GatePolicy
from models.governance.evidence import RunIdentity, budget_gate
from models.nn.config import ModelConfig
from models.training.config import SweepConfig

# A hand-computable plan: three measured phases, the budget wait, a sweep of 100 s (90%: 60-160 s), then
# 20 + 10 + 5 s, the promotion wait, and 4 s of packaging.
HAND = Timeline(
    [
        Phase("validation", 2.0, measured=True),
        Phase("split, features, baselines", 3.0, measured=True),
        Phase("estimate", 1.0, measured=True),
        Phase("budget approval", None),
        Phase("sweep", 100.0, 60.0, 160.0),
        Phase("cross-validation, final model", 20.0),
        Phase("evaluation", 10.0),
        Phase("registration", 5.0),
        Phase("promotion approval", None),
        Phase("packaging", 4.0),
    ]
)


def test_phases_add_up_from_the_start_and_from_each_decision() -> None:
    laid = [(s.phase.name, s.after, s.start, s.end, s.end_low, s.end_high) for s in HAND.spans()]
    assert laid == [
        ("validation", RUN_START, 0.0, 2.0, 2.0, 2.0),
        ("split, features, baselines", RUN_START, 2.0, 5.0, 5.0, 5.0),
        ("estimate", RUN_START, 5.0, 6.0, 6.0, 6.0),
        ("budget approval", RUN_START, 6.0, None, None, None),
        # After the decision the clock restarts; the sweep's range carries to every later end in the segment.
        ("sweep", "the budget approval", 0.0, 100.0, 60.0, 160.0),
        ("cross-validation, final model", "the budget approval", 100.0, 120.0, 80.0, 180.0),
        ("evaluation", "the budget approval", 120.0, 130.0, 90.0, 190.0),
        ("registration", "the budget approval", 130.0, 135.0, 95.0, 195.0),
        ("promotion approval", "the budget approval", 135.0, None, None, None),
        ("packaging", "the promotion approval", 0.0, 4.0, 4.0, 4.0),
    ]


def test_the_table_names_each_phase_with_its_offsets_and_basis() -> None:
    table = HAND.to_markdown().splitlines()
    assert table[0] == "| Phase | From | To | Duration | Basis |"
    assert "| validation | 0:00 after the run's start | 0:02 | 0:02 | measured |" in table
    assert (
        "| budget approval | 0:06 after the run's start | until decided | until decided | a person or the policy |"
        in table
    )
    assert (
        "| sweep | 0:00 after the budget approval | 1:40 (90%: 1:00-2:40) | 1:40 (90%: 1:00-2:40) | estimated |"
        in table
    )
    assert (
        "| registration | 2:10 after the budget approval | 2:15 (90%: 1:35-3:15) | 0:05 | estimated |"
        in table
    )
    assert "| packaging | 0:00 after the promotion approval | 0:04 | 0:04 | estimated |" in table
    assert clock(3725.4) == "1:02:05" and clock(59.6) == "1:00"
    with pytest.raises(KeyError, match="no phase named 'nope'"):
        HAND.get("nope")


def test_estimate_against_actual_per_phase() -> None:
    actual = {"validation": 2.1, "sweep": 125.0, "cross-validation, final model": 25.0, "evaluation": 8.0}
    actual |= {"budget approval": 40.0, "registration": 5.0, "promotion approval": 300.0}
    rows = {row.name: row for row in compare_phases(HAND, actual)}
    assert rows["sweep"].error == pytest.approx((100 - 125) / 125) and rows["sweep"].within_range
    assert rows["evaluation"].error == pytest.approx(0.25)
    # Measured before the plan, a wait, or not reached: nothing to compare.
    assert math.isnan(rows["validation"].error) and math.isnan(rows["budget approval"].error)
    assert rows["packaging"].actual is None and math.isnan(rows["packaging"].error)
    assert rows["cross-validation, final model"].within_range is None  # no range for it
    table = comparison_markdown(list(rows.values()))
    assert "| sweep | 1:40 (90%: 1:00-2:40) | 2:05 (inside the range) | -20% |" in table
    assert "| promotion approval | until decided | 5:00 |  |" in table
    assert "| packaging | 0:04 | not reached |  |" in table
    assert "| validation | measured before the plan | 0:02 |  |" in table
    metrics = phase_metrics(list(rows.values()))
    assert metrics["phase/sweep/seconds"] == 125.0 and metrics["phase/sweep/error"] == pytest.approx(-0.2)
    assert metrics["phase/cross_validation_final_model/error"] == pytest.approx(-0.2)
    assert "phase/packaging/seconds" not in metrics and "phase/validation/error" not in metrics
    assert metric_key("split, features, baselines") == "split_features_baselines"


def test_the_clock_charges_each_phase_the_time_since_the_last_mark(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter([100.0, 102.5, 110.0, 111.0])
    monkeypatch.setattr("models.estimate.timeline.time.monotonic", lambda: next(ticks))
    phases = PhaseClock()
    assert phases.mark(VALIDATION) == 2.5
    phases.mark(SWEEP)
    phases.mark(SWEEP)  # a phase marked twice adds up
    assert phases.seconds == {VALIDATION: 2.5, SWEEP: 8.5}


def test_the_sweep_range_brackets_the_mean_and_comes_from_the_simulated_sweeps() -> None:
    common = {
        "epoch_seconds": [1.0, 2.0],
        "trials": 6,
        "grace_period": 1,
        "reduction_factor": 2,
        "max_t": 8,
        "trial_overhead_seconds": 0.5,
        "worker_start_seconds": 1.0,
        "seed": 3,
        "patience": 2,
    }
    outcome = simulate_asha(concurrency=2, **common)
    low, high = outcome.sweep_seconds_range
    assert low < outcome.sweep_seconds < high
    epochs_low, epochs_high = outcome.sweep_epochs_range
    assert epochs_low <= outcome.epochs_per_trial * 6 <= epochs_high
    # No randomness left (one architecture, every trial runs to max_t): the range closes on the mean.
    fixed = simulate_asha(
        **{**common, "epoch_seconds": [1.0], "grace_period": 8, "patience": None}, concurrency=1
    )
    assert fixed.sweep_seconds_range == pytest.approx((fixed.sweep_seconds, fixed.sweep_seconds))


def test_a_device_epoch_is_flops_at_its_rate_or_its_least_step_time() -> None:
    spec = DeviceSpec(price_per_hour=1.0, memory_gb=16, train_tflops=1.0, step_seconds=0.002)
    # 10 steps of 100 rows x 1e8 FLOPs at 1e12 FLOP/s = 0.01 s each; 3 validation batches of 100 x 3e7 = 0.003 s.
    assert device_epoch_seconds(
        spec, train_flops=10**8, forward_flops=3 * 10**7, batch_size=100, train_rows=1000, val_rows=250
    ) == pytest.approx(10 * 0.01 + 3 * 0.003)
    # A tiny network is bound by the step floor: 10 x 2 ms, and 3 x 2/3 ms for validation.
    assert device_epoch_seconds(
        spec, train_flops=1000, forward_flops=300, batch_size=100, train_rows=1000, val_rows=250
    ) == pytest.approx(10 * 0.002 + 3 * 0.002 / 3)


@pytest.fixture(scope="module")
def small_estimate():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"a": rng.normal(size=1200), "b": rng.exponential(size=1200), "c": rng.choice(list("xyz"), 1200)}
    )
    transform = FeatureTransform.fit(frame, FeatureConfig(numeric=["a", "b"], categorical=["c"]))
    prices = EstimateConfig(
        profile_steps=5,
        devices={
            "big": DeviceSpec(
                price_per_hour=2.0, memory_gb=80, train_tflops=10.0, measured="bench, 2026-12-06"
            ),
            "tiny": DeviceSpec(price_per_hour=0.5, memory_gb=1e-6, train_tflops=1.0),
        },
    )
    model = ModelConfig(
        architecture="mlp", num_embedding="none", hidden_sizes=[32], batch_size=64, max_epochs=4
    )
    sweep = SweepConfig.model_validate(
        {
            "num_samples": 3,
            "max_concurrent_trials": 2,
            "grace_period": 1,
            "gpus_per_trial": 0.5,
            "search_space": {"learning_rate": {"type": "loguniform", "low": 1e-3, "high": 1e-2}},
        }
    )
    est = estimate_resources(
        transform.transform(frame),
        300,
        transform=transform,
        model=model,
        sweep=sweep,
        prices=prices,
        seed=1,
        test_rows=500,
    )
    return est, prices


def test_what_if_rows_price_the_same_sweep_on_each_device(small_estimate) -> None:
    est, prices = small_estimate
    big, tiny = est.what_if
    assert (big.device, tiny.device) == ("big", "tiny")
    assert big.concurrency == 2  # gpus_per_trial 0.5: two trials share the one device
    assert big.cost == pytest.approx(big.sweep_seconds / 3600 * 2.0)
    assert big.sweep_seconds_range[0] <= big.sweep_seconds <= big.sweep_seconds_range[1]
    assert big.memory_bytes == pytest.approx(est.memory.total * 2) and big.fits and not tiny.fits
    table = est.what_if_markdown()
    assert "| big | measured (bench, 2026-12-06) | 2 |" in table
    assert "| tiny | projection (not measured) |" in table and "does NOT fit" in table
    assert table.splitlines()[2].startswith(f"| {est.device} (this run) | measured here |")
    # The phases after the sweep come from the price table's calibrated constants.
    assert est.evaluation_seconds == pytest.approx(
        prices.evaluation_seconds + prices.evaluation_seconds_per_1k_rows * (1200 + 300 + 500) / 1000
    )
    assert (est.registration_seconds, est.packaging_seconds) == (
        prices.registration_seconds,
        prices.packaging_seconds,
    )
    assert est.sweep_start_seconds == prices.sweep_start_seconds > 0
    low, high = est.cost_range
    assert low <= est.cost <= high
    assert est.to_tags()["estimate.sweep_seconds_p95"] == f"{est.sweep_seconds_range[1]:.1f}"


def test_the_budget_gate_shows_the_timeline_table_chart_and_what_if_rows(small_estimate) -> None:
    est, _ = small_estimate
    plan = plan_run(est, {"validation": 1.0, "split, features, baselines": 2.0, "estimate": 0.5})
    assert [p.name for p in plan.phases][3:5] == [BUDGET_APPROVAL, SWEEP]
    start = est.sweep_start_seconds  # Ray's start and the parent run, before the trials
    assert plan.get(SWEEP).seconds == pytest.approx(start + est.sweep_seconds)
    assert plan.get(SWEEP).low == pytest.approx(start + est.sweep_seconds_range[0])
    assert plan.get(EVALUATION).seconds == est.evaluation_seconds
    assert plan.get(PROMOTION_APPROVAL).is_wait and plan.get(PACKAGING).seconds == est.packaging_seconds
    run = RunIdentity("crm", "crm-leads", "c", "d", "v", "f")
    evidence = budget_gate(
        run, est, "### Data", {"train": 1, "val": 1, "test": 1}, GatePolicy(), plan
    ).evidence
    assert "### Timeline" in evidence and plan.to_markdown() in evidence
    assert "### The same sweep on other devices" in evidence and est.what_if_markdown() in evidence
    assert (
        f"(90%: {est.sweep_seconds_range[0] / 60:.1f}-{est.sweep_seconds_range[1] / 60:.1f} min)" in evidence
    )
    [image] = [
        line for line in evidence.splitlines() if line.startswith("![Run timeline](data:image/png;base64,")
    ]
    png = base64.b64decode(image.split(",", 1)[1].rstrip(")"))
    assert png.startswith(b"\x89PNG") and png == timeline_png(plan)
    assert markdown_image(b"x", "a") == "![a](data:image/png;base64,eA==)"
    no_devices = dataclasses.replace(est, what_if=[])
    assert (
        "other devices"
        not in budget_gate(run, no_devices, "", {"train": 1, "val": 1, "test": 1}, GatePolicy()).evidence
    )
