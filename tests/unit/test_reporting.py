"""The evidence and tags a pipeline run publishes (models/governance/evidence.py), on real estimate objects and
hand-made evaluation results."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_promotion import BASELINES, _report

from models.data.config import LeakageConfig
from models.estimate.actual import ActualUsage, EstimateComparison
from models.estimate.config import EstimateConfig
from models.estimate.resources import estimate_resources
from models.estimate.result import ResourceEstimate
from models.features.config import FeatureConfig
from models.features.transform import FeatureTransform
from models.governance.approval import human_decision, policy_decision
from models.governance.config import GatePolicy, PromotionPolicy
from models.governance.evidence import (
    PipelineSummary,
    RunIdentity,
    budget_gate,
    decision_tags,
    promotion_gate,
    summary_markdown,
)
from models.governance.model_card import CardContext, model_card
from models.governance.names import MAX_TAG_LENGTH
from models.governance.promotion import decide_promotion
from models.nn.config import ModelConfig
from models.training.config import SweepConfig

from helpers.tables import PLANTED, planted_leakage

RUN = RunIdentity("crm", "crm-model", "c0ffee" * 3, "f1n9e4" * 4, "abc123", "run-1")
ROWS = {"train": 7_000, "val": 1_500, "test": 1_500}


@pytest.fixture(scope="module")
def est() -> ResourceEstimate:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=600), "c": rng.choice(list("abc"), size=600)})
    transform = FeatureTransform.fit(frame, FeatureConfig(numeric=["x"], categorical=["c"]))
    return estimate_resources(
        transform.transform(frame),
        100,
        transform=transform,
        model=ModelConfig(hidden_sizes=[8], max_epochs=3),
        sweep=SweepConfig(num_samples=2),
        prices=EstimateConfig(profile_steps=5),
        seed=1,
    )


def _actual(seconds: float) -> ActualUsage:
    return ActualUsage(
        sweep_seconds=seconds, trials=2, epochs_total=5, train_seconds_total=seconds / 2, device="cpu"
    )


def _comparison(sweep_error: float) -> EstimateComparison:
    return EstimateComparison(sweep_error, 0.1, 0.05, -0.02, 0.0)


def test_budget_gate_shows_the_estimate_and_lets_the_policy_approve(est) -> None:
    request = budget_gate(
        RUN, est, "### Data validation passed", ROWS, GatePolicy(mode="threshold", max_cost=1.0)
    )
    assert request.gate == "budget" and request.policy_approves
    assert f"**{est.trials} trials** on **{est.device}**" in request.evidence
    assert f"**{est.cost:.4f} {est.currency}**" in request.evidence
    assert "Training rows 7,000, validation 1,500, test 1,500." in request.evidence
    assert request.evidence.rstrip().endswith("### Data validation passed")
    assert request.resource_id == "mlops.pipeline.crm"
    assert request.summary.version is None and math.isclose(
        request.summary.sweep_minutes, est.sweep_seconds / 60
    )


def test_promotion_gate_shows_verdict_cost_and_evaluation(est) -> None:
    evaluation = _report(0.84, BASELINES)
    decision = decide_promotion(evaluation, PromotionPolicy())
    actual_seconds = est.sweep_seconds * 2
    request = promotion_gate(
        RUN,
        "7",
        est,
        _comparison(float("nan")),
        _actual(actual_seconds),
        decision,
        evaluation,
        "VALIDATION",
        "[MLflow run r](http://mlflow/#/r)",
        GatePolicy(mode="human"),
    )
    evidence = request.evidence
    assert evidence.startswith("## Promotion gate: crm-model v7")
    assert "Policy verdict: **reject** (min_auc: pass, holds_own_vs_baselines: FAIL)" in evidence
    # A resumed sweep has no wall-time error: shown as n/a, never as a made-up number.
    assert f"| sweep wall time (s) | {est.sweep_seconds:.0f} | {actual_seconds:.0f} | n/a |" in evidence
    # Twice the time at the estimate's price: twice the cost.
    assert f"| compute cost ({est.currency}) | {est.cost:.4f} | {2 * est.cost:.4f} | |" in evidence
    assert "90%" in evidence and "95%" not in evidence  # the evaluation's own confidence level
    assert "VALIDATION" in evidence and evidence.rstrip().endswith("[MLflow run r](http://mlflow/#/r)")
    assert (request.policy_approves, request.resource_id) == (False, "mlops.model.crm-model.7")
    assert request.summary.roc_auc == pytest.approx(0.84)


def test_sweep_error_shown_as_a_percentage(est) -> None:
    decision = decide_promotion(_report(0.86, BASELINES), PromotionPolicy())
    request = promotion_gate(
        RUN,
        "1",
        est,
        _comparison(0.234),
        _actual(est.sweep_seconds),
        decision,
        _report(0.86, BASELINES),
        "",
        "",
        GatePolicy(),
    )
    assert "| +23% |" in request.evidence


def test_decision_tags_record_the_outcome_not_the_policy_verdict(est) -> None:
    evaluation = _report(0.84, BASELINES)
    policy = decide_promotion(evaluation, PromotionPolicy())  # rejects: does not beat the trees
    request = promotion_gate(
        RUN, "7", est, _comparison(0.1), _actual(10.0), policy, evaluation, "", "", GatePolicy(mode="human")
    )
    overridden = human_decision(
        request, approved=True, approver="ada", comment="x" * 9000, decided_at="t", refused=[]
    )
    tags = decision_tags(policy, overridden, evaluation)
    assert (tags["promotion.decision"], tags["promotion.decided_by"]) == ("approved", "human")
    assert (tags["policy.verdict"], tags["policy.checks"]) == (
        "reject",
        '{"min_auc": true, "holds_own_vs_baselines": false}',
    )
    assert tags["test.roc_auc"] == "0.84000"
    assert max(len(v) for v in tags.values()) <= MAX_TAG_LENGTH
    by_policy = decision_tags(policy, policy_decision(request, "t"), evaluation)
    assert (by_policy["promotion.decision"], by_policy["promotion.decided_by"]) == ("rejected", "policy")


def test_run_identity_names_the_sweep_by_data_and_config() -> None:
    assert RUN.sweep_name == f"crm-{RUN.data_fingerprint[:10]}-{RUN.config_hash[:10]}"


def test_summary_markdown(est) -> None:
    evaluation = _report(0.86, BASELINES)
    budget = policy_decision(budget_gate(RUN, est, "", ROWS, GatePolicy()), "t")
    summary = PipelineSummary(
        "crm-model", "sqlite:///x", est, budget, version="3", promoted=True, reason="why"
    )
    text = summary_markdown(summary, evaluation)
    assert text.startswith("## crm-model v3: promoted to champion\n\nwhy\n\n### Test metrics")


def test_the_promotion_gate_and_the_model_card_name_the_planted_column(est) -> None:
    evaluation = _report(0.97, BASELINES)
    evaluation.leakage = planted_leakage(LeakageConfig())
    decision = decide_promotion(evaluation, PromotionPolicy(leakage_needs_human=True))
    request = promotion_gate(
        RUN, "2", est, _comparison(0.1), _actual(10.0), decision, evaluation, "", "", GatePolicy()
    )
    head = request.evidence.split("### Cost")[0]  # before any figure: what the approver reads first
    assert f"**Possible target leakage: `{PLANTED.leak}`" in head
    assert "**A person must decide:** possible target leakage in sales_tag" in head
    assert request.human_reasons == decision.human_reasons and request.policy_approves
    assert f"| {PLANTED.leak} | 0.9" in request.evidence  # the evaluation's leakage table
    honest = [*PLANTED.numeric, *PLANTED.categorical]
    assert not [name for name in honest if f"`{name}`" in head or f"| {name} |" in request.evidence]

    card = model_card(_card_context(), _sweep(), _final(), evaluation)
    assert "## Possible target leakage" in card and f"| {PLANTED.leak} |" in card
    limitations = card.split("## Known limitations")[1]
    assert f"Possible target leakage: {PLANTED.leak} predicts" in limitations
    assert not [name for name in honest if f"| {name} |" in card]


def test_a_clean_evaluation_says_no_feature_was_flagged() -> None:
    evaluation = _report(0.86, BASELINES)
    evaluation.leakage = planted_leakage(LeakageConfig(confirmed_safe=[PLANTED.leak]))
    card = model_card(_card_context(), _sweep(), _final(), evaluation)
    assert "No feature flagged." in card and "confirmed safe in the config: sales_tag" in card
    assert "Possible target leakage:" not in card.split("## Known limitations")[1]


def _card_context() -> CardContext:
    return CardContext(
        model_name="crm-model",
        version="2",
        pipeline="crm",
        data_path="leads.csv",
        data_fingerprint="f1n9e4" * 4,
        target=PLANTED.target,
        positive_class="1",
        rows=ROWS,
        numeric=list(PLANTED.numeric),
        categorical=[*PLANTED.categorical, PLANTED.leak],
        validation="passed",
        split_strategy="random",
    )


def _sweep() -> SimpleNamespace:
    """What the card reads of a sweep: no trials to list is enough here."""
    return SimpleNamespace(trials=[], best_val_auc=0.9)


def _final() -> SimpleNamespace:
    """What the card reads of the final model, without training one."""
    scorer = SimpleNamespace(
        net_config={"hidden_sizes": [8], "embedding_dim": 4},
        decision=None,
        calibration=SimpleNamespace(temperature=1.2),
        blend=None,
    )
    return SimpleNamespace(scorer=scorer, cv=None, blend=None, holdout="validation rows", holdout_rows=1_500)
