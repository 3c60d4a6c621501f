"""The ``mlops`` command line: the entry point where config is loaded and the home resolved.

Heavy libraries are imported inside the commands so that ``mlops --help`` stays instant and
environment defaults (project home, telemetry off) are in place before Prefect is imported.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from flows.home import ProjectHome
from flows.stack import DEFAULT_MLFLOW_PORT, DEFAULT_PREFECT_PORT
from models.errors import UserInputError

app = typer.Typer(
    name="mlops",
    help="Train, evaluate, approve, serve and monitor tabular models with Prefect pipelines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Generate and profile datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
approvals_app = typer.Typer(
    help="Decide the approval gates of paused runs (as in the Prefect UI).", no_args_is_help=True
)
app.add_typer(approvals_app, name="approvals")

# Tables wider than 80 columns stay readable when output is piped or captured.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

EXIT_INVALID_DATA = 1
EXIT_USER_ERROR = 2

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Pipeline config YAML (see configs/crm_leads.yaml).")
]
DataOption = Annotated[
    Path | None, typer.Option("--data", "-d", help="Data file to use instead of the config's data.path.")
]


class _HideUserErrorTracebacks(logging.Filter):
    """Prefect logs task failures with a traceback; for input errors the one-line reason is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserInputError):
            record.exc_info = None
            record.exc_text = None
        return True


def _quiet_logging(verbose: bool) -> None:
    """Console shows warnings and errors unless --verbose; set before Prefect is imported."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        # The pipeline logs its model deliberately as a Python object; the advice is noise here.
        logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    os.environ.setdefault(
        "PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL",
        os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO"),
    )


_TRACEBACK_FILTER = _HideUserErrorTracebacks()


def _install_traceback_filter() -> None:
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()

    names = [n for n in list(logging.root.manager.loggerDict) if n.startswith("prefect")]
    for logger in (logging.getLogger("prefect"), *map(logging.getLogger, names)):
        for handler in logger.handlers:
            if _TRACEBACK_FILTER not in handler.filters:
                handler.addFilter(_TRACEBACK_FILTER)


def fail(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


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
    from flows.stack import endpoints

    for key, value in endpoints(home).items():
        os.environ.setdefault(key, value)
    home.configure_environment()
    _quiet_logging(verbose)
    ctx.obj = home


def _home(ctx: typer.Context) -> ProjectHome:
    return ctx.obj if isinstance(ctx.obj, ProjectHome) else ProjectHome.from_env()


def _load(config_path: Path, data: Path | None, home: ProjectHome):
    from flows.config import load_config

    overrides = {"data.path": str(data.resolve())} if data else None
    return load_config(config_path, home=home.root, overrides=overrides)


def _preflight(config: Path, data: Path | None, home: ProjectHome):
    """Config, data file and suite checked in a second, before Prefect starts: a user error costs
    no server start-up and shows no traceback."""
    try:
        cfg = _load(config, data, home)
        from models.data.io import check_data_file
        from models.data.suite import load_suite

        check_data_file(cfg.data.path)
        load_suite(cfg.data.expectations)
    except UserInputError as exc:
        raise fail(str(exc)) from None
    _install_traceback_filter()
    return cfg


@data_app.command("generate")
def data_generate(
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="Output file; .csv or .parquet decides the format.")
    ],
    rows: Annotated[int, typer.Option(help="Number of leads to generate.", min=1)] = 50_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same file.")] = 42,
    drift: Annotated[
        float,
        typer.Option(
            help="0 = reference population; up to 1 shifts features, mix and label rate.", min=0.0, max=1.0
        ),
    ] = 0.0,
) -> None:
    """Generate a synthetic CRM leads dataset with a learnable, nonlinear conversion label."""
    from models.data.io import file_format, write_table
    from models.data.synthetic import generate_leads

    try:
        file_format(out_path)
        df = generate_leads(rows, seed, drift)
        write_table(df, out_path)
    except UserInputError as exc:
        raise fail(str(exc)) from None
    out.print(
        f"wrote {len(df):,} rows x {df.shape[1]} columns to {out_path} (conversion rate {df['converted'].mean():.3f})"
    )


@data_app.command("profile")
def data_profile(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file to profile.")],
    target: Annotated[str, typer.Option("--target", "-t", help="Binary label column.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where pipeline.yaml and expectations.json go.")],
    name: Annotated[
        str | None, typer.Option(help="Pipeline and model name; default from the file name.")
    ] = None,
) -> None:
    """Infer column roles and write a runnable pipeline config and a starter expectation suite."""
    from flows.scaffold import slug, write_scaffold
    from models.data.io import file_format, read_table, sniff_delimiter
    from models.data.profile import profile_frame

    try:
        df = read_table(path)
        delimiter = sniff_delimiter(path) if file_format(path) == "csv" else None
        profile = profile_frame(df, target)
        if profile.na_values or profile.names("datetime"):
            # Re-read as validation and training will: blanks as missing, dates as datetimes.
            df = read_table(
                path, delimiter=delimiter, na_values=profile.na_values, parse_dates=profile.names("datetime")
            )
        result = write_scaffold(
            df, profile, data_path=path, out_dir=out_dir, delimiter=delimiter, name=name or slug(path.stem)
        )
    except UserInputError as exc:
        raise fail(str(exc)) from None
    table = Table(
        "column", "role", "dtype", "nulls", "distinct", "note", title=f"{path.name}: {profile.rows:,} rows"
    )
    for c in profile.columns:
        table.add_row(c.name, c.role, c.dtype, f"{c.null_rate:.1%}", str(c.n_unique), c.note)
    out.print(table)
    for issue in profile.issues:
        out.print(f"[yellow]check:[/] {issue}", highlight=False)
    out.print(f"wrote {result.config_path} and {result.suite_path}")
    out.print(f"next: mlops validate --config {result.config_path}")


@app.command("validate")
def validate(ctx: typer.Context, config: ConfigOption, data: DataOption = None) -> None:
    """Validate data against the config's expectation suite (exit 0 pass, 1 fail, 2 unusable input)."""
    home = _home(ctx)
    cfg = _preflight(config, data, home)
    from flows.validation import data_validation

    state = data_validation(cfg, home.data_docs, return_state=True)
    report = state.result(raise_on_failure=False)
    if isinstance(report, BaseException):
        if isinstance(report, UserInputError):
            raise fail(str(report))
        raise report
    _print_report(report, cfg.data.path)
    if not report.success:
        raise typer.Exit(EXIT_INVALID_DATA)


