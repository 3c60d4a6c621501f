"""``mlops up|status|down``: the local server stack as processes of the project home."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.cli.common import fail, home_of, load, say
from infra.stack import SERVICES
from models.errors import UserInputError

if TYPE_CHECKING:
    from infra.home import ProjectHome
    from infra.stack import WatchedModel

# The model `mlops up` serves and watches unless --config names another: the config `make run` trains.
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "crm_leads.yaml"


def _with_port_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``command`` one ``--<name>-port`` option per server of the stack's registry.

    Declared from the registry rather than written out, so that a server added there gets its
    option (with the registry's default) and the option named in a "port busy" error exists.
    The values reach ``command`` as ``<name>_port`` keywords, which ``infra.stack.up`` takes.
    """
    signature = inspect.signature(command, eval_str=True)
    fixed = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    ports = [
        inspect.Parameter(
            service.port_parameter,
            inspect.Parameter.KEYWORD_ONLY,
            default=service.default_port,
            annotation=Annotated[int, typer.Option(service.port_option, help=service.port_help)],
        )
        for service in SERVICES.values()
    ]
    # After the context, before the other options: the ports come first in --help.
    command.__signature__ = signature.replace(parameters=[fixed[0], *ports, *fixed[1:]])  # type: ignore[attr-defined]
    return command


def watched_model(config_path: Path, home: ProjectHome) -> WatchedModel:
    """The model of the pipeline config at ``config_path`` as the stack serves and watches it: its registered
    name, its Bento's serving section and entity column, its rules (``mlops alerts rules``) and routing."""
    from flows.cli.alerting import served_model_rules
    from infra.stack import WatchedModel
    from monitoring.alerting import rules_yaml

    config = load(config_path, None, home)
    rules = served_model_rules(config)
    return WatchedModel(
        name=config.registry.model_name,
        job=rules.job,
        entity_column=config.data.id_column,
        serving=config.serving.model_dump(mode="json"),
        rules=rules_yaml([rules], f"mlops up --config {config_path}"),
        routing=config.monitoring.alert_routing.model_dump(mode="json"),
        webhook_url=config.monitoring.alert_webhook_url,
    )


@_with_port_options
def up(
    ctx: typer.Context,
    *,
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            help="Pipeline config whose model the stack serves (a Bento following its champion) and watches "
            "(Prometheus with its SLO rules, Alertmanager posting to its monitoring.alert_webhook_url).",
        ),
    ] = DEFAULT_CONFIG,
    serve: Annotated[
        bool,
        typer.Option(
            help="Also start the Bento, Prometheus and Alertmanager for --config's model; --no-serve starts "
            "only the servers the pipelines use."
        ),
    ] = True,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="postgresql://user:pass@host:5432 (no database name): each server in its own database "
            "there; default SQLite in MLOPS_HOME."
        ),
    ] = None,
    artifacts: Annotated[
        str | None,
        typer.Option(
            help="Where MLflow stores artifacts, served through it: s3://bucket/prefix (endpoint and keys from "
            "MLFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or an absolute folder; "
            "default MLOPS_HOME/mlflow/artifacts."
        ),
    ] = None,
    **ports: int,
) -> None:
    """Start the local stack's servers as processes bound to 127.0.0.1 and wait until they are healthy."""
    from infra.stack import up as stack_up
    from infra.stack.secrets import secrets_dir

    home = home_of(ctx)
    try:
        model = watched_model(config, home) if serve else None
        services = stack_up(home, database_url=database_url, artifacts=artifacts, model=model, **ports)
    except UserInputError as exc:
        raise fail(str(exc)) from None
    for service in services:
        say(service.describe())
    say(
        f"server secrets: {secrets_dir(home)}, one file each, mode 0600: 'prefect' is the Prefect API's "
        "user:password (the UI's login asks for it), 'mlflow' MLflow's admin:password (the browser asks for it), "
        "'evidently' the Evidently UI's write secret, 'redis' the online store's password (and with "
        "--database-url 'feast-database', the URL of Feast's registry), 'serving' the Bento's bearer token; "
        "mlops commands send them"
    )
    if model is not None:
        say(
            f"the bento serves {model.name}'s champion once the registry has one (until then /readyz is 503); "
            f"Prometheus scrapes it as job {model.job} with the rules in {home.prometheus / 'rules.yml'}; "
            + (
                "Alertmanager posts to monitoring.alert_webhook_url"
                if model.webhook_url
                else "Alertmanager only shows the alerts (no monitoring.alert_webhook_url in the config)"
            )
        )
    say("the Feast UI has no login: it is bound to 127.0.0.1 only")
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
