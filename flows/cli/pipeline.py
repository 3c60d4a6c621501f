"""``mlops run|estimate|predict|deploy``: the training pipeline and what it produces."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import (
    EXIT_INVALID_DATA,
    ConfigOption,
    DataOption,
    fail,
    home_of,
    load,
    out,
    preflight,
    say,
)
from flows.cli.data import print_report
from flows.cli.startup import flow_stack
from infra.home import ProjectHome
from models.errors import UserInputError


def _mlflow_ui_hint(tracking_uri: str) -> str:
    if tracking_uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000"
    return f"open {tracking_uri}"


RetrainOption = Annotated[
    str | None,
    typer.Option(
        "--retrain-version",
        help="Train again on exactly the train, validation and test rows that registered version "
        "(NAME/VERSION, e.g. crm-leads/3) logged, instead of loading and splitting the config's data.",
    ),
]


def run(
    ctx: typer.Context,
    config: ConfigOption,
    data: DataOption = None,
    retrain_version: RetrainOption = None,
) -> None:
    """Run the training pipeline: validate, train, sweep, evaluate, register, promote, package."""
    home = home_of(ctx)
    if data is not None and retrain_version:
        raise fail(
            "--data and --retrain-version exclude each other: the version's logged datasets are the data"
        )
    cfg = preflight(config, data, home)
    with flow_stack():
        from flows.training import InvalidDataError, training_pipeline
        from tasks.registry import RegistryUnavailableError

    source = f"the datasets logged by {retrain_version}" if retrain_version else cfg.data.path
    say(f"training pipeline {cfg.name} on {source}")
    state = training_pipeline(
        str(config.resolve()), str(cfg.data.path), retrain_version=retrain_version, return_state=True
    )
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, InvalidDataError):
        print_report(summary.report, cfg.data.path)
        raise fail("invalid data: nothing was trained and no model version was created", EXIT_INVALID_DATA)
    if isinstance(summary, UserInputError | RegistryUnavailableError):
        raise fail(str(summary))
    if isinstance(summary, BaseException):
        raise summary
    _print_summary(summary, home, cfg.serving.port)


def _print_summary(summary, home: ProjectHome, serve_port: int) -> None:
    est = summary.estimate
    minutes = est.sweep_seconds / 60
    low, high = (seconds / 60 for seconds in est.sweep_seconds_range)
    say(
        f"estimate: {est.trials} trials on {est.device}, {minutes:.1f} min (90%: {low:.1f}-{high:.1f}), "
        f"{est.cost:.4f} {est.currency}; budget gate: {summary.budget.reason}"
    )
    if summary.version is None:
        raise fail(f"stopped at the budget gate: {summary.budget.reason}", EXIT_INVALID_DATA)
    from models.evaluation.bootstrap import confidence_percent

    auc, baseline = summary.test_auc, summary.best_baseline
    say(f"model: {summary.model_name} v{summary.version} (MLflow run {summary.run_id})")
    say(
        f"test ROC AUC {auc.value:.4f} ({confidence_percent(auc.confidence)} CI {auc.low:.4f}-{auc.high:.4f}); "
        f"best baseline {baseline.name} {baseline.roc_auc.value:.4f}"
    )
    if summary.ensemble:
        say(f"candidate: {summary.ensemble}")
    verdict = "[green]promoted to champion[/]" if summary.promoted else "[yellow]not promoted[/]"
    out.print(f"{verdict}: {summary.reason}", highlight=False, soft_wrap=True)
    say(f"champion: {'v' + summary.champion_version if summary.champion_version else 'none'}")
    resumed = " (resumed)" if summary.resumed_sweep else ""
    error = summary.estimate_errors.describe("sweep_seconds_error")
    off_by = f"; sweep time estimate off by {error}" if error != "n/a" else ""
    say(f"sweep: {summary.trials} trials{resumed}, best {summary.best_params}{off_by}")
    from models.estimate.timeline import clock

    compared = [
        r
        for r in summary.phases
        if r.estimated is not None and r.actual is not None and not r.measured_before
    ]
    if compared:
        phases = ", ".join(f"{r.name} {clock(r.estimated)} -> {clock(r.actual)}" for r in compared)
        say(f"phases (estimated -> actual, m:ss): {phases}")
    if summary.bento_tag:
        from infra.stack.supervisor import feature_store_settings

        # On the stack the Bento reads the stack's feature stores, as the run's flows did.
        stores = "".join(f" {variable}={value}" for variable, value in feature_store_settings(home).items())
        serve = (
            f"BENTOML_HOME={os.environ['BENTOML_HOME']} MLOPS_HOME={home.root}{stores} "
            f"bentoml serve {summary.bento_tag}"
        )
        say(f"bento: {summary.bento_tag} (serve it: {serve} --port {serve_port})")
    say(f"MLflow UI: {_mlflow_ui_hint(summary.tracking_uri)}")


def estimate_cmd(ctx: typer.Context, config: ConfigOption, data: DataOption = None) -> None:
    """Estimate the sweep's parameters, FLOPs, memory, time, storage and cost (with a short profiling run).

    Runs the pipeline's own load, split, feature and estimate steps (without Prefect), so the figures
    are those the budget gate will show.
    """
    home = home_of(ctx)
    cfg = preflight(config, data, home)
    if cfg.feature_store is not None:
        raise fail(
            "mlops estimate reads a flat data file; a feature-store config's frame is built by `mlops run`, "
            "whose budget gate shows the same estimate"
        )
    from models.seeds import Seeds
    from tasks.data import load_data
    from tasks.estimate import estimate
    from tasks.training import fit_transform, split_data

    seeds = Seeds.from_root(cfg.seed)
    try:
        prepared = split_data.fn(load_data.fn(cfg.data), cfg.data, cfg.split, seeds.split)
        transform = fit_transform.fn(prepared, cfg.features)
        est = estimate.fn(prepared, transform, cfg.model, cfg.sweep, cfg.estimate, seeds.estimate, cfg.split)
    except UserInputError as exc:
        raise fail(str(exc)) from None
    from rich.markdown import Markdown

    out.print(Markdown(est.to_markdown()))


def predict(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Registered model as NAME@ALIAS or NAME/VERSION.")
    ],
    input_path: Annotated[Path, typer.Option("--input", "-i", help="CSV or Parquet rows to score.")],
    output_path: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the rows plus a score column.")
    ],
    id_column: Annotated[
        str | None,
        typer.Option("--id-column", help="Column logged as each row's entity id (e.g. lead_id)."),
    ] = None,
) -> None:
    """Batch-score a file with a registered model (its logged feature transform applied) and log every row
    (variant batch) for the drift monitor, as `mlops batch` does."""
    home = home_of(ctx)
    try:
        from models.data.io import file_format, read_table
        from tasks.registry import load_by_reference
        from tasks.scoring import score_table

        file_format(output_path)
        df = read_table(input_path)
        chosen = load_by_reference(home.active_tracking_uri(), model)
        score_table(
            chosen.scorer, chosen.name, chosen.version, df, output_path, home.prediction_logs, id_column
        )
    except UserInputError as exc:
        raise fail(str(exc)) from None
    say(f"scored {len(df):,} rows with {chosen.name} v{chosen.version}; wrote {output_path}")
    say(f"prediction log: {home.prediction_logs}")


def batch(
    ctx: typer.Context,
    config: ConfigOption,
    input_path: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="File or folder to score (default: the config's batch.input)."),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Score entity ids with their features as of this time (ISO 8601, e.g. 2025-03-31T12:00:00+02:00; "
            "UTC without an offset; a file's own as_of column wins). For models trained from a feature service.",
            show_default="now",
        ),
    ] = None,
) -> None:
    """Run the batch-scoring flow once: the champion scores each new file, writes <name>.scored.<ext> beside
    it and logs every row (variant batch) for the drift monitor. A model trained from a feature service also
    scores files that carry only entity ids: their features come from the feature store's point-in-time
    retrieval."""
    home = home_of(ctx)
    if at is not None:
        from models.features.incremental import parse_time

        try:
            at = parse_time(at).isoformat()
        except UserInputError as exc:
            raise fail(str(exc)) from None
    with flow_stack():
        from flows.scoring import batch_scoring

    state = batch_scoring(
        str(config.resolve()), str(input_path.resolve()) if input_path else None, at, return_state=True
    )
    result = state.result(raise_on_failure=False)
    if isinstance(result, UserInputError):
        raise fail(str(result))
    if isinstance(result, BaseException):
        raise result
    for path, rows in result:
        say(f"scored {rows:,} rows: {path}")
    if not result:
        say("no new file to score")
    say(f"prediction log: {home.prediction_logs}")


def deploy(
    ctx: typer.Context,
    config: ConfigOption,
    detach: Annotated[
        bool, typer.Option(help="Run the deployment runner in the background; `mlops down` stops it.")
    ] = False,
) -> None:
    """Register the training pipeline (schedule + drift trigger) and the drift monitor as Prefect deployments
    and run them; with the config's batch.input batch scoring too, and with
    feature_store.materialize_interval_minutes feature materialisation.

    Runs the process that executes the deployment's runs (like `prefect serve`); with --detach it
    goes to the background and is stopped by `mlops down`.
    """
    home = home_of(ctx)
    try:
        cfg = load(config, None, home)
        if not os.environ.get("PREFECT_API_URL"):
            raise UserInputError("deployments need a Prefect server: start the local stack with `mlops up`")
    except UserInputError as exc:
        raise fail(str(exc)) from None
    config_path = str(config.resolve())
    if detach:
        from infra.stack import start_detached

        runner = start_detached(home, f"deploy-{cfg.name}", [sys.argv[0], "deploy", "--config", config_path])
        say(
            f"deployment runner for {cfg.name} started (pid {runner.pid}, log {runner.log}); stop it with `mlops down`"
        )
        return
    from prefect import serve

    from flows.alerts import ensure_alerts
    from flows.deployments import (
        batch_deployment,
        materialize_deployment,
        monitor_deployment,
        training_deployment,
    )

    alerts = ensure_alerts(cfg)
    if alerts:
        say(f"alerts to {cfg.monitoring.alert_webhook_url}: automations {', '.join(alerts)}")

    training, monitoring = training_deployment(cfg, config_path), monitor_deployment(cfg, config_path)
    deployments = [training, monitoring]
    say(f"serving deployment training-pipeline/{cfg.name}: {training.description}")
    say(f"serving deployment drift-monitor/{cfg.name}: {monitoring.description}")
    batch = batch_deployment(cfg, config_path)
    if batch is not None:
        deployments.append(batch)
        say(f"serving deployment batch-scoring/{cfg.name}: {batch.description}")
    materialize = materialize_deployment(cfg, config_path)
    if materialize is not None:
        deployments.append(materialize)
        say(f"serving deployment materialize-features/{cfg.name}: {materialize.description}")
    say("Ctrl+C stops them")
    serve(*deployments)
