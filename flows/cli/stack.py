"""``mlops up|status|down``: the local server stack as processes of the project home."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import fail, home_of, say
from infra.stack import DEFAULT_MLFLOW_PORT, DEFAULT_PREFECT_PORT
from models.errors import UserInputError


def up(
    ctx: typer.Context,
    prefect_port: Annotated[
        int, typer.Option(help="Port of the Prefect server (UI and API).")
    ] = DEFAULT_PREFECT_PORT,
    mlflow_port: Annotated[
        int, typer.Option(help="Port of the MLflow tracking server.")
    ] = DEFAULT_MLFLOW_PORT,
    database_url: Annotated[
        str | None,
        typer.Option(help="postgresql://user:pass@host/db for both servers; default SQLite in MLOPS_HOME."),
    ] = None,
) -> None:
    """Start the local stack (Prefect server, MLflow server) as processes bound to 127.0.0.1."""
    from infra.stack import up as stack_up

    try:
        services = stack_up(
            home_of(ctx), prefect_port=prefect_port, mlflow_port=mlflow_port, database_url=database_url
        )
    except UserInputError as exc:
        raise fail(str(exc)) from None
    for service in services:
        say(service.describe())
    say("runs started from this shell now use the stack; stop it with `mlops down`")


def status(ctx: typer.Context) -> None:
    """Show the local stack's servers and runners: running, healthy, URL, pid and log."""
    from infra.stack import status as stack_status

    services = stack_status(home_of(ctx))
    if not services:
        say("the local stack is not running (start it with `mlops up`)")
        return
    for service in services:
        say(service.describe())


def down(ctx: typer.Context) -> None:
    """Stop exactly the processes `mlops up` and `mlops deploy --detach` started."""
    from infra.stack import down as stack_down

    stopped = stack_down(home_of(ctx))
    say(f"stopped: {', '.join(s.name for s in stopped)}" if stopped else "nothing was running")
