"""``mlops monitor``: one drift check of the champion (and, with a feature store, the freshness of each feature
view), the verdict tables, and an exit code for scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import EXIT_USER_ERROR, ConfigOption, fail, home_of, load, say
from flows.cli.startup import flow_stack

EXIT_NO_DRIFT, EXIT_DRIFT = 0, 1  # 1: drift or a stale feature view, both findings
LabelsOption = Annotated[
    Path | None,
    typer.Option("--labels", help="Labels of the batch (the config's id and target columns), joined by id."),
]
BatchOption = Annotated[
    Path | None,
    typer.Option(
        "--data", "-d", help="Batch to check (CSV/Parquet); default: the champion's prediction log."
    ),
]


def monitor(
    ctx: typer.Context, config: ConfigOption, data: BatchOption = None, labels: LabelsOption = None
) -> None:
    """Check a batch against the champion's drift reference and, with a feature store, each feature view's
    freshness: exit 0 nothing found, 1 drift or a stale view, 2 unusable input."""
    home = home_of(ctx)
    from models.errors import UserInputError

    try:
        cfg = load(config, None, home)
        for path in (data, labels):
            if path is not None and not path.is_file():
                raise UserInputError(f"{path}: file not found")
        if data is not None:
            # Before any flow run: an unusable batch writes no run and emits no event.
            from models.data.io import read_table
            from monitoring.check import require_usable_batch

            d = cfg.data
            frame = read_table(data, delimiter=d.delimiter, na_values=d.na_values, parse_dates=d.parse_dates)
            features = cfg.features
            require_usable_batch(
                frame, numeric=features.numeric, categorical=features.categorical, source=str(data)
            )
    except UserInputError as exc:
        raise fail(str(exc)) from None
    with flow_stack():
        from flows.monitor import drift_monitor

    state = drift_monitor(
        str(config.resolve()),
        str(data.resolve()) if data else None,
        str(labels.resolve()) if labels else None,
        return_state=True,
    )
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, UserInputError | ValueError):
        raise fail(str(summary), EXIT_USER_ERROR)
    if isinstance(summary, BaseException):
        raise summary
    result = summary.result
    if result is None:
        say(f"nothing to check for drift: {summary.source}")
    else:
        say(result.markdown())
        for report in summary.reports:
            say(f"report: {report}")
        say(summary.dashboard)
        say(summary.retraining)
        if summary.event_emitted:
            say(f"drift: emitted mlops.drift.detected for mlops.model.{result.model_name}")
    if summary.freshness is not None:
        say(summary.freshness.markdown())
        model = cfg.registry.model_name
        for view in summary.freshness.stale:
            say(f"stale features: emitted mlops.features.stale for {view.view} on mlops.model.{model}")
    raise typer.Exit(EXIT_DRIFT if summary.findings else EXIT_NO_DRIFT)
