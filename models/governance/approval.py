"""Approval gates as plain data: what a gate asks, who may decide without a person, what was decided.

Pure code (no Prefect): ``flows/gates.py`` publishes the request, waits for a person when the policy
says so, and records the decision built here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from models.governance.config import GatePolicy
from models.governance.names import tag_value

BUDGET = "budget"  # before the sweep: approve spending the estimate
PROMOTION = "promotion"  # before the champion alias moves
GATES = (BUDGET, PROMOTION)


class Decider:
    """Who decided a gate (the ``decided_by`` of a decision)."""

    POLICY = "policy"
    HUMAN = "human"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class GateSummary:
    """One row about a gate for ``mlops approvals list``: model, version, cost and key figures."""

    model: str
    version: str | None
    cost: float
    sweep_minutes: float
    roc_auc: float | None = None

    def row(self, gate: str, *, waiting: bool, allowlist: list[str]) -> dict[str, str | float | bool | None]:
        return {
            "gate": gate,
            "waiting": waiting,
            "allowlist": ", ".join(allowlist),
            "model": self.model,
            "version": self.version,
            "cost": round(self.cost, 4),
            "sweep_minutes": round(self.sweep_minutes, 1),
            "roc_auc": None if self.roc_auc is None else round(self.roc_auc, 4),
        }


@dataclass(frozen=True)
class GateRequest:
    """Everything one gate needs to decide: its evidence, the policy and the policy's own verdict."""

    gate: str  # BUDGET or PROMOTION
    evidence: str  # markdown: the artifact and the resume form's description
    policy: GatePolicy
    policy_approves: bool
    policy_reason: str
    cost: float
    resource_id: str  # the Prefect event resource, e.g. "mlops.model.crm-leads.3"
    summary: GateSummary
    human_reasons: list[str] = field(default_factory=list)  # why a person must decide whatever the mode

    @property
    def evidence_hash(self) -> str:
        return hashlib.sha256(self.evidence.encode()).hexdigest()


def needs_human(policy: GatePolicy, *, cost: float, checks_passed: bool, reasons: Sequence[str] = ()) -> bool:
    """True when a person must decide: always in ``human`` mode; in ``threshold`` mode unless every
    check passed and the estimated cost is within ``max_cost``; in ``auto`` mode only when the policy would
    approve but ``reasons`` name something only a person can judge (e.g. possible target leakage)."""
    if policy.mode == "human":
        return True
    if reasons and checks_passed:
        return True
    if policy.mode == "threshold":
        return not (checks_passed and policy.max_cost is not None and cost <= policy.max_cost)
    return False


def on_allowlist(approver: str, allowlist: list[str]) -> bool:
    """An empty allowlist lets anyone decide; otherwise the (trimmed) name must be on it."""
    return not allowlist or approver.strip() in allowlist


@dataclass(frozen=True)
class GateDecision:
    gate: str
    approved: bool
    decided_by: str  # a Decider value
    reason: str
    evidence_hash: str
    decided_at: str
    approver: str | None = None
    comment: str = ""
    refused: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return "approved" if self.approved else "rejected"

    def tags(self) -> dict[str, str]:
        """Flat tags for the model version: ``approval.<gate>.*``."""
        prefix = f"approval.{self.gate}"
        tags = {
            f"{prefix}.outcome": self.outcome,
            f"{prefix}.decided_by": self.decided_by,
            f"{prefix}.reason": tag_value(self.reason),
            f"{prefix}.evidence_sha256": self.evidence_hash,
            f"{prefix}.decided_at": self.decided_at,
            f"{prefix}.approver": self.approver or "",
            f"{prefix}.comment": tag_value(self.comment),
        }
        if self.refused:
            tags[f"{prefix}.refused_approvers"] = ", ".join(self.refused)
        return tags

    def to_dict(self) -> dict:
        return asdict(self)


def policy_decision(request: GateRequest, decided_at: str) -> GateDecision:
    return GateDecision(
        request.gate,
        request.policy_approves,
        Decider.POLICY,
        f"policy ({request.policy.mode}): {request.policy_reason}",
        request.evidence_hash,
        decided_at,
    )


def timeout_decision(
    request: GateRequest, timeout_seconds: int, decided_at: str, refused: list[str]
) -> GateDecision:
    return GateDecision(
        request.gate,
        False,
        Decider.TIMEOUT,
        f"no decision within {timeout_seconds} s: rejected",
        request.evidence_hash,
        decided_at,
        refused=list(refused),
    )


def human_decision(
    request: GateRequest, *, approved: bool, approver: str, comment: str, decided_at: str, refused: list[str]
) -> GateDecision:
    verdict = "approved" if approved else "rejected"
    reason = f"{verdict} by {approver}" + (f": {comment}" if comment else "")
    return GateDecision(
        request.gate,
        approved,
        Decider.HUMAN,
        reason,
        request.evidence_hash,
        decided_at,
        approver,
        comment,
        list(refused),
    )


def refusal(
    request: GateRequest, *, approver: str, comment: str, decided_at: str, refused: list[str]
) -> GateDecision:
    """An approver outside the allowlist answered: recorded, and the gate keeps waiting."""
    return GateDecision(
        request.gate,
        False,
        Decider.HUMAN,
        f"{approver!r} is not on the approver allowlist",
        request.evidence_hash,
        decided_at,
        approver,
        comment,
        list(refused),
    )
