"""``mlops approvals list|show|approve|reject``: decide gates as the Prefect UI's resume form does."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import err, fail, out

approvals_app = typer.Typer(
    help="Decide the approval gates of paused runs (as in the Prefect UI).", no_args_is_help=True
)


def _paused_runs(client) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    state = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
    return client.read_flow_runs(flow_run_filter=FlowRunFilter(state=state))


def _gate_artifact(client, flow_run_id, suffix: str):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    matching = [a for a in artifacts if (a.key or "").endswith(suffix)]
    return max(matching, key=lambda a: a.created) if matching else None


def _require_api() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise fail(
            "approvals live on a Prefect server: start the local stack with `mlops up` (or set PREFECT_API_URL)"
        )


@approvals_app.command("list")
def approvals_list() -> None:
    """Runs waiting at a gate, with the gate, model, cost and key metric."""

    from prefect.client.orchestration import get_client

    _require_api()
    with get_client(sync_client=True) as client:
        runs = _paused_runs(client)
        table = Table(
            "run id", "run", "gate", "model", "version", "cost", "ROC AUC", "approvers", "waiting since"
        )
        for run in runs:
            row = _gate_row(client, run.id)
            table.add_row(
                str(run.id), run.name, str(row.get("gate", "?")), str(row.get("model", "")), str(row.get("version") or ""),
                str(row.get("cost", "")), str(row.get("roc_auc") or ""), str(row.get("allowlist") or "anyone"),
                str(run.state.timestamp)[:19] if run.state else "",
            )  # fmt: skip
    out.print(table if runs else "no run is waiting for approval")


@approvals_app.command("show")
def approvals_show(
    run_id: Annotated[str, typer.Argument(help="Flow run id from `mlops approvals list`.")],
) -> None:
    """Print the evidence an approver sees for a waiting run."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from rich.markdown import Markdown

    _require_api()
    with get_client(sync_client=True) as client:
        try:
            artifact = _gate_artifact(client, UUID(run_id), "-gate-evidence")
        except ValueError:
            raise fail(f"{run_id!r} is not a flow run id") from None
    if artifact is None:
        raise fail(f"no gate evidence found for flow run {run_id}")
    out.print(Markdown(artifact.data))


def _gate_row(client, flow_run_id) -> dict:
    """The waiting gate's summary row (gate, model, cost, allowlist, ...), or {} when there is none."""
    import json

    artifact = _gate_artifact(client, flow_run_id, "-gate")
    return json.loads(artifact.data)[0] if artifact and isinstance(artifact.data, str) else {}


def _decide(run_id: str, approved: bool, approver: str, comment: str) -> None:
    """Resume the run with the form's answer, as the Prefect UI does.

    An approver outside the gate's allowlist is still sent: the run records the refusal (tags, event) and
    waits on. The command then says so and exits 1 instead of reporting a decision that did not happen.
    """
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
    from prefect.flow_runs import resume_flow_run

    _require_api()
    try:
        flow_run_id = UUID(run_id)
    except ValueError:
        raise fail(f"{run_id!r} is not a flow run id") from None
    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(flow_run_id).state
        except ObjectNotFound:
            raise fail(f"no flow run {run_id} on {os.environ['PREFECT_API_URL']}") from None
        if state is None or not state.is_paused():
            raise fail(
                f"flow run {run_id} is not waiting for approval (state: {state.name if state else 'none'})"
            )
        row = _gate_row(client, flow_run_id)
    try:
        resume_flow_run(
            flow_run_id, run_input={"approved": approved, "approver": approver, "comment": comment}
        )
    except (PrefectHTTPStatusError, RuntimeError) as exc:
        detail = getattr(getattr(exc, "response", None), "text", "") or str(exc)
        raise fail(f"could not resume flow run {run_id}: {detail}") from None
    allowlist = [name.strip() for name in str(row.get("allowlist") or "").split(",") if name.strip()]
    gate = row.get("gate", "approval")
    if allowlist and approver.strip() not in allowlist:
        err.print(
            f"refused: {approver!r} is not on the {gate} gate's approver allowlist ({', '.join(allowlist)}); "
            "the refusal is recorded and the run still waits for an allowed approver"
        )
        raise typer.Exit(1)
    out.print(f"{'approved' if approved else 'rejected'} the {gate} gate of flow run {run_id} as {approver}")


ApproverOption = Annotated[
    str, typer.Option("--approver", "-a", help="Your name, recorded with the decision.")
]
CommentOption = Annotated[str, typer.Option("--comment", help="Why; recorded on the model version.")]


@approvals_app.command("approve")
def approvals_approve(
    run_id: Annotated[str, typer.Argument(help="Flow run id.")],
    approver: ApproverOption,
    comment: CommentOption = "",
) -> None:
    """Approve the gate a run is waiting at; the run resumes."""
    _decide(run_id, True, approver, comment)


@approvals_app.command("reject")
def approvals_reject(
    run_id: Annotated[str, typer.Argument(help="Flow run id.")],
    approver: ApproverOption,
    comment: CommentOption = "",
) -> None:
    """Reject the gate a run is waiting at; the candidate never becomes champion."""
    _decide(run_id, False, approver, comment)
