"""Business value of scores: decisions under capacity, profit curve, optimal threshold, gains, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from models.evaluation import plots
from models.evaluation.business import (
    business_report,
    contacts_at,
    optimal_threshold,
    outcome_at,
    profit_curve,
)
from models.evaluation.config import BusinessConfig
from models.evaluation.gains import gains

# Profits, ROIs and shares below are sums of a handful of exact products: 1e-12 promises agreement to
# float64 rounding, nothing looser.
EXACT = 1e-12

# Six rows, shuffled so sorting matters. By score: 0.9(1) 0.8(1) 0.7(0) 0.6(1) 0.4(0) 0.2(0).
# With value 10 and cost 3, contacting down to each score gives
#   threshold  >0.9  0.9  0.8  0.7  0.6  0.4  0.2
#   contacts     0    1    2    3    4    5    6
#   conversions  0    1    2    2    3    3    3
#   profit       0    7   14   11   18   15   12
SCORES = np.array([0.4, 0.9, 0.2, 0.6, 0.8, 0.7])
LABELS = np.array([0, 1, 0, 1, 1, 0])


def config(**overrides: Any) -> BusinessConfig:
    return BusinessConfig(**{"value_per_conversion": 10.0, "cost_per_contact": 3.0} | overrides)


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Informative scores rounded to 2 decimals, so tie groups are common."""
    rng = np.random.default_rng(seed)
    s = np.round(rng.random(n), 2)
    y = (rng.random(n) < 0.1 + 0.6 * s).astype(int)
    return y, s


def test_hand_computed_profit_curve_and_optimum() -> None:
    curve = profit_curve(LABELS, SCORES, config())
    assert curve.thresholds[:-1] == [0.2, 0.4, 0.6, 0.7, 0.8, 0.9]
    assert curve.thresholds[-1] > 0.9  # "contact no one", just above the top score
    assert curve.profit == pytest.approx([12, 15, 18, 11, 14, 7, 0], abs=EXACT)
    assert curve.contacts == [6, 5, 4, 3, 2, 1, 0]
    assert curve.best_threshold == 0.6
    assert curve.best_profit == pytest.approx(18.0, abs=EXACT)


def test_hand_computed_outcomes() -> None:
    at_best = outcome_at(LABELS, SCORES, 0.6, config())
    assert (at_best.contacts, at_best.conversions) == (4, 3)
    assert at_best.contact_rate == pytest.approx(4 / 6, abs=EXACT)
    assert at_best.profit == pytest.approx(18.0, abs=EXACT)
    assert at_best.roi == pytest.approx(18 / 12, abs=EXACT)
    between = outcome_at(LABELS, SCORES, 0.65, config())  # same rows as threshold 0.7
    assert (between.contacts, between.profit) == (3, pytest.approx(11.0, abs=EXACT))

    report = business_report(LABELS, SCORES, config(), threshold=0.75, n_resamples=50, seed=0, confidence=0.9)
    assert (report.model.contacts, report.model.profit) == (2, pytest.approx(14.0, abs=EXACT))
    assert report.contact_all.contacts == 6
    assert report.contact_all.profit == pytest.approx(12.0, abs=EXACT)
    assert report.contact_all.roi == pytest.approx(12 / 18, abs=EXACT)
    assert (report.contact_none.contacts, report.contact_none.profit, report.contact_none.roi) == (
        0,
        0.0,
        None,
    )
    assert report.contact_none.threshold > SCORES.max()
    assert report.break_even == pytest.approx(0.3, abs=EXACT)
    assert report.optimal.threshold.value == 0.6
    assert report.optimal.profit.value == pytest.approx(18.0, abs=EXACT)
    assert report.optimal.contacts == 4


def test_roi_is_none_when_nothing_is_spent() -> None:
    free = outcome_at(LABELS, SCORES, 0.6, config(cost_per_contact=0.0))
    assert free.profit == pytest.approx(30.0, abs=EXACT)
    assert free.roi is None
    assert outcome_at(LABELS, SCORES, 0.95, config()).roi is None


def test_best_profit_is_never_negative() -> None:
    # Each contact costs more than a conversion is worth: the best policy is to contact no one.
    curve = profit_curve(LABELS, SCORES, config(cost_per_contact=11.0))
    assert curve.best_index == len(curve.thresholds) - 1
    assert curve.best_profit == 0.0
    assert max(curve.profit[:-1]) < 0
    assert outcome_at(LABELS, SCORES, curve.best_threshold, config(cost_per_contact=11.0)).contacts == 0


def test_profit_ties_go_to_the_highest_threshold() -> None:
    # Value 10, cost 5, labels 1 0 1 by score: profit 5 at 0.9 (one contact) and at 0.7 (three).
    curve = profit_curve([1, 0, 1], [0.9, 0.8, 0.7], config(cost_per_contact=5.0))
    assert curve.profit == pytest.approx([5, 0, 5, 0], abs=EXACT)
    assert curve.best_threshold == 0.9


