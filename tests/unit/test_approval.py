"""Gate policies and decisions as plain data (the Prefect side is tested in tests/integration/test_gates.py)."""

from __future__ import annotations

import pytest

from models.governance.approval import (
    Decider,
    GateRequest,
    GateSummary,
    human_decision,
    needs_human,
    on_allowlist,
    policy_decision,
    refusal,
    timeout_decision,
)
from models.governance.config import GatePolicy
from models.governance.names import MAX_TAG_LENGTH


def _request(mode: str = "auto", *, approves: bool = True, cost: float = 1.0, max_cost: float | None = None):
    return GateRequest(
        gate="promotion",
        evidence="## evidence",
        policy=GatePolicy(mode=mode, max_cost=max_cost),
        policy_approves=approves,
        policy_reason="because",
        cost=cost,
        resource_id="mlops.model.m.3",
        summary=GateSummary("m", "3", cost, 2.5, 0.91234),
    )


@pytest.mark.parametrize(
    ("mode", "max_cost", "cost", "checks_passed", "expected"),
    [
        ("auto", None, 1e9, False, False),  # auto never asks, whatever the cost or checks
        ("human", None, 0.0, True, True),  # human always asks
        ("threshold", 1.0, 0.5, True, False),  # cheap and clean: the policy decides
        ("threshold", 1.0, 1.0, True, False),  # the limit itself is within budget
        ("threshold", 1.0, 1.01, True, True),  # over budget: a person decides
        ("threshold", 1.0, 0.5, False, True),  # a failed check: a person decides
    ],
)
def test_needs_human(mode, max_cost, cost, checks_passed, expected) -> None:
    policy = GatePolicy(mode=mode, max_cost=max_cost)
    assert needs_human(policy, cost=cost, checks_passed=checks_passed) is expected


def test_threshold_mode_needs_a_cost() -> None:
    with pytest.raises(ValueError, match="max_cost"):
        GatePolicy(mode="threshold")


@pytest.mark.parametrize(
    ("approver", "allowlist", "allowed"),
    [
        ("anyone", [], True),
        ("alice", ["alice", "bob"], True),
        (" alice ", ["alice"], True),
        ("mallory", ["alice"], False),
    ],
)
def test_allowlist(approver, allowlist, allowed) -> None:
    assert on_allowlist(approver, allowlist) is allowed


def test_policy_decision_follows_the_policy_verdict_and_says_so() -> None:
    approve = policy_decision(_request(approves=True), "2026-01-01T00:00:00+00:00")
    reject = policy_decision(_request(approves=False), "2026-01-01T00:00:00+00:00")
    assert (approve.approved, approve.decided_by, approve.outcome) == (True, Decider.POLICY, "approved")
    assert (reject.approved, reject.outcome) == (False, "rejected")
    assert approve.reason == "policy (auto): because"


def test_evidence_hash_is_of_the_evidence() -> None:
    import hashlib

    request = _request()
    assert request.evidence_hash == hashlib.sha256(b"## evidence").hexdigest()


def test_timeout_rejects_and_keeps_the_refusals() -> None:
    decision = timeout_decision(_request("human"), 60, "t", ["mallory"])
    assert (decision.approved, decision.decided_by, decision.refused) == (False, Decider.TIMEOUT, ["mallory"])
    assert "60 s" in decision.reason


def test_human_decision_records_who_and_why() -> None:
    decision = human_decision(
        _request("human", approves=False),
        approved=True,
        approver="alice",
        comment="looks good",
        decided_at="t",
        refused=[],
    )
    # The person overrides the policy's verdict.
    assert (decision.approved, decision.decided_by, decision.approver) == (True, Decider.HUMAN, "alice")
    assert decision.reason == "approved by alice: looks good"
    tags = decision.tags()
    assert tags["approval.promotion.outcome"] == "approved"
    assert tags["approval.promotion.approver"] == "alice"
    assert tags["approval.promotion.comment"] == "looks good"
    assert "approval.promotion.refused_approvers" not in tags


def test_refusal_is_not_an_approval() -> None:
    decision = refusal(_request("human"), approver="mallory", comment="", decided_at="t", refused=["mallory"])
    assert not decision.approved and decision.tags()["approval.promotion.refused_approvers"] == "mallory"


def test_tags_fit_mlflow() -> None:
    decision = human_decision(
        _request("human"), approved=False, approver="a", comment="x" * 20_000, decided_at="t", refused=[]
    )
    assert max(len(v) for v in decision.tags().values()) == MAX_TAG_LENGTH


def test_summary_row_for_the_approvals_list() -> None:
    row = _request().summary.row("promotion", waiting=True, allowlist=["alice", "bob"])
    assert row == {
        "gate": "promotion",
        "waiting": True,
        "allowlist": "alice, bob",
        "model": "m",
        "version": "3",
        "cost": 1.0,
        "sweep_minutes": 2.5,
        "roc_auc": 0.9123,
    }


@pytest.mark.parametrize(
    ("mode", "checks_passed", "expected"),
    [
        ("auto", True, True),  # the policy would promote alone: only a person can answer the question
        ("auto", False, False),  # the policy rejects anyway: nothing to ask
        ("threshold", True, True),  # within budget, checks passed: the reason still needs a person
        ("human", False, True),
    ],
)
def test_a_reason_only_a_person_can_judge_makes_the_gate_wait(mode, checks_passed, expected) -> None:
    policy = GatePolicy(mode=mode, max_cost=10.0 if mode == "threshold" else None)
    reasons = ["possible target leakage in sales_tag"]
    assert needs_human(policy, cost=1.0, checks_passed=checks_passed, reasons=reasons) is expected
    assert needs_human(policy, cost=1.0, checks_passed=True, reasons=[]) is (mode == "human")
