"""The ``mlops`` command line: the entry point where config is loaded and the home resolved.

One module per command group; each command calls flows and tasks and formats their results.
Heavy libraries are imported inside the commands so that ``mlops --help`` stays instant and
environment defaults (project home, telemetry off) are in place before Prefect is imported.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from flows.cli import monitor, pipeline, registry, stack
from flows.cli.ab import ab_app
from flows.cli.alerting import alerts_app
from flows.cli.approvals import approvals_app
from flows.cli.common import quiet_logging
from flows.cli.data import data_app, validate
from flows.cli.features import features_app
from flows.cli.startup import freeze_heap_at_exit
from infra.home import ProjectHome

app = typer.Typer(
    name="mlops",
    help="Train, evaluate, approve, serve and monitor tabular models with Prefect pipelines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Prefect's task and flow logs.")
    ] = False,
) -> None:
    """Resolve the project home (MLOPS_HOME, default ./.mlops) and point the libraries at it."""
    home = ProjectHome.from_env()
    # After `mlops up`, talk to that stack unless the user pointed elsewhere.
    from infra.stack import client_settings

    os.environ.update(client_settings(home, os.environ))
    home.configure_environment()
    quiet_logging(verbose)
    freeze_heap_at_exit()
    ctx.obj = home


app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.command("validate")(validate)
app.command("run")(pipeline.run)
app.command("estimate")(pipeline.estimate_cmd)
app.command("predict")(pipeline.predict)
app.command("deploy")(pipeline.deploy)
app.command("batch")(pipeline.batch)
app.command("monitor")(monitor.monitor)
app.command("rollback")(registry.rollback)
app.command("history")(registry.history)
app.command("up")(stack.up)
app.command("status")(stack.status)
app.command("down")(stack.down)
app.add_typer(approvals_app, name="approvals")
app.add_typer(ab_app, name="ab")
app.add_typer(alerts_app, name="alerts")