def test_profit_ties_survive_float_rounding() -> None:
    # 0.3 * 3 - 0.1 * 3 = 0.5999999999999999 < 0.3 * 5 - 0.1 * 9 = 0.6: equal in exact arithmetic, so the
    # three-contact threshold (0.7) must win over the nine-contact one (0.1).
    scores = np.round(np.arange(9, 0, -1) / 10, 1)
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1, 1])
    cfg = config(value_per_conversion=0.3, cost_per_contact=0.1)
    curve = profit_curve(labels, scores, cfg)
    assert curve.best_threshold == 0.7
    assert curve.contacts[curve.best_index] == 3
    choice = optimal_threshold(labels, scores, cfg, n_resamples=20, seed=0, confidence=0.9)
    assert choice.threshold.value == 0.7


def test_tied_scores_form_one_threshold() -> None:
    curve = profit_curve([1, 0, 1], [0.5, 0.5, 0.3], config())
    assert curve.thresholds[:-1] == [0.3, 0.5]
    assert curve.contacts == [3, 2, 0]
    assert curve.profit == pytest.approx([11, 4, 0], abs=EXACT)


def test_capacity_takes_top_scores_per_batch() -> None:
    whole = contacts_at(SCORES, 0.5, config(capacity=2))
    assert whole.tolist() == [False, True, False, False, True, False]  # 0.9 and 0.8
    # Batches [0.4 0.9 0.2] and [0.6 0.8 0.7]: one contact each, the top eligible score.
    batched = config(capacity=1, batch_rows=3)
    assert contacts_at(SCORES, 0.5, batched).tolist() == [False, True, False, False, True, False]
    # Above 0.85 the second batch has no eligible row, and its capacity is not lent to the first.
    assert contacts_at(SCORES, 0.85, batched).tolist() == [False, True, False, False, False, False]
    # The last batch may be short: batches [0.4 0.9 0.2 0.6] and [0.8 0.7].
    short = contacts_at(SCORES, 0.1, config(capacity=2, batch_rows=4))
    assert short.tolist() == [False, True, False, True, True, True]


def test_capacity_with_single_row_batches_and_any_length() -> None:
    single = config(capacity=1, batch_rows=1)
    assert contacts_at(SCORES, 0.5, single).tolist() == (SCORES >= 0.5).tolist()
    assert contacts_at(np.array([0.7]), 0.5, config(capacity=1)).tolist() == [True]
    assert contacts_at(np.array([0.3]), 0.5, config(capacity=1)).tolist() == [False]
    empty = contacts_at(np.array([]), 0.5, config(capacity=3, batch_rows=2))
    assert empty.shape == (0,) and empty.dtype == bool
    assert contacts_at(np.array([]), 0.5, config()).shape == (0,)


def test_capacity_ties_go_to_the_earlier_row() -> None:
    scores = np.array([0.5, 0.5, 0.5, 0.2])
    assert contacts_at(scores, 0.3, config(capacity=2)).tolist() == [True, True, False, False]
    per_batch = config(capacity=1, batch_rows=2)
    assert contacts_at(scores, 0.3, per_batch).tolist() == [True, False, True, False]
    # An explicit priority replaces the score: here later rows first.
    later_first = contacts_at(scores, 0.0, config(capacity=2), order=np.arange(4.0))
    assert later_first.tolist() == [False, False, True, True]
    # Capacity goes to eligible rows only, even when ineligible ones have a higher priority.
    eligible_first = contacts_at(scores, 0.3, config(capacity=2), order=np.arange(4.0))
    assert eligible_first.tolist() == [False, True, True, False]


def test_capacity_profit_curve_hand_computed() -> None:
    # Capacity 2: only the 0.9 and 0.8 rows (both positive) can be contacted; profit 14 from 0.8 down,
    # and the highest of those tied thresholds is chosen.
    curve = profit_curve(LABELS, SCORES, config(capacity=2))
    assert curve.profit == pytest.approx([14, 14, 14, 14, 14, 7, 0], abs=EXACT)
    assert curve.contacts == [2, 2, 2, 2, 2, 1, 0]
    assert curve.best_threshold == 0.8
    # A tie at the capacity cut: the earlier of the tied rows (a positive) is the one contacted.
    tied = profit_curve([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.2], config(capacity=1))
    tied_decisions = contacts_at(np.array([0.5, 0.5, 0.5, 0.2]), 0.5, config(capacity=1))
    assert tied_decisions.tolist() == [True, False, False, False]
    assert tied.profit == pytest.approx([-3, -3, 0], abs=EXACT)
    reversed_tie = profit_curve([1, 0, 0, 1], [0.5, 0.5, 0.5, 0.2], config(capacity=1))
    assert reversed_tie.profit == pytest.approx([7, 7, 0], abs=EXACT)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"capacity": 7}, {"capacity": 3, "batch_rows": 10}, {"capacity": 1, "batch_rows": 1}],
)
def test_vectorised_curve_matches_decisions_at_every_threshold(overrides: dict[str, int]) -> None:
    y, s = synthetic(57, seed=3)  # 57 rows: the last batch of 10 is short
    cfg = config(**overrides)
    curve = profit_curve(y, s, cfg)
    assert len(curve.thresholds) == np.unique(s).size + 1
    for threshold, profit, contacts in zip(curve.thresholds, curve.profit, curve.contacts, strict=True):
        outcome = outcome_at(y, s, threshold, cfg)
        assert outcome.contacts == contacts
        assert outcome.profit == pytest.approx(profit, abs=EXACT)
    assert curve.best_profit == pytest.approx(max(curve.profit), abs=EXACT)


