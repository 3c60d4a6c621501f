"""``mlops rollback``: move a model's champion back to a version that once passed its promotion gate."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from flows.cli.common import EXIT_USER_ERROR, fail, say
from flows.cli.startup import flow_stack


def rollback(
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded on both versions and in the event.")],
    to: Annotated[
        str | None, typer.Option("--to", help="Version to restore (default: the previous-champion).")
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who rolls back (default: your login name).")] = None,
) -> None:
    """Move `champion` back (to `previous-champion` by default); a following service switches within its
    poll interval. Exit 2 when refused (no such version, not approved at its gate, already champion)."""
    with flow_stack():
        from flows.rollback import rollback as rollback_flow
    from models.errors import UserInputError

    state = rollback_flow(model, reason, by or getpass.getuser(), to, return_state=True)
    record = state.result(raise_on_failure=False)
    if isinstance(record, UserInputError):
        raise fail(str(record), EXIT_USER_ERROR)
    if isinstance(record, BaseException):
        raise record
    say(
        f"{model}: champion is v{record.to_version} again (was v{record.from_version}; "
        f"v{record.from_version} is now previous-champion)"
    )
    say(f"recorded: by {record.by} at {record.at}: {record.reason}")