def _tracking_uri(home: ProjectHome) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or home.tracking_uri


def _mlflow_ui_hint(tracking_uri: str) -> str:
    if tracking_uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000"
    return f"open {tracking_uri}"


@app.command("run")
def run(ctx: typer.Context, config: ConfigOption, data: DataOption = None) -> None:
    """Run the training pipeline: validate, train, sweep, evaluate, register, promote, package."""
    home = _home(ctx)
    cfg = _preflight(config, data, home)
    from flows.training import InvalidDataError, training_pipeline

    tracking_uri = _tracking_uri(home)
    out.print(f"training pipeline [bold]{cfg.name}[/] on {cfg.data.path}", highlight=False)
    state = training_pipeline(str(config.resolve()), str(cfg.data.path), return_state=True)
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, InvalidDataError):
        _print_report(summary.report, cfg.data.path)
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
    out.print(f"MLflow UI: {_mlflow_ui_hint(tracking_uri)}", highlight=False)


@app.command("predict")
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
    home = _home(ctx)
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

        mlflow.set_tracking_uri(_tracking_uri(home))
        name, alias, number = match.groups()
        uri = f"models:/{name}@{alias}" if alias else f"models:/{name}/{number}"
        try:
            loaded = mlflow.pyfunc.load_model(uri)
        except MlflowException as exc:
            raise UserInputError(
                f"--model {model}: not found in the registry at {_tracking_uri(home)} ({exc.message})"
            ) from None
        transform = loaded.unwrap_python_model().scorer.transform
        scores = loaded.predict(transform.canonical_inputs(df))
        write_table(df.assign(score=scores), output_path)
    except UserInputError as exc:
        raise fail(str(exc)) from None
    out.print(f"scored {len(df):,} rows with {model}; wrote {output_path}")


