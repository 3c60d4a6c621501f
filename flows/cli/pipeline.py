"""``mlops run|estimate|predict|deploy``: the training pipeline and what it produces."""

from __future__ import annotations

import math
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
    tracking_uri,
)
from flows.cli.data import print_report
from models.errors import UserInputError


def _mlflow_ui_hint(tracking_uri: str) -> str:
    if tracking_uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000"
    return f"open {tracking_uri}"


def run(ctx: typer.Context, config: ConfigOption, data: DataOption = None) -> None:
    """Run the training pipeline: validate, train, sweep, evaluate, register, promote, package."""
    home = home_of(ctx)
    cfg = preflight(config, data, home)
    from flows.training import InvalidDataError, training_pipeline

    uri = tracking_uri(home)
    out.print(f"training pipeline [bold]{cfg.name}[/] on {cfg.data.path}", highlight=False)
    state = training_pipeline(str(config.resolve()), str(cfg.data.path), return_state=True)
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, InvalidDataError):
        print_report(summary.report, cfg.data.path)
        raise fail("invalid data: nothing was trained and no model version was created", EXIT_INVALID_DATA)
    if isinstance(summary, UserInputError):
        raise fail(str(summary))
    if isinstance(summary, BaseException):
        raise summary
    est = summary.estimate
    out.print(
        f"estimate: {est.trials} trials on {est.device}, {est.sweep_seconds / 60:.1f} min, "
        f"{est.cost:.4f} {est.currency}; budget gate: {summary.budget.reason}",
        highlight=False,
    )
    if summary.version is None:
        raise fail(f"stopped at the budget gate: {summary.budget.reason}", EXIT_INVALID_DATA)
    auc = summary.test_auc
    base_name, base_auc = summary.best_baseline
    out.print(
        f"model: {summary.model_name} v{summary.version} (MLflow run {summary.run_id})", highlight=False
    )
    out.print(
        f"test ROC AUC {auc.value:.4f} (95% CI {auc.low:.4f}-{auc.high:.4f}); "
        f"best baseline {base_name} {base_auc:.4f}",
        highlight=False,
    )
    verdict = "[green]promoted to champion[/]" if summary.promoted else "[yellow]not promoted[/]"
    out.print(f"{verdict}: {summary.reason}", highlight=False)
    out.print(
        f"champion: {'v' + summary.champion_version if summary.champion_version else 'none'}", highlight=False
    )
    error = summary.estimate_errors.get("sweep_seconds_error")
    out.print(
        f"sweep: {summary.trials} trials{' (resumed)' if summary.resumed_sweep else ''}, best {summary.best_params}"
        + (
            f"; sweep time estimate off by {error:+.0%}" if error is not None and math.isfinite(error) else ""
        ),
        highlight=False,
    )
    if summary.bento_tag:
        serve = f"BENTOML_HOME={os.environ['BENTOML_HOME']} MLOPS_HOME={home.root} bentoml serve {summary.bento_tag}"
        out.print(f"bento: {summary.bento_tag} (serve it: {serve} --port 3000)", highlight=False)
    out.print(f"MLflow UI: {_mlflow_ui_hint(uri)}", highlight=False)


def predict(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Registered model as NAME@ALIAS or NAME/VERSION.")
    ],
    input_path: Annotated[Path, typer.Option("--input", "-i", help="CSV or Parquet rows to score.")],
    output_path: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the rows plus a score column.")
    ],
) -> None:
    """Batch-score a file with a registered model; the logged feature transform is applied."""
    home = home_of(ctx)
    import re

    match = re.fullmatch(r"([^@/]+)(?:@([\w-]+)|/(\d+))", model)
    if not match:
        raise fail(f"--model {model!r}: expected NAME@ALIAS (e.g. crm-leads@champion) or NAME/VERSION")
    try:
        from models.data.io import file_format, read_table, write_table

        file_format(output_path)
        df = read_table(input_path)
        import mlflow
        from mlflow.exceptions import MlflowException

        mlflow.settracking_uri(tracking_uri(home))
        name, alias, number = match.groups()
        uri = f"models:/{name}@{alias}" if alias else f"models:/{name}/{number}"
        try:
            loaded = mlflow.pyfunc.load_model(uri)
        except MlflowException as exc:
            raise UserInputError(
                f"--model {model}: not found in the registry at {tracking_uri(home)} ({exc.message})"
            ) from None
        transform = loaded.unwrap_python_model().scorer.transform
        scores = loaded.predict(transform.canonical_inputs(df))
        write_table(df.assign(score=scores), output_path)
    except UserInputError as exc:
        raise fail(str(exc)) from None
    out.print(f"scored {len(df):,} rows with {model}; wrote {output_path}")


def estimate_cmd(ctx: typer.Context, config: ConfigOption, data: DataOption = None) -> None:
    """Estimate the sweep's parameters, FLOPs, memory, time, storage and cost (with a short profiling run)."""
    home = home_of(ctx)
    try:
        cfg = load(config, data, home)
        from models.data.io import read_table
        from models.data.split import binary_labels, split_frame
        from models.estimate import estimate_resources
        from models.features import FeatureTransform

        df = read_table(
            cfg.data.path,
            delimiter=cfg.data.delimiter,
            na_values=cfg.data.na_values,
            parse_dates=cfg.data.parse_dates,
        )
        y = binary_labels(df, cfg.data.target, cfg.data.positive_class)
        parts = split_frame(df, y, config=cfg.split, seed=cfg.seed, time_column=cfg.data.time_column)
        transform = FeatureTransform.fit(parts.train, cfg.features)
        est = estimate_resources(
            transform.transform(parts.train),
            len(parts.val),
            transform=transform,
            model=cfg.model,
            sweep=cfg.sweep,
            prices=cfg.estimate,
            seed=cfg.seed,
        )
    except UserInputError as exc:
        raise fail(str(exc)) from None
    from rich.markdown import Markdown

    out.print(Markdown(est.to_markdown()))


def deploy(
    ctx: typer.Context,
    config: ConfigOption,
    detach: Annotated[
        bool, typer.Option(help="Run the deployment runner in the background; `mlops down` stops it.")
    ] = False,
) -> None:
    """Register the training pipeline as a Prefect deployment on the config's schedule and run it.

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
        import subprocess

        from infra.stack import add_process

        home.runtime.mkdir(parents=True, exist_ok=True)
        log = home.runtime / f"deploy-{cfg.name}.log"
        with log.open("a") as handle:
            proc = subprocess.Popen(
                [sys.argv[0], "deploy", "--config", config_path],
                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ.copy(),
            )  # fmt: skip
        add_process(home, f"deploy-{cfg.name}", proc.pid, log=log)
        out.print(
            f"deployment runner for {cfg.name} started (pid {proc.pid}, log {log}); stop it with `mlops down`"
        )
        return
    from prefect import serve

    from flows.training import training_pipeline

    schedule = (
        f"cron {cfg.schedule.cron!r}" if cfg.schedule.cron else f"every {cfg.schedule.interval_seconds} s"
    )
    deployment = training_pipeline.to_deployment(
        name=cfg.name,
        cron=cfg.schedule.cron,
        interval=cfg.schedule.interval_seconds,
        parameters={"config_path": config_path},
        tags=["mlops", "training"],
        description=f"Training pipeline for {cfg.registry.model_name} ({config_path}), {schedule}.",
    )
    out.print(
        f"serving deployment training-pipeline/{cfg.name} ({schedule}); Ctrl+C stops it", highlight=False
    )
    serve(deployment)
