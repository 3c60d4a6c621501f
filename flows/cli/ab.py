"""``mlops ab start|stop|report``: a candidate beside the champion, and whether it is better."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import fail, home_of, load, out, say
from flows.cli.startup import flow_stack
from models.errors import UserInputError

ab_app = typer.Typer(
    help="A/B and shadow tests of a candidate version beside the champion.", no_args_is_help=True
)
ModelOption = Annotated[str, typer.Option("--model", "-m", help="Registered model name.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why; recorded on the version.")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who decides (default: your login name).")]


def _run(flow_state):
    result = flow_state.result(raise_on_failure=False)
    if isinstance(result, UserInputError):
        raise fail(str(result))
    if isinstance(result, BaseException):
        raise result
    return result


@ab_app.command("start")
def ab_start(
    ctx: typer.Context,
    model: ModelOption,
    version: Annotated[str, typer.Option("--version", help="The registered version to serve as candidate.")],
    reason: ReasonOption,
    by: ByOption = None,
) -> None:
    """Point `candidate` at VERSION: services with serving.ab on serve it beside the champion. Recorded on the
    version (approval.ab.*) and as the Prefect event mlops.model.ab_started."""
    with flow_stack():
        from flows.ab import ab_start as start_flow

    home_of(ctx)
    _run(start_flow(model, version, reason, by or getpass.getuser(), return_state=True))
    say(
        f"{model}: v{version} is the candidate; services with serving.ab on serve it within their poll interval"
    )


@ab_app.command("stop")
def ab_stop(ctx: typer.Context, model: ModelOption, reason: ReasonOption, by: ByOption = None) -> None:
    """Remove `candidate`: services go back to the champion alone (event mlops.model.ab_stopped)."""
    with flow_stack():
        from flows.ab import ab_stop as stop_flow

    home_of(ctx)
    stopped = _run(stop_flow(model, reason, by or getpass.getuser(), return_state=True))
    say(f"{model}: candidate v{stopped} removed" if stopped else f"{model} has no candidate")


@ab_app.command("report")
def ab_report_cmd(
    ctx: typer.Context,
    model: ModelOption,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="Outcomes (id and target columns), joined by id.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Pipeline config naming the labels' id and target columns."),
    ] = None,
    alpha: Annotated[float, typer.Option(help="False-positive rate of the always-valid test.")] = 0.05,
    tau: Annotated[float, typer.Option(help="Conversion difference the test is tuned to detect.")] = 0.02,
) -> None:
    """Per-variant volumes and scores from the prediction log; with --labels conversion, AUC, the always-valid
    test and a recommendation. --config gives the id and target columns of the labels (data.id_column, data.target)
    and the intervals' threshold, resamples, confidence and seed (evaluation.*, seed); without it their defaults."""
    from flows.config import PipelineConfig
    from models.data.io import read_table
    from models.data.split import binary_labels
    from models.evaluation.config import EvaluationConfig
    from models.seeds import Seeds
    from monitoring.ab import LoggedScore, ab_report
    from monitoring.prediction_log import log_files, read_records

    home = home_of(ctx)
    try:
        rows = [
            LoggedScore(r.variant, r.model_version, r.score, r.entity_id, r.timestamp)
            for r in read_records(log_files(home.prediction_logs))
            if r.model_name == model
        ]
        if not rows:
            raise UserInputError(f"the prediction log {home.prediction_logs} has no rows of {model}")
        # The evaluation's own threshold, resamples, confidence and bootstrap seed: the config's when given,
        # else their defaults (the pipeline config's root seed included).
        pipeline = load(config, None, home) if config is not None else None
        evaluation = pipeline.evaluation if pipeline else EvaluationConfig()
        root_seed = pipeline.seed if pipeline else PipelineConfig.model_fields["seed"].default
        outcome = None
        if labels is not None:
            if pipeline is None:
                raise UserInputError(
                    "--labels needs --config: its data.id_column and data.target name the columns"
                )
            data = pipeline.data
            table = read_table(labels, delimiter=data.delimiter, na_values=data.na_values)
            for column in (data.id_column, data.target):
                if column is None or column not in table.columns:
                    raise UserInputError(f"{labels}: no column {column!r} to join outcomes on")
            y = binary_labels(table, data.target, data.positive_class)
            outcome = dict(zip(table[data.id_column].astype(str), y.tolist(), strict=True))
        report = ab_report(
            model,
            rows,
            outcome,
            alpha=alpha,
            tau=tau,
            threshold=evaluation.threshold,
            n_resamples=evaluation.n_bootstrap,
            seed=Seeds.from_root(root_seed).bootstrap,
            confidence=evaluation.confidence,
        )
    except UserInputError as exc:
        raise fail(str(exc)) from None
    grid = Table(
        "variant",
        "versions",
        "rows",
        "score mean",
        "p10 / p50 / p90",
        "labelled",
        f"conversion ({evaluation.confidence:.0%})",
        f"ROC AUC ({evaluation.confidence:.0%})",
    )
    for v in report.variants:
        q = v.score_quantiles
        conversion = (
            f"{v.conversion.value:.4f} [{v.conversion.low:.4f}, {v.conversion.high:.4f}]"
            if v.conversion
            else ""
        )
        auc = f"{v.roc_auc.value:.4f} [{v.roc_auc.low:.4f}, {v.roc_auc.high:.4f}]" if v.roc_auc else ""
        grid.add_row(
            v.variant,
            ", ".join(v.versions),
            f"{v.rows:,}",
            f"{v.score_mean:.4f}",
            f"{q['p10']:.3f} / {q['p50']:.3f} / {q['p90']:.3f}",
            f"{v.labelled:,}",
            conversion,
            auc,
        )
    out.print(grid)
    if report.test is not None:
        t = report.test
        say(
            f"challenger - champion conversion: {t.difference:+.4f}, always-valid {1 - t.alpha:.0%} interval "
            f"[{t.low:+.4f}, {t.high:+.4f}], always-valid p = {t.p_value:.4f} (mSPRT, tau {t.tau})"
        )
    say(f"recommendation: {report.recommendation}")
