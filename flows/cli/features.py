"""``mlops features materialize``: the online store brought up to date from the feature tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import (
    EXIT_INVALID_DATA,
    ConfigOption,
    check_crm_source,
    fail,
    home_of,
    install_traceback_filter,
    load,
    out,
    say,
)
from flows.cli.startup import flow_stack
from models.errors import UserInputError

features_app = typer.Typer(
    help="Feature store: materialise features into the online store.", no_args_is_help=True
)


@features_app.command("materialize")
def materialize(
    ctx: typer.Context,
    config: ConfigOption,
    end: Annotated[
        str | None,
        typer.Option(
            "--end",
            help="Materialise up to this time, not now: ISO 8601 (2025-03-31, 2025-03-31T12:00:00+02:00; "
            "UTC without an offset). For a backfill; never later than now.",
            show_default="now",
        ),
    ] = None,
) -> None:
    """Refresh the feature tables from the CRM source, check what each view gained since its last
    materialisation against feature_store.expectations, and write it into the online store (exit 0
    written, 1 a batch failed the suite and nothing was written, 2 unusable input)."""
    from models.features.incremental import materialization_end, parse_time

    home = home_of(ctx)
    try:
        cfg = load(config, None, home)
        store = cfg.feature_store
        if store is None:
            raise UserInputError(f"{config}: no feature_store section, so no features to materialise")
        until = None if end is None else materialization_end(parse_time(end), datetime.now(UTC))
        check_crm_source(store.source, home)
        if store.expectations is not None:
            from models.data.suite import load_suite

            load_suite(store.expectations)
    except UserInputError as exc:
        raise fail(str(exc)) from None
    install_traceback_filter()
    with flow_stack():
        from flows.features import materialize_features
        from models.features.incremental import InvalidFeatureBatchError

    state = materialize_features(str(config.resolve()), until, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, InvalidFeatureBatchError):
        _print_failures(result)
        raise fail(str(result), EXIT_INVALID_DATA)
    if isinstance(result, UserInputError):
        raise fail(str(result))
    if isinstance(result, BaseException):
        raise result
    from models.features.store import online_store_name
    from tasks.feature_store import repo_config

    _print_summary(result, online_store_name(repo_config(store.repo).online_store.model_dump()))


def _time(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _print_summary(result, online_store: str) -> None:
    """Per view the rows written and their event-time interval; why a view wrote nothing; where the tables
    and the online store are."""
    record = result.record
    table = Table(
        "view", "rows", "from", "to", title=f"materialised into the online store at {_time(record.at)}"
    )
    for view, window in sorted(record.views.items()):
        table.add_row(view, f"{window.rows:,}", _time(window.start), _time(window.end))
    for view in result.current:
        table.add_row(view, "0", "already materialised up to the end", "")
    out.print(table)
    for view, window in sorted(record.views.items()):
        latest = result.table_latest.get(view)
        if window.rows == 0 and latest is not None and latest < window.start:
            say(
                f"{view}: nothing new since {_time(window.start)} (its table's latest row is at {_time(latest)})"
            )
    say(f"online store: {online_store}")
    say(f"tables: {result.refresh.attributes_table}; {result.refresh.activity_table}")
    say(f"record: {result.record_path}")


def _print_failures(error) -> None:
    table = Table("view", "column", "expectation", "unexpected", "sample values", "detail")
    for view, report in sorted(error.reports.items()):
        for f in report.failed:
            table.add_row(
                view,
                f.column or "(table)",
                f.expectation,
                "" if f.unexpected_count is None else f"{f.unexpected_count:,}",
                ", ".join(repr(v) for v in f.sample_values[:5]),
                f.detail,
            )
    out.print(table)