@pytest.mark.parametrize("overrides", [{}, {"capacity": 20, "batch_rows": 100}])
def test_optimal_threshold_interval_is_reproducible_and_contains_point(overrides: dict[str, int]) -> None:
    y, s = synthetic(2000, seed=1)
    cfg = config(**overrides)
    choice = optimal_threshold(y, s, cfg, n_resamples=300, seed=7, confidence=0.9)
    curve = profit_curve(y, s, cfg)
    assert choice.threshold.value == curve.best_threshold
    assert choice.profit.value == pytest.approx(curve.best_profit, abs=EXACT)
    assert choice.threshold.low <= choice.threshold.value <= choice.threshold.high
    assert choice.profit.low <= choice.profit.value <= choice.profit.high
    assert choice.threshold.low < choice.threshold.high  # the resamples do move the optimum
    again = optimal_threshold(y, s, cfg, n_resamples=300, seed=7, confidence=0.9)
    assert again == choice
    other = optimal_threshold(y, s, cfg, n_resamples=300, seed=8, confidence=0.9)
    assert other.profit != choice.profit


def test_bootstrap_resamples_within_batches() -> None:
    # One-row batches: drawing each row from its own batch reproduces the data, so nothing moves.
    y, s = synthetic(300, seed=5)
    choice = optimal_threshold(y, s, config(capacity=1, batch_rows=1), n_resamples=50, seed=0, confidence=0.9)
    assert choice.threshold.low == choice.threshold.value == choice.threshold.high
    assert choice.profit.low == pytest.approx(choice.profit.high, abs=EXACT)


def test_optimal_threshold_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="n_resamples"):
        optimal_threshold(LABELS, SCORES, config(), n_resamples=0, seed=0, confidence=0.9)
    with pytest.raises(ValueError, match="confidence"):
        optimal_threshold(LABELS, SCORES, config(), n_resamples=10, seed=0, confidence=1.5)


@pytest.mark.parametrize("positive_rate", [0.05, 0.3])
def test_gains_on_a_perfect_ranking(positive_rate: float) -> None:
    n = 200
    y = (np.arange(n) < positive_rate * n).astype(int)
    s = np.linspace(1.0, 0.0, n)  # positives first, all scores distinct
    g = gains(y, s)
    assert g.contacted_share == pytest.approx([i / 10 for i in range(1, 11)], abs=EXACT)
    assert g.captured_share[0] == pytest.approx(min(1.0, 0.1 / positive_rate), abs=EXACT)
    assert g.lift[0] == pytest.approx(min(1.0, 0.1 / positive_rate) / 0.1, abs=EXACT)
    assert g.captured_share[-1] == pytest.approx(1.0, abs=EXACT)
    assert (g.rows, g.positives) == (n, round(positive_rate * n))


def test_gains_on_a_constant_score_is_the_diagonal() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])  # positives first: a row-order tie-break would show lift
    g = gains(y, np.full(10, 0.4), n_bins=5)
    assert g.captured_share == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0], abs=EXACT)
    assert g.lift == pytest.approx([1.0] * 5, abs=EXACT)
    assert g.captured_at(0.3) == pytest.approx(0.3, abs=EXACT)


def test_gains_hand_computed_and_rejections() -> None:
    g = gains(LABELS, SCORES, n_bins=3)  # top 2 rows: both positive; top 4: all three positives
    assert g.captured_share == pytest.approx([2 / 3, 1.0, 1.0], abs=EXACT)
    assert g.lift_at(1 / 3) == pytest.approx(2.0, abs=EXACT)
    with pytest.raises(ValueError, match="at least one positive"):
        gains([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="n_bins"):
        gains(LABELS, SCORES, n_bins=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"value_per_conversion": 0.0}, "greater than 0"),
        ({"cost_per_contact": -1.0}, "greater than or equal to 0"),
        ({"value_per_conversion": float("inf")}, "finite"),
        ({"capacity": 0}, "greater than or equal to 1"),
        ({"capacity": 5, "batch_rows": 0}, "greater than or equal to 1"),
        ({"batch_rows": 100}, "batch_rows only applies to a capacity"),
        ({"currency": ""}, "at least 1 character"),
        ({"budget": 3}, "Extra inputs are not permitted"),
    ],
)
def test_config_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(**overrides)


