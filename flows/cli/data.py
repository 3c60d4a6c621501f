"""``mlops data generate|profile`` and ``mlops validate``: getting data in and checking it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.cli.common import (
    EXIT_INVALID_DATA,
    ConfigOption,
    DataOption,
    fail,
    home_of,
    out,
    preflight,
    say,
)
from flows.cli.startup import flow_stack
from models.data.crm import DEFAULT_CRM_LEADS, DEFAULT_CRM_MONTHS
from models.data.synthetic import DEFAULT_ROWS, DEFAULT_SEED
from models.errors import UserInputError

if TYPE_CHECKING:
    from models.data.profile import DataProfile

data_app = typer.Typer(help="Generate and profile datasets.", no_args_is_help=True)


@data_app.command("generate")
def data_generate(
    ctx: typer.Context,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output file; .csv or .parquet decides the format. With --crm a folder, by default "
            "$MLOPS_HOME/data/crm (where configs/crm_feature_store.yaml reads).",
        ),
    ] = None,
    rows: Annotated[
        int | None,
        typer.Option(
            help=f"Number of leads to generate (default {DEFAULT_ROWS:,}; with --crm {DEFAULT_CRM_LEADS:,}).",
            min=1,
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same file.")] = DEFAULT_SEED,
    drift: Annotated[
        float,
        typer.Option(
            help="0 = reference population; up to 1 shifts features, mix and label rate.", min=0.0, max=1.0
        ),
    ] = 0.0,
    crm: Annotated[
        bool,
        typer.Option(
            "--crm",
            help="Write a CRM source instead of the flat table: leads, an activity log and outcomes over "
            f"{DEFAULT_CRM_MONTHS} months, plus a label spine, as Parquet files in the --out folder.",
        ),
    ] = False,
    until: Annotated[
        datetime | None,
        typer.Option(
            "--until",
            help="With --crm, when the export ends (default now; naive times are UTC): like a CRM's own export, "
            "so its features are fresh when materialised now.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Generate a synthetic CRM leads dataset with a learnable, nonlinear conversion label, or with --crm a
    CRM source (leads, activity log, outcomes, label spine) for the feature store."""
    if crm:
        if drift:
            raise fail("--drift applies to the flat table only, not to --crm")
        _generate_crm(out_path or home_of(ctx).crm_source, rows or DEFAULT_CRM_LEADS, seed, until)
        return
    if out_path is None:
        raise fail("--out is required: the file to write (.csv or .parquet), or pass --crm for a CRM source")
    from models.data.io import file_format, write_table
    from models.data.synthetic import generate_leads

    try:
        file_format(out_path)
        df = generate_leads(rows or DEFAULT_ROWS, seed, drift)
        write_table(df, out_path)
    except UserInputError as exc:
        raise fail(str(exc)) from None
    rate = df["converted"].mean()
    say(f"wrote {len(df):,} rows x {df.shape[1]} columns to {out_path} (conversion rate {rate:.3f})")


def _generate_crm(out_dir: Path, leads: int, seed: int, until: datetime | None) -> None:
    from models.data.crm import DEFAULT_HORIZON_DAYS, generate_crm, label_spine, start_ending_at, write_crm

    if out_dir.exists() and not out_dir.is_dir():
        raise fail(f"{out_dir}: --out must be a folder with --crm")
    source = generate_crm(leads, seed, start=start_ending_at(until or datetime.now(UTC)))
    spine = label_spine(source, seed=seed)
    paths = write_crm(source, spine, out_dir)
    say(
        f"wrote a CRM source to {out_dir}: {len(source.leads):,} leads, {len(source.activities):,} activities, "
        f"{len(source.outcomes):,} outcomes (conversion rate {source.outcomes['converted'].mean():.3f}), "
        f"until {source.end:%Y-%m-%d}"
    )
    say(
        f"label spine {paths['spine'].name}: {len(spine):,} rows, one per lead; converted within "
        f"{DEFAULT_HORIZON_DAYS} days of as_of: {spine['converted'].mean():.3f}"
    )


