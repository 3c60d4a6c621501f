"""The promotion policy and the evidence an approver reads, on hand-made evaluation results."""

from __future__ import annotations

import pytest

from models.data.config import LeakageConfig
from models.evaluation.bootstrap import MetricInterval, PairedComparison
from models.evaluation.calibration import Calibration
from models.evaluation.evaluate import EvaluationReport
from models.governance.config import PromotionPolicy
from models.governance.promotion import decide_promotion

from helpers.tables import PLANTED, planted_leakage

CONFIDENCE = 0.9


def _interval(value: float, half: float = 0.01) -> MetricInterval:
    return MetricInterval(value=value, low=value - half, high=value + half, confidence=CONFIDENCE)


def _report(
    auc: float,
    baselines: dict[str, float],
    vs_champion: tuple[float, float, float] | None = None,
    champion_version: str | None = None,
    half: float = 0.01,
) -> EvaluationReport:
    champion = None
    if vs_champion is not None:
        diff, low, high = vs_champion
        champion = PairedComparison("roc_auc", diff, low, high, CONFIDENCE, 0.04)
    return EvaluationReport(
        metrics={"roc_auc": _interval(auc)},
        baselines={name: {"roc_auc": _interval(value)} for name, value in baselines.items()},
        vs_baselines={
            name: PairedComparison(
                "roc_auc", auc - value, auc - value - half, auc - value + half, CONFIDENCE, 0.5
            )
            for name, value in baselines.items()
        },
        vs_champion=champion,
        champion_version=champion_version,
        champion_auc=_interval(auc - vs_champion[0]) if vs_champion else None,
        calibration=Calibration(
            ece=0.02, bin_edges=[0.0, 1.0], mean_predicted=[0.5], fraction_positive=[0.5], counts=[10]
        ),
        slices=[],
        robustness=[],
        importance=[],
        test_rows=1000,
    )


BASELINES = {"logistic_regression": 0.80, "gradient_boosted_trees": 0.85}


def test_first_model_that_beats_the_best_baseline_is_promoted() -> None:
    decision = decide_promotion(_report(0.858, BASELINES), PromotionPolicy())
    assert decision.promote
    assert decision.checks == {"min_auc": True, "holds_own_vs_baselines": True}
    assert decision.reason == (
        "first model: test ROC AUC 0.8580 holds its own against the gradient_boosted_trees baseline (0.8500; "
        "difference +0.0080, 90% CI -0.0020 to +0.0180, margin 0.005, on the test rows)"
    )
    clear = decide_promotion(_report(0.865, BASELINES), PromotionPolicy())  # interval above zero
    assert (
        "beats the gradient_boosted_trees baseline (0.8500; difference +0.0150, 90% CI +0.0050"
        in clear.reason
    )


def test_a_model_clearly_below_the_best_baseline_is_not_promoted() -> None:
    # Beats logistic regression, not the trees: its interval against them reaches below -margin.
    decision = decide_promotion(_report(0.838, BASELINES), PromotionPolicy())
    assert not decision.promote
    assert decision.checks["holds_own_vs_baselines"] is False
    assert decision.reason == (
        "not non-inferior to the gradient_boosted_trees baseline: AUC difference -0.0120 "
        "(90% CI -0.0220 to -0.0020) reaches below -0.005"
    )


@pytest.mark.parametrize(
    ("auc", "half", "margin", "promote"),
    [
        (0.848, 0.002, 0.005, True),  # slightly below the trees, interval -0.004 .. 0.000: non-inferior
        (0.848, 0.004, 0.005, False),  # same point, wider interval reaching -0.006: not shown
        (0.848, 0.004, 0.01, True),  # ...within a wider margin
        (0.853, 0.0075, 0.005, True),  # above on the point, low end -0.0045
        (0.853, 0.0085, 0.005, False),  # above on the point, low end -0.0055: not shown non-inferior
    ],
)
def test_non_inferiority_reads_the_interval_not_the_point(auc, half, margin, promote) -> None:
    decision = decide_promotion(_report(auc, BASELINES, half=half), PromotionPolicy(baseline_margin=margin))
    assert decision.promote is promote
    assert decision.checks["holds_own_vs_baselines"] is promote


