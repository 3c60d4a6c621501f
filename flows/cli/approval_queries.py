"""What an approver's tools (``mlops approvals``) ask the Prefect server about runs waiting at a gate,
and the answer they send: the same API the Prefect UI uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.flow_runs import resume_flow_run
from prefect.settings import get_current_settings

from flows.gates import evidence_key, summary_key
from models.errors import UserInputError
from models.governance.approval import GATES


class ApprovalError(UserInputError):
    """An approval command cannot act: no server, an unknown or malformed run id, a run not waiting."""


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
