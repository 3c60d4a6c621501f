"""``mlops approvals list|show|approve|reject``: decide gates as the Prefect UI's resume form does."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import err, fail, out, say
from models.errors import UserInputError

approvals_app = typer.Typer(
    help="Decide the approval gates of paused runs (as in the Prefect UI).", no_args_is_help=True
)

ApproverOption = Annotated[
    str, typer.Option("--approver", "-a", help="Your name, recorded with the decision.")
]
CommentOption = Annotated[str, typer.Option("--comment", help="Why; recorded on the model version.")]
RunIdArgument = Annotated[str, typer.Argument(help="Flow run id from `mlops approvals list`.")]


@approvals_app.command("list")
def approvals_list() -> None:
    """Runs waiting at a gate, with the gate, model, cost and key metric."""
    from flows.cli.approval_queries import waiting_runs

    try:
        waiting = waiting_runs()
    except UserInputError as exc:
        raise fail(str(exc)) from None
    if not waiting:
        say("no run is waiting for approval")
        return
    table = Table(
        "run id", "run", "gate", "model", "version", "cost", "ROC AUC", "approvers", "waiting since"
    )
    for w in waiting:
        row = w.row
        table.add_row(
            str(w.run.id),
            w.run.name,
            str(row.get("gate", "?")),
            str(row.get("model", "")),
            str(row.get("version") or ""),
            str(row.get("cost", "")),
            str(row.get("roc_auc") or ""),
            ", ".join(w.allowlist) or "anyone",
            str(w.run.state.timestamp)[:19] if w.run.state else "",
        )
    out.print(table)


@approvals_app.command("show")
def approvals_show(run_id: RunIdArgument) -> None:
    """Print the evidence an approver sees for a waiting run, and the link to the run in the Prefect UI."""
    from rich.markdown import Markdown

    from flows.cli.approval_queries import gate_evidence
    from flows.links import flow_run_path, prefect_ui_link

    try:
        evidence = gate_evidence(run_id)
    except UserInputError as exc:
        raise fail(str(exc)) from None
    out.print(Markdown(evidence))
    say(f"in the Prefect UI: {prefect_ui_link(flow_run_path(run_id))}")


def _decide(run_id: str, approved: bool, approver: str, comment: str) -> None:
    """Resume the run with the form's answer. An approver outside the allowlist is still sent: the run
    records the refusal and waits on; the command says so and exits 1."""
    from flows.cli.approval_queries import resume_gate
    from models.governance.approval import on_allowlist

    try:
        waiting = resume_gate(run_id, approved=approved, approver=approver, comment=comment)
    except UserInputError as exc:
        raise fail(str(exc)) from None
    if not on_allowlist(approver, waiting.allowlist):
        err.print(
            f"refused: {approver!r} is not on the {waiting.gate} gate's approver allowlist "
            f"({', '.join(waiting.allowlist)}); the refusal is recorded and the run still waits for an allowed approver",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    say(
        f"{'approved' if approved else 'rejected'} the {waiting.gate} gate of flow run {run_id} as {approver}"
    )


@approvals_app.command("approve")
def approvals_approve(run_id: RunIdArgument, approver: ApproverOption, comment: CommentOption = "") -> None:
    """Approve the gate a run is waiting at; the run resumes."""
    _decide(run_id, True, approver, comment)


@approvals_app.command("reject")
def approvals_reject(run_id: RunIdArgument, approver: ApproverOption, comment: CommentOption = "") -> None:
    """Reject the gate a run is waiting at; the candidate never becomes champion."""
    _decide(run_id, False, approver, comment)