@app.command("up")
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
    from flows.stack import up as stack_up

    home = _home(ctx)
    try:
        services = stack_up(
            home, prefect_port=prefect_port, mlflow_port=mlflow_port, database_url=database_url
        )
    except UserInputError as exc:
        raise fail(str(exc)) from None
    for service in services:
        out.print(service.describe(), highlight=False)
    out.print("runs started from this shell now use the stack; stop it with `mlops down`", highlight=False)


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Show the local stack's servers and runners: running, healthy, URL, pid and log."""
    from flows.stack import status as stack_status

    services = stack_status(_home(ctx))
    if not services:
        out.print("the local stack is not running (start it with `mlops up`)")
        return
    for service in services:
        out.print(service.describe(), highlight=False)


@app.command("down")
def down(ctx: typer.Context) -> None:
    """Stop exactly the processes `mlops up` and `mlops deploy --detach` started."""
    from flows.stack import down as stack_down

    stopped = stack_down(_home(ctx))
    out.print(f"stopped: {', '.join(s.name for s in stopped)}" if stopped else "nothing was running")


@app.command("estimate")
def estimate_cmd(ctx: typer.Context, config: ConfigOption, data: DataOption = None) -> None:
    """Estimate the sweep's parameters, FLOPs, memory, time, storage and cost (with a short profiling run)."""
    home = _home(ctx)
    try:
        cfg = _load(config, data, home)
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


@app.command("deploy")
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
    home = _home(ctx)
    try:
        cfg = _load(config, None, home)
        if not os.environ.get("PREFECT_API_URL"):
            raise UserInputError("deployments need a Prefect server: start the local stack with `mlops up`")
    except UserInputError as exc:
        raise fail(str(exc)) from None
    config_path = str(config.resolve())
    if detach:
        import subprocess

        from flows.stack import add_process

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


def _paused_runs(client) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    state = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
    return client.read_flow_runs(flow_run_filter=FlowRunFilter(state=state))


def _gate_artifact(client, flow_run_id, suffix: str):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    matching = [a for a in artifacts if (a.key or "").endswith(suffix)]
    return max(matching, key=lambda a: a.created) if matching else None


def _require_api() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise fail(
            "approvals live on a Prefect server: start the local stack with `mlops up` (or set PREFECT_API_URL)"
        )


@approvals_app.command("list")
def approvals_list() -> None:
    """Runs waiting at a gate, with the gate, model, cost and key metric."""

    from prefect.client.orchestration import get_client

    _require_api()
    with get_client(sync_client=True) as client:
        runs = _paused_runs(client)
        table = Table(
            "run id", "run", "gate", "model", "version", "cost", "ROC AUC", "approvers", "waiting since"
        )
        for run in runs:
            row = _gate_row(client, run.id)
            table.add_row(
                str(run.id), run.name, str(row.get("gate", "?")), str(row.get("model", "")), str(row.get("version") or ""),
                str(row.get("cost", "")), str(row.get("roc_auc") or ""), str(row.get("allowlist") or "anyone"),
                str(run.state.timestamp)[:19] if run.state else "",
            )  # fmt: skip
    out.print(table if runs else "no run is waiting for approval")


@approvals_app.command("show")
def approvals_show(
    run_id: Annotated[str, typer.Argument(help="Flow run id from `mlops approvals list`.")],
) -> None:
    """Print the evidence an approver sees for a waiting run."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from rich.markdown import Markdown

    _require_api()
    with get_client(sync_client=True) as client:
        try:
            artifact = _gate_artifact(client, UUID(run_id), "-gate-evidence")
        except ValueError:
            raise fail(f"{run_id!r} is not a flow run id") from None
    if artifact is None:
        raise fail(f"no gate evidence found for flow run {run_id}")
    out.print(Markdown(artifact.data))


def _gate_row(client, flow_run_id) -> dict:
    """The waiting gate's summary row (gate, model, cost, allowlist, ...), or {} when there is none."""
    import json

    artifact = _gate_artifact(client, flow_run_id, "-gate")
    return json.loads(artifact.data)[0] if artifact and isinstance(artifact.data, str) else {}


