"""``mlops rollback``: move a model's champion back to a version that once passed its promotion gate;
``mlops history``: every move of its ``champion`` and ``candidate`` aliases."""

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


def history(
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model name.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per move, oldest first.")] = False,
) -> None:
    """Every move of the model's `champion` and `candidate` aliases, oldest first: when, which kind (promotion,
    rollback, ab-start, ab-stop), from and to which version, by whom or which policy, why, and the run. Moves
    made before the history was recorded are rebuilt from the versions' tags and marked so."""
    import json
    from dataclasses import asdict

    from infra.home import ProjectHome
    from models.errors import UserInputError
    from tasks.registry import read_history
    from tasks.tracking import TrackingTarget

    home = ProjectHome.configured()
    target = TrackingTarget.for_store(home.active_tracking_uri(), model, home.mlflow_artifacts)
    try:
        moves = read_history(target, model)
    except UserInputError as exc:
        raise fail(str(exc), EXIT_USER_ERROR) from None
    if as_json:
        for move in moves:
            typer.echo(json.dumps(asdict(move), sort_keys=True))
        return
    if not moves:
        say(f"{model}: no alias has moved yet")
    for move in moves:
        say(move.describe())
