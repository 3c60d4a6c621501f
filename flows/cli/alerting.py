"""``mlops alerts rules``: the Prometheus recording and alert rules of one or more pipeline configs' served
models, rendered from their ``serving.slo`` (`monitoring.alerting`)."""

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
