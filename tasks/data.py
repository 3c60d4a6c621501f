"""Prefect tasks for the data stage: load, validate, publish the validation summary.

Thin wrappers: the reading and the Great Expectations run live in ``models.data``. No retries:
a local file that is missing or malformed will not heal by trying again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact

from models.data.config import DataConfig
from models.data.io import read_table
from models.data.suite import load_suite
from models.data.validation import ValidationReport, validate_frame
from models.errors import UserInputError
from tasks.caching import ONCE_PER_RUN, REPLAYABLE


@task(name="load-data", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def load_data(source: DataConfig) -> pd.DataFrame:
    """Read the configured file with its delimiter, missing-value tokens and date columns."""
    return read_table(
        source.path, delimiter=source.delimiter, na_values=source.na_values, parse_dates=source.parse_dates
    )


@task(name="validate-data", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def validate_data(df: pd.DataFrame, suite_path: Path, docs_dir: Path) -> ValidationReport:
    """Run the expectation suite on ``df`` and build Data Docs under ``docs_dir``."""
    return validate_frame(df, load_suite(suite_path), docs_dir=docs_dir)


def validation_markdown(report: ValidationReport, data_path: Path) -> str:
    """The validation result as markdown, for a Prefect artifact and the approval evidence."""
    verdict = "passed" if report.success else "FAILED"
    lines = [
        f"### Data validation {verdict}",
        "",
        f"- data: `{data_path}`",
        f"- suite: `{report.suite_name}`, {report.evaluated} expectations, {len(report.failed)} failed",
        f"- rows: {report.row_count}",
    ]
    if report.docs_path:
        lines.append(f"- Data Docs: `{report.docs_path}`")
    if report.failed:
        lines += [
            "",
            "| column | expectation | unexpected | % | samples | detail |",
            "|---|---|---|---|---|---|",
        ]
        for f in report.failed:
            pct = "" if f.unexpected_percent is None else f"{f.unexpected_percent:.2f}"
            count = "" if f.unexpected_count is None else str(f.unexpected_count)
            samples = ", ".join(repr(v) for v in f.sample_values[:5])
            lines.append(
                f"| {f.column or '(table)'} | {f.expectation} | {count} | {pct} | {samples} | {f.detail} |"
            )
    return "\n".join(lines)


@task(name="publish-validation")
def publish_validation(report: ValidationReport, data_path: Path) -> str:
    """Attach the validation summary to the flow run as a markdown artifact."""
    markdown = validation_markdown(report, data_path)
    create_markdown_artifact(markdown=markdown, key="data-validation", description="Data validation result")
    return markdown


class InvalidDataError(UserInputError):
    """The data failed its expectation suite: the pipeline stops before any training."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(f"data validation failed: {report.summary()}")


@dataclass(frozen=True)
class Validation:
    """A passed validation: the report and the markdown shown to approvers."""

    report: ValidationReport
    markdown: str


def require_valid(df: pd.DataFrame, source: DataConfig, docs_dir: Path) -> Validation:
    """Validate and publish the result; invalid data stops the run here (`InvalidDataError`)."""
    report = validate_data(df, source.expectations, docs_dir)
    markdown = publish_validation(report, source.path)
    if not report.success:
        raise InvalidDataError(report)
    return Validation(report, markdown)