def test_config_needs_value_and_cost() -> None:
    with pytest.raises(ValidationError, match="value_per_conversion"):
        BusinessConfig(cost_per_contact=1.0)  # type: ignore[call-arg]
    assert BusinessConfig(value_per_conversion=1.0, cost_per_contact=0.0).currency == "USD"


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="NaN"):
        contacts_at(SCORES, float("nan"), config())
    with pytest.raises(ValueError, match="length mismatch"):
        contacts_at(SCORES, 0.5, config(capacity=1), order=np.arange(3.0))
    with pytest.raises(ValueError, match="length mismatch"):
        outcome_at(LABELS, SCORES[:5], 0.5, config())


def test_report_with_champion_and_capacity() -> None:
    cfg = config(capacity=1, batch_rows=3, currency="EUR")
    champion = SCORES[::-1].copy()  # [0.7 0.8 0.6 0.2 0.9 0.4]
    report = business_report(
        LABELS, SCORES, cfg, threshold=0.5, champion_scores=champion, n_resamples=50, seed=0, confidence=0.9
    )
    assert (report.model.contacts, report.model.conversions) == (2, 2)  # 0.9 and 0.8, both positive
    # Champion at its default (the same) threshold: 0.8 (row 1, positive) and 0.9 (row 4, positive).
    assert report.champion is not None and report.champion_gains is not None
    assert (report.champion.contacts, report.champion.conversions) == (2, 2)
    # Contact everyone with capacity: the first row of each batch, unranked (rows 0 and 3: labels 0, 1).
    assert (report.contact_all.contacts, report.contact_all.conversions) == (2, 1)
    assert report.contact_all.profit == pytest.approx(4.0, abs=EXACT)
    own = business_report(
        LABELS,
        SCORES,
        cfg,
        threshold=0.5,
        champion_scores=champion,
        champion_threshold=0.85,
        n_resamples=50,
        seed=0,
        confidence=0.9,
    )
    assert own.champion is not None
    assert (own.champion.threshold, own.champion.contacts) == (0.85, 1)

    text = report.markdown()
    assert text.startswith("### Business value (EUR)")
    for row in ("| model (saved threshold) | 0.5000 | 2 | 2 | 14.00 | 233.3% |", "| champion |"):
        assert row in text
    assert "| contact everyone | — | 2 | 1 | 4.00 | 66.7% |" in text
    assert "| contact no one | — | 0 | 0 | 0.00 | — |" in text
    assert "at most 1 contacts per batch of 3 rows" in text
    assert "Break-even probability (cost / value): 0.3000" in text
    assert "top 10% of scores capture" in text and "champion's top 10%" in text


def test_report_is_json_safe_and_flat_metrics_are_finite() -> None:
    y, s = synthetic(300, seed=2)
    cfg = config(cost_per_contact=0.0)  # free contacts: every ROI is undefined
    report = business_report(
        y, s, cfg, threshold=0.5, champion_scores=s**2, n_resamples=100, seed=0, confidence=0.95
    )
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["config"]["currency"] == "USD"
    assert data["model"]["roi"] is None
    assert data["optimal"]["threshold"]["confidence"] == 0.95
    flat = report.flat_metrics()
    assert all(np.isfinite(v) for v in flat.values())
    assert "business/roi" not in flat and "business/roi_champion" not in flat
    assert flat["business/profit"] == pytest.approx(report.model.profit, abs=EXACT)
    assert flat["business/profit_contact_all"] == pytest.approx(10.0 * y.sum(), abs=EXACT)
    expected = {
        "business/threshold",
        "business/contacts",
        "business/optimal_threshold",
        "business/optimal_threshold_low",
        "business/optimal_threshold_high",
        "business/profit_champion",
    }
    assert expected <= flat.keys()
    priced = business_report(y, s, config(), threshold=0.5, n_resamples=100, seed=0, confidence=0.95)
    assert "business/roi" in priced.flat_metrics() and "business/profit_champion" not in priced.flat_metrics()


def test_gains_and_profit_plots_write_png(tmp_path: Path) -> None:
    y, s = synthetic(200, seed=4)
    curves = {"model": profit_curve(y, s, config()), "squared": profit_curve(y, s**2, config())}
    paths = [
        plots.plot_gains(y, {"model": s, "squared": s**2}, tmp_path / "gains.png"),
        plots.plot_profit(curves, 0.5, tmp_path / "nested" / "profit.png"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