@data_app.command("profile")
def data_profile(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file to profile.")],
    target: Annotated[str, typer.Option("--target", "-t", help="Binary label column.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where pipeline.yaml and expectations.json go.")],
    name: Annotated[
        str | None, typer.Option(help="Pipeline and model name; default from the file name.")
    ] = None,
    not_missing: Annotated[
        list[str] | None,
        typer.Option(
            "--not-missing",
            help="A value that is a real answer here, not a placeholder for a missing one (e.g. 'unknown'): "
            "never proposed as data.na_values. Repeat for several.",
        ),
    ] = None,
) -> None:
    """Infer column roles and write a runnable pipeline config and a starter expectation suite.

    Identifiers, free text and constant columns are left out (features.exclude); a placeholder such as a
    form's "Select" is proposed as a missing value; a feature that predicts the target too well on its own
    is flagged as possible target leakage, with the question that decides it."""
    from flows.config import PipelineConfig
    from flows.scaffold import slug, write_scaffold
    from models.data.config import LeakageConfig
    from models.data.io import file_format, read_table, sniff_delimiter
    from models.data.profile import check_leakage, profile_frame
    from models.data.suite import build_starter_suite
    from models.seeds import Seeds

    # The written config keeps the default root seed, so the pipeline's leakage check draws the same folds.
    seeds = Seeds.from_root(PipelineConfig.model_fields["seed"].default)
    try:
        df = read_table(path)
        delimiter = sniff_delimiter(path) if file_format(path) == "csv" else None
        profile = profile_frame(df, target, not_missing=not_missing or ())
        if profile.na_values or profile.names("datetime"):
            # Re-read as validation and training will: blanks and placeholders as missing, dates as datetimes.
            df = read_table(
                path, delimiter=delimiter, na_values=profile.na_values, parse_dates=profile.names("datetime")
            )
        # The profile has no config yet: it holds the features to the limits a new config starts with.
        profile = check_leakage(profile, df, LeakageConfig(), seed=seeds.leakage)
        pipeline = name or slug(path.stem)
        suite = build_starter_suite(
            df,
            name=f"{pipeline}-suite",
            id_column=profile.id_column,
            target=profile.target,
            numeric=profile.names("numeric"),
            categorical=profile.names("categorical"),
            datetime=profile.names("datetime"),
        )
        result = write_scaffold(
            suite, profile, data_path=path, out_dir=out_dir, delimiter=delimiter, name=pipeline
        )
    except UserInputError as exc:
        raise fail(str(exc)) from None
    print_profile(profile, f"{path.name}: {profile.rows:,} rows", out)
    say(f"wrote {result.config_path} and {result.suite_path}")
    say(f"next: mlops validate --config {result.config_path}")


def print_profile(profile: DataProfile, title: str, console: Console) -> None:
    """The column table with a one-word check per column, then every note below it as wrapped text.

    A note is a sentence: as a table cell it competed with five columns for the width and was cut on a
    narrow terminal; below the table it wraps at any width and is never cut.
    """
    table = Table(title=title)
    for header in ("column", "role", "dtype", "nulls", "distinct", "check"):
        table.add_column(header, overflow="fold")  # wrapped, never cut with an ellipsis
    for c in profile.columns:
        table.add_row(c.name, c.role, c.dtype, f"{c.null_rate:.1%}", str(c.n_unique), c.flag)
    console.print(table)
    for issue in profile.issues:
        console.print(f"[yellow]check:[/] {escape(issue)}", highlight=False)
    report = profile.leakage
    if report is None:
        return
    if report.flagged:
        names = ", ".join(f.feature for f in report.flagged)
        console.print(
            f"[yellow]possible target leakage[/] in {escape(names)}: marked in the written config; confirm a "
            "feature under leakage.confirmed_safe or delete it from the features",
            highlight=False,
        )
    else:
        console.print(
            f"leakage check: no feature predicts {escape(profile.target)} alone with ROC AUC of "
            f"{report.auc_limit:.2f} or more ({report.folds}-fold cross-validated on {report.rows:,} rows)",
            highlight=False,
        )


def validate(ctx: typer.Context, config: ConfigOption, data: DataOption = None) -> None:
    """Validate data against the config's expectation suite (exit 0 pass, 1 fail, 2 unusable input)."""
    home = home_of(ctx)
    cfg = preflight(config, data, home)
    with flow_stack():
        from flows.validation import data_validation

    state = data_validation(cfg, home.data_docs, return_state=True)
    report = state.result(raise_on_failure=False)
    if isinstance(report, BaseException):
        if isinstance(report, UserInputError):
            raise fail(str(report))
        raise report
    print_report(report, cfg.data.path)
    if not report.success:
        raise typer.Exit(EXIT_INVALID_DATA)


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


def print_report(report, data_path: Path) -> None:
    """The validation verdict; on failure a table of each failed expectation with counts and samples."""
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
        say(f"Data Docs: {report.docs_path}")
