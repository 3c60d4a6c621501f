"""Approval gates of a running flow: evidence published once, a policy or a person decides, every
decision recorded.

A gate publishes its evidence as a Prefect markdown artifact and uses the same markdown as the
description of the resume form. When a person must decide, the flow waits: a deployment run
suspends (its worker is released; on resume the flow replays from the top and earlier tasks come
back from their persisted results), a local run against a server pauses in-process. On Prefect's
ephemeral default there is nobody to ask: such a gate fails at once and says to run `mlops up`.
Flow control, so it lives with the flows: tasks never pause or suspend a run.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.settings import get_current_settings
from pydantic import Field

from flows.links import flow_run_path, prefect_ui_link
from models.errors import UserInputError
from models.governance.approval import (
    GateDecision,
    GateRequest,
    human_decision,
    needs_human,
    on_allowlist,
    policy_decision,
    refusal,
    timeout_decision,
)
from models.governance.config import ApprovalConfig

EVENT_DECIDED = "mlops.approval.decided"
EVENT_REFUSED = "mlops.approval.refused"
PAUSE_POLL_SECONDS = 2  # Prefect's default of 10 s makes a resumed local run wait needlessly


def evidence_key(gate: str) -> str:
    """Key of the markdown artifact holding a gate's evidence."""
    return f"{gate}-gate-evidence"


def summary_key(gate: str) -> str:
    """Key of the table artifact holding a gate's summary row."""
    return f"{gate}-gate"


class ApprovalInput(RunInput):
    """The resume form an approver fills in the Prefect UI (or `mlops approvals approve`)."""

    approved: bool = Field(default=False, description="Tick to approve; leave unticked to reject.")
    approver: str = Field(min_length=1, description="Your name, recorded with the decision.")
    comment: str = Field(default="", description="Why: recorded on the model version and in the event.")


class GateNeedsServerError(UserInputError):
    """A person must decide, but the run uses Prefect's ephemeral default where nobody can resume it."""


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _emit(event: str, decision: GateDecision, resource_id: str) -> None:
    flow_run_id = runtime.flow_run.id
    emit_event(
        event=event,
        resource={"prefect.resource.id": resource_id, "prefect.resource.name": resource_id.split(".", 2)[-1]},
        related=[
            {"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}
        ]
        if flow_run_id
        else None,
        payload=decision.to_dict(),
    )


def _announce_wait(gate: str) -> None:
    """Tell whoever watches the run where to decide. A warning, because `mlops` shows only warnings on the
    console unless --verbose, and this line is the one thing there a person must act on."""
    flow_run_id = runtime.flow_run.id
    link = prefect_ui_link(flow_run_path(flow_run_id))  # None without a server's UI
    in_ui = f"at {link} (the run's menu, Resume) or " if link else ""
    get_run_logger().warning(
        f"the {gate} gate waits for a person: approve {in_ui}with "
        f"`mlops approvals approve {flow_run_id} --approver NAME`"
    )


def _wait_for_person(request: GateRequest, timeout: int, attempt: int) -> ApprovalInput:
    form = ApprovalInput.with_initial_data(description=request.evidence, approved=False)
    key = f"{request.gate}-gate-{attempt}"
    if runtime.deployment.id:
        return suspend_flow_run(wait_for_input=form, timeout=timeout, key=key)
    return pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=PAUSE_POLL_SECONDS, key=key)


def run_gate(request: GateRequest, approval: ApprovalConfig) -> GateDecision:
    """Decide one gate: by policy when it may, else by a person through the resume form.

    The summary row goes into a table artifact that `mlops approvals list` reads. A timeout rejects;
    an approver outside the allowlist is refused, recorded, and the gate waits for someone else.
    """
    gate = request.gate
    create_markdown_artifact(
        key=evidence_key(gate), markdown=request.evidence, description=f"Evidence for the {gate} gate"
    )
    if not needs_human(
        request.policy,
        cost=request.cost,
        checks_passed=request.policy_approves,
        reasons=request.human_reasons,
    ):
        decision = policy_decision(request, _now())
        row = request.summary.row(gate, waiting=False, allowlist=approval.allowlist)
        create_table_artifact(key=summary_key(gate), table=[row])
        _emit(EVENT_DECIDED, decision, request.resource_id)
        return decision
    if not server_available():
        why = "".join(f" ({reason})" for reason in request.human_reasons)
        raise GateNeedsServerError(
            f"the {gate} gate needs a person{why}: start the local stack with `mlops up`"
        )
    row = request.summary.row(gate, waiting=True, allowlist=approval.allowlist)
    create_table_artifact(key=summary_key(gate), table=[row])
    _announce_wait(gate)
    refused: list[str] = []
    attempt = 0
    while True:
        try:
            answer = _wait_for_person(request, approval.timeout_seconds, attempt)
        except FlowPauseTimeout:
            decision = timeout_decision(request, approval.timeout_seconds, _now(), refused)
            break
        approver = answer.approver.strip()
        if not on_allowlist(approver, approval.allowlist):
            refused.append(approver)
            _emit(
                EVENT_REFUSED,
                refusal(
                    request, approver=approver, comment=answer.comment, decided_at=_now(), refused=refused
                ),
                request.resource_id,
            )
            attempt += 1
            continue
        decision = human_decision(
            request,
            approved=answer.approved,
            approver=approver,
            comment=answer.comment,
            decided_at=_now(),
            refused=refused,
        )
        break
    _emit(EVENT_DECIDED, decision, request.resource_id)
    return decision
