"""``mlops alerts rules``: the Prometheus recording and alert rules of one or more pipeline configs' served
models, rendered from their ``serving.slo`` (`monitoring.alerting`); ``mlops alerts routing``: those rules
with the Prometheus and Alertmanager configurations that scrape the services and route the alerts to the
webhook (`monitoring.alert_routing`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import fail, home_of, load, say

if TYPE_CHECKING:  # imported in the functions: `mlops --help` stays instant
    from flows.config import PipelineConfig
    from monitoring.alerting import ServedModelRules

alerts_app = typer.Typer(help="Prometheus rules for the served models' SLOs.", no_args_is_help=True)
# The shipped rules file and the configs it is rendered from (a unit test holds them together).
SHIPPED_RULES = Path("infra/prometheus/rules.yml")
SHIPPED_CONFIGS = (Path("configs/crm_leads.yaml"), Path("configs/crm_feature_store.yaml"))


def served_model_rules(config: PipelineConfig) -> ServedModelRules:
    """What the rules of the config's served model need: names, SLOs and the feature views' limits."""
    from monitoring.alerting import ServedModelRules

    model = config.registry.model_name
    store = config.feature_store
    return ServedModelRules(
        model_name=model,
        service_name=config.serving.bento_name or model,
        slo=config.serving.slo,
        feature_views=store is not None,
        max_age_seconds={} if store is None else {v: m * 60 for v, m in store.max_age_minutes.items()},
    )


def render_command(configs: list[Path]) -> str:
    """The command line that renders ``configs``: the header of the file it writes."""
    return "mlops alerts rules " + " ".join(f"--config {path}" for path in configs)


@alerts_app.command("rules")
def rules(
    ctx: typer.Context,
    config: Annotated[
        list[Path],
        typer.Option(
            "--config",
            "-c",
            help="Pipeline config YAML whose served model gets rules; repeat for several models in one file.",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Rules file to write (e.g. infra/prometheus/rules.yml); default: stdout."
        ),
    ] = None,
) -> None:
    """Render the recording and alert rules of each config's served model (its serving.slo) for Prometheus;
    check them with `promtool check rules FILE`."""
    from models.errors import UserInputError
    from monitoring.alerting import rules_yaml

    home = home_of(ctx)
    try:
        targets = [served_model_rules(load(path, None, home)) for path in config]
    except UserInputError as exc:
        raise fail(str(exc)) from None
    names = [t.model_name for t in targets]
    if len(set(names)) != len(names):
        raise fail(f"two configs serve the same model ({', '.join(names)}): one rules group per model")
    text = rules_yaml(targets, render_command(config))
    if out is None:
        say(text.rstrip("\n"))
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    say(f"wrote {out}: {len(targets)} model(s); check with: promtool check rules {out}")


@alerts_app.command("routing")
def routing(
    ctx: typer.Context,
    config: Annotated[
        list[Path],
        typer.Option("--config", "-c", help="Pipeline config YAML of a served model; repeat for several."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the files into.")],
    alertmanager: Annotated[
        str, typer.Option("--alertmanager", help="host:port of the Alertmanager Prometheus sends to.")
    ] = "127.0.0.1:9093",
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            envvar="MLOPS_ALERT_WEBHOOK_URL",
            help="Slack-compatible webhook URL; default: the first config's alert_webhook_url. With neither, "
            "Alertmanager only shows the alerts.",
        ),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            help="host:port of a service of the first config's model to scrape (targets/bento.json, labelled "
            "with the job its rules select); repeat for replicas.",
        ),
    ] = None,
    bento_arguments: Annotated[
        Path | None,
        typer.Option(
            "--bento-arguments",
            help="Also write the argument file of a Bento served from source for the first config's model "
            "(`bentoml serve ... --arg-file FILE`: its serving section, the token in MLOPS_SERVING_TOKEN).",
        ),
    ] = None,
) -> None:
    """Write rules.yml, prometheus.yml (scraping the target files in targets/, one JSON per service) and
    alertmanager.yml (one Slack-compatible message per alert group to the webhook), from the first config's
    monitoring.alert_routing; check them with promtool and amtool."""
    import json

    import yaml

    from infra.stack.services import bento_arguments as render_arguments
    from models.errors import UserInputError
    from monitoring.alert_routing import alertmanager_config, prometheus_config, write_targets
    from monitoring.alerting import rules_yaml

    home = home_of(ctx)
    try:
        configs = [load(path, None, home) for path in config]
    except UserInputError as exc:
        raise fail(str(exc)) from None
    url = webhook or configs[0].monitoring.alert_webhook_url  # an empty variable is none
    settings = configs[0].monitoring.alert_routing
    served = served_model_rules(configs[0])
    out.mkdir(parents=True, exist_ok=True)
    (out / "targets").mkdir(exist_ok=True)
    rules_file = out / "rules.yml"
    rules_file.write_text(rules_yaml([served_model_rules(c) for c in configs], render_command(config)))
    prometheus = prometheus_config(
        rule_files=[rules_file.resolve()],
        targets_dir=(out / "targets").resolve(),
        alertmanager=alertmanager,
        routing=settings,
    )
    (out / "prometheus.yml").write_text(yaml.safe_dump(prometheus, sort_keys=False))
    (out / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(url, settings), sort_keys=False))
    say(f"wrote {out}/rules.yml, prometheus.yml, alertmanager.yml")
    if not url:
        say(
            "no webhook (--webhook, MLOPS_ALERT_WEBHOOK_URL or monitoring.alert_webhook_url): alerts are only shown"
        )
    if target:
        say(f"wrote {write_targets(out / 'targets', 'bento', served.job, target)}: {', '.join(target)}")
    else:
        example = [{"targets": ["127.0.0.1:3000"], "labels": {"job": served.job}}]
        say(f"scrape targets: one JSON file per service in {out}/targets/, e.g. {json.dumps(example)}")
    if bento_arguments is not None:
        bento_arguments.parent.mkdir(parents=True, exist_ok=True)
        bento_arguments.write_text(render_arguments(configs[0].serving.model_dump(mode="json")))
        say(
            f"wrote {bento_arguments}: serve with bentoml serve serving.service:TabularModelService --arg-file ..."
        )
    say(f"check: promtool check config {out}/prometheus.yml; amtool check-config {out}/alertmanager.yml")