def test_the_margin_defaults_to_half_a_point_of_auc() -> None:
    assert PromotionPolicy().baseline_margin == 0.005


def test_held_out_evidence_replaces_the_test_comparison_when_present() -> None:
    # On the test split alone the interval reaches -0.02; the cross-validated held-out rows say -0.001.
    report = _report(0.84, BASELINES)
    report.non_inferiority = {
        name: PairedComparison("roc_auc", 0.004, -0.001, 0.009, CONFIDENCE, 0.3) for name in BASELINES
    }
    report.non_inferiority_rows = "1,400 held-out rows"
    decision = decide_promotion(report, PromotionPolicy())
    assert decision.promote and decision.checks["holds_own_vs_baselines"]
    assert "on 1,400 held-out rows" in decision.reason


def test_the_baseline_check_can_be_turned_off_and_says_so() -> None:
    decision = decide_promotion(_report(0.84, BASELINES), PromotionPolicy(require_beat_baseline=False))
    assert decision.promote and "holds_own_vs_baselines" not in decision.checks
    assert "does not beat (not required)" in decision.reason


def test_auc_floor() -> None:
    decision = decide_promotion(_report(0.86, BASELINES), PromotionPolicy(min_auc=0.9))
    assert not decision.promote and decision.checks["min_auc"] is False
    assert "below the floor 0.9000" in decision.reason


@pytest.mark.parametrize(
    ("vs_champion", "significant", "promote"),
    [
        ((0.02, 0.005, 0.035), True, True),  # interval above zero
        ((0.02, -0.001, 0.04), True, False),  # positive gain, interval touches zero: not significant
        ((0.02, -0.001, 0.04), False, True),  # ...enough when significance is not required
        ((0.0, 0.0, 0.0), False, False),  # an identical model is never promoted
        ((-0.01, -0.02, 0.0), False, False),
    ],
)
def test_against_the_champion(vs_champion, significant, promote) -> None:
    report = _report(0.86, BASELINES, vs_champion, champion_version="4")
    decision = decide_promotion(report, PromotionPolicy(require_significant_gain=significant))
    assert decision.promote is promote
    assert decision.checks["beats_champion"] is promote
    if promote:
        assert decision.reason.startswith(f"beats champion v4 by {vs_champion[0]:+.4f} AUC (90% CI")
    else:
        assert "over champion v4" in decision.reason and "90% CI" in decision.reason


def test_a_champion_that_cannot_score_the_test_split_blocks_promotion() -> None:
    decision = decide_promotion(_report(0.86, BASELINES, None, champion_version="4"), PromotionPolicy())
    assert not decision.promote
    assert "champion v4 could not score this test split" in decision.reason


def test_unconfirmed_leakage_needs_a_person_when_the_policy_says_so() -> None:
    report = _report(0.86, BASELINES)
    report.leakage = planted_leakage(LeakageConfig())
    assert [f.feature for f in report.leakage.flagged] == [PLANTED.leak]
    quiet = decide_promotion(report, PromotionPolicy())  # off by default: reported, not a gate reason
    assert quiet.promote and quiet.human_reasons == []
    decision = decide_promotion(report, PromotionPolicy(leakage_needs_human=True))
    assert decision.promote, "leakage asks a person; it is not a failed check"
    [reason] = decision.human_reasons
    assert PLANTED.leak in reason and "is this value known when the prediction is made?" in reason
    assert "engagement" not in reason
    # Confirmed by a person in the config: shown in the report, no longer a reason.
    report.leakage = planted_leakage(LeakageConfig(confirmed_safe=[PLANTED.leak]))
    assert decide_promotion(report, PromotionPolicy(leakage_needs_human=True)).human_reasons == []
