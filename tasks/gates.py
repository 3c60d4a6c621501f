"""Approval gates on Prefect: evidence once, a policy or a person decides, every decision recorded,
and the queries an approver's tools (``mlops approvals``) make about waiting gates.

A gate publishes its evidence as a Prefect markdown artifact and uses the same markdown as the
description of the resume form. When a person must decide, the flow waits: a deployment run
suspends (its worker is released; on resume the flow replays from the top and earlier tasks come
back from their persisted results), a local run against a server pauses in-process. On Prefect's
ephemeral default there is nobody to ask: such a gate fails at once and says to run `mlops up`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import runtime
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.events import emit_event
from prefect.exceptions import FlowPauseTimeout, ObjectNotFound, PrefectHTTPStatusError
from prefect.flow_runs import pause_flow_run, resume_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.settings import get_current_settings
from pydantic import Field

from models.errors import UserInputError
from models.governance.approval import (
    GATES,
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


class ApprovalError(UserInputError):
    """An approval command cannot act: no server, an unknown or malformed run id, a run not waiting."""


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
    if not needs_human(request.policy, cost=request.cost, checks_passed=request.policy_approves):
        decision = policy_decision(request, _now())
        row = request.summary.row(gate, waiting=False, allowlist=approval.allowlist)
        create_table_artifact(key=summary_key(gate), table=[row])
        _emit(EVENT_DECIDED, decision, request.resource_id)
        return decision
    if not server_available():
        raise GateNeedsServerError(f"the {gate} gate needs a person: start the local stack with `mlops up`")
    row = request.summary.row(gate, waiting=True, allowlist=approval.allowlist)
    create_table_artifact(key=summary_key(gate), table=[row])
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


# ---------------------------------------------------------------------------------------------
# Queries about waiting gates (the approver's side; the same API the Prefect UI uses)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingRun:
    """A flow run paused at a gate, with the gate's summary row ({} when it published none)."""

    run: FlowRun
    row: dict[str, Any]

    @property
    def allowlist(self) -> list[str]:
        return [name.strip() for name in str(self.row.get("allowlist") or "").split(",") if name.strip()]

    @property
    def gate(self) -> str:
        return str(self.row.get("gate", "approval"))


def _require_api() -> str:
    url = get_current_settings().api.url
    if not url:
        raise ApprovalError(
            "approvals live on a Prefect server: start the local stack with `mlops up` (or set PREFECT_API_URL)"
        )
    return url


def _run_id(run_id: str) -> UUID:
    try:
        return UUID(run_id)
    except ValueError:
        raise ApprovalError(f"{run_id!r} is not a flow run id") from None


def _latest_artifact(client, flow_run_id: UUID, keys: set[str]):
    """The newest artifact of ``flow_run_id`` whose key is one of ``keys``, or None."""
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    matching = [a for a in artifacts if a.key in keys]
    return max(matching, key=lambda a: a.created) if matching else None


def _latest_gate_row(client, flow_run_id: UUID) -> dict[str, Any]:
    latest = _latest_artifact(client, flow_run_id, {summary_key(g) for g in GATES})
    return json.loads(latest.data)[0] if latest and isinstance(latest.data, str) else {}


def waiting_runs() -> list[WaitingRun]:
    """Every flow run paused at a gate, oldest first as the server returns them."""
    _require_api()
    state = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=state))
        return [WaitingRun(run, _latest_gate_row(client, run.id)) for run in runs]


def gate_evidence(run_id: str) -> str:
    """The evidence markdown of the latest gate of ``run_id``, as the approver sees it in the UI."""
    _require_api()
    flow_run_id = _run_id(run_id)
    with get_client(sync_client=True) as client:
        evidence = _latest_artifact(client, flow_run_id, {evidence_key(g) for g in GATES})
    if evidence is None:
        raise ApprovalError(f"no gate evidence found for flow run {run_id}")
    return evidence.data


def resume_gate(run_id: str, *, approved: bool, approver: str, comment: str) -> WaitingRun:
    """Answer the form of a run waiting at a gate, as the Prefect UI does; returns the run and its gate.

    An approver outside the gate's allowlist is still sent on: the run records the refusal (tags, event)
    and waits for someone else. The caller tells the person (``on_allowlist``).
    """
    api = _require_api()
    flow_run_id = _run_id(run_id)
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            raise ApprovalError(f"no flow run {run_id} on {api}") from None
        if run.state is None or not run.state.is_paused():
            raise ApprovalError(
                f"flow run {run_id} is not waiting for approval (state: {run.state.name if run.state else 'none'})"
            )
        waiting = WaitingRun(run, _latest_gate_row(client, flow_run_id))
    try:
        resume_flow_run(
            flow_run_id, run_input={"approved": approved, "approver": approver, "comment": comment}
        )
    except (PrefectHTTPStatusError, RuntimeError) as exc:
        detail = getattr(getattr(exc, "response", None), "text", "") or str(exc)
        raise ApprovalError(f"could not resume flow run {run_id}: {detail}") from None
    return waiting
