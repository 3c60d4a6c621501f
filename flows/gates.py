"""Approval gates: evidence once, a policy or a person decides, every decision recorded.

A gate publishes its evidence as a Prefect markdown artifact and uses the same markdown as the
description of the resume form. When a person must decide, the flow waits: a deployment run
suspends (its worker is released; on resume the flow replays from the top and earlier tasks come
back from their persisted results), a local run against a server pauses in-process. On Prefect's
ephemeral default there is nobody to ask: such a gate fails at once and says to run `mlops up`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from prefect import runtime
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.settings import get_current_settings
from pydantic import Field

from models.errors import UserInputError
from models.params import ApprovalConfig, GatePolicy

EVENT_DECIDED = "mlops.approval.decided"
EVENT_REFUSED = "mlops.approval.refused"
PAUSE_POLL_SECONDS = 2  # Prefect's default of 10 s makes a resumed local run wait needlessly


class ApprovalInput(RunInput):
    """The resume form an approver fills in the Prefect UI (or `mlops approvals approve`)."""

    approved: bool = Field(default=False, description="Tick to approve; leave unticked to reject.")
    approver: str = Field(min_length=1, description="Your name, recorded with the decision.")
    comment: str = Field(default="", description="Why: recorded on the model version and in the event.")


class GateNeedsServerError(UserInputError):
    """A person must decide, but the run uses Prefect's ephemeral default where nobody can resume it."""


@dataclass(frozen=True)
class GateDecision:
    gate: str
    approved: bool
    decided_by: str  # "policy", "human" or "timeout"
    reason: str
    evidence_hash: str
    decided_at: str
    approver: str | None = None
    comment: str = ""
    refused: list[str] = field(default_factory=list)

    def tags(self) -> dict[str, str]:
        """Flat tags for the model version: ``approval.<gate>.*``."""
        prefix = f"approval.{self.gate}"
        tags = {
            f"{prefix}.outcome": "approved" if self.approved else "rejected",
            f"{prefix}.decided_by": self.decided_by,
            f"{prefix}.reason": self.reason[:5000],
            f"{prefix}.evidence_sha256": self.evidence_hash,
            f"{prefix}.decided_at": self.decided_at,
            f"{prefix}.approver": self.approver or "",
            f"{prefix}.comment": self.comment[:5000],
        }
        if self.refused:
            tags[f"{prefix}.refused_approvers"] = ", ".join(self.refused)
        return tags

    def to_dict(self) -> dict:
        return asdict(self)


def server_available() -> bool:
    """True when runs talk to a Prefect server someone can open (not the ephemeral default)."""
    return bool(get_current_settings().api.url)


def require_server_for(approval: ApprovalConfig) -> None:
    """Fail at the start of a run, not after training, when a gate may need a person but cannot get one."""
    if approval.may_need_human and not server_available():
        raise GateNeedsServerError(
            "an approval gate may need a person, but this run uses Prefect's ephemeral default where "
            "nobody can resume it: start the local stack with `mlops up` (or set PREFECT_API_URL), "
            "or set approval.budget.mode and approval.promotion.mode to 'auto'"
        )


def needs_human(policy: GatePolicy, *, cost: float, checks_passed: bool) -> bool:
    if policy.mode == "human":
        return True
    if policy.mode == "threshold":
        return not (checks_passed and policy.max_cost is not None and cost <= policy.max_cost)
    return False


def _emit(event: str, decision: GateDecision, resource_id: str, extra: dict | None = None) -> None:
    emit_event(
        event=event,
        resource={"prefect.resource.id": resource_id, "prefect.resource.name": resource_id.split(".", 2)[-1]},
        related=[
            {
                "prefect.resource.id": f"prefect.flow-run.{runtime.flow_run.id}",
                "prefect.resource.role": "flow-run",
            }
        ]
        if runtime.flow_run.id
        else None,
        payload={**decision.to_dict(), **(extra or {})},
    )


def _wait_for_person(gate: str, evidence: str, timeout: int, attempt: int) -> ApprovalInput:
    form = ApprovalInput.with_initial_data(description=evidence, approved=False)
    key = f"{gate}-gate-{attempt}"
    if runtime.deployment.id:
        return suspend_flow_run(wait_for_input=form, timeout=timeout, key=key)
    return pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=PAUSE_POLL_SECONDS, key=key)


def run_gate(
    gate: str,
    evidence: str,
    *,
    policy: GatePolicy,
    approval: ApprovalConfig,
    policy_approves: bool,
    policy_reason: str,
    cost: float,
    resource_id: str,
    summary: dict[str, str | float | int | None],
) -> GateDecision:
    """Decide one gate: by policy when it may, else by a person through the resume form.

    ``summary`` (model, cost, key metrics) goes into a table artifact that `mlops approvals list`
    reads. A timeout rejects; an approver outside the allowlist is refused, recorded, and the gate
    waits for someone else.
    """
    evidence_hash = hashlib.sha256(evidence.encode()).hexdigest()
    create_markdown_artifact(
        key=f"{gate}-gate-evidence", markdown=evidence, description=f"Evidence for the {gate} gate"
    )
    now = lambda: datetime.now(UTC).isoformat(timespec="seconds")  # noqa: E731
    if not needs_human(policy, cost=cost, checks_passed=policy_approves):
        decision = GateDecision(
            gate, policy_approves, "policy", f"policy ({policy.mode}): {policy_reason}", evidence_hash, now()
        )
        create_table_artifact(key=f"{gate}-gate", table=[{"gate": gate, "waiting": False, **summary}])
        _emit(EVENT_DECIDED, decision, resource_id)
        return decision
    if not server_available():
        raise GateNeedsServerError(f"the {gate} gate needs a person: start the local stack with `mlops up`")
    create_table_artifact(
        key=f"{gate}-gate",
        table=[{"gate": gate, "waiting": True, "allowlist": ", ".join(approval.allowlist), **summary}],
    )
    refused: list[str] = []
    attempt = 0
    while True:
        try:
            answer = _wait_for_person(gate, evidence, approval.timeout_seconds, attempt)
        except FlowPauseTimeout:
            decision = GateDecision(
                gate, False, "timeout", f"no decision within {approval.timeout_seconds} s: rejected",
                evidence_hash, now(), refused=refused,
            )  # fmt: skip
            break
        approver = answer.approver.strip()
        if approval.allowlist and approver not in approval.allowlist:
            refused.append(approver)
            refusal = GateDecision(
                gate,
                False,
                "human",
                f"{approver!r} is not on the approver allowlist",
                evidence_hash,
                now(),
                approver,
                answer.comment,
                refused,
            )
            _emit(EVENT_REFUSED, refusal, resource_id)
            attempt += 1
            continue
        verdict = "approved" if answer.approved else "rejected"
        decision = GateDecision(
            gate, answer.approved, "human", f"{verdict} by {approver}" + (f": {answer.comment}" if answer.comment else ""),
            evidence_hash, now(), approver, answer.comment, refused,
        )  # fmt: skip
        break
    _emit(EVENT_DECIDED, decision, resource_id)
    return decision