def _decide(run_id: str, approved: bool, approver: str, comment: str) -> None:
    """Resume the run with the form's answer, as the Prefect UI does.

    An approver outside the gate's allowlist is still sent: the run records the refusal (tags, event) and
    waits on. The command then says so and exits 1 instead of reporting a decision that did not happen.
    """
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
    from prefect.flow_runs import resume_flow_run

    _require_api()
    try:
        flow_run_id = UUID(run_id)
    except ValueError:
        raise fail(f"{run_id!r} is not a flow run id") from None
    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(flow_run_id).state
        except ObjectNotFound:
            raise fail(f"no flow run {run_id} on {os.environ['PREFECT_API_URL']}") from None
        if state is None or not state.is_paused():
            raise fail(
                f"flow run {run_id} is not waiting for approval (state: {state.name if state else 'none'})"
            )
        row = _gate_row(client, flow_run_id)
    try:
        resume_flow_run(
            flow_run_id, run_input={"approved": approved, "approver": approver, "comment": comment}
        )
    except (PrefectHTTPStatusError, RuntimeError) as exc:
        detail = getattr(getattr(exc, "response", None), "text", "") or str(exc)
        raise fail(f"could not resume flow run {run_id}: {detail}") from None
    allowlist = [name.strip() for name in str(row.get("allowlist") or "").split(",") if name.strip()]
    gate = row.get("gate", "approval")
    if allowlist and approver.strip() not in allowlist:
        err.print(
            f"refused: {approver!r} is not on the {gate} gate's approver allowlist ({', '.join(allowlist)}); "
            "the refusal is recorded and the run still waits for an allowed approver"
        )
        raise typer.Exit(1)
    out.print(f"{'approved' if approved else 'rejected'} the {gate} gate of flow run {run_id} as {approver}")


ApproverOption = Annotated[
    str, typer.Option("--approver", "-a", help="Your name, recorded with the decision.")
]
CommentOption = Annotated[str, typer.Option("--comment", help="Why; recorded on the model version.")]


@approvals_app.command("approve")
def approvals_approve(
    run_id: Annotated[str, typer.Argument(help="Flow run id.")],
    approver: ApproverOption,
    comment: CommentOption = "",
) -> None:
    """Approve the gate a run is waiting at; the run resumes."""
    _decide(run_id, True, approver, comment)


@approvals_app.command("reject")
def approvals_reject(
    run_id: Annotated[str, typer.Argument(help="Flow run id.")],
    approver: ApproverOption,
    comment: CommentOption = "",
) -> None:
    """Reject the gate a run is waiting at; the candidate never becomes champion."""
    _decide(run_id, False, approver, comment)


def _collapse_missing_columns(failed: list) -> list:
    """A missing column fails every expectation on it; show it once."""
    seen: set[str | None] = set()
    kept = []
    for f in failed:
        if f.detail == "missing column":
            if f.column in seen:
                continue
            seen.add(f.column)
        kept.append(f)
    return kept


def _print_report(report, data_path: Path) -> None:
    if report.success:
        out.print(
            f"[green]passed[/]: {report.evaluated} expectations on {report.row_count:,} rows of {data_path}"
        )
    else:
        table = Table(
            "column",
            "expectation",
            "unexpected",
            "%",
            "sample values",
            "detail",
            title=f"{len(report.failed)} of {report.evaluated} expectations failed on {data_path}",
        )
        for f in _collapse_missing_columns(report.failed):
            table.add_row(
                f.column or "(table)",
                f.expectation.removeprefix("expect_").removeprefix("column_values_to_"),
                "" if f.unexpected_count is None else f"{f.unexpected_count:,}",
                "" if f.unexpected_percent is None else f"{f.unexpected_percent:.2f}",
                ", ".join(repr(v) for v in f.sample_values[:5]),
                f.detail,
            )
        out.print(table)
    if report.docs_path:
        out.print(f"Data Docs: {report.docs_path}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
