"""Validate a DataFrame against a suite dict with Great Expectations, returning a plain report.

One ephemeral GX context per call (a few hundred ms for 100k rows); no Prefect, no files except the
optional Data Docs site. GX records evaluation errors (a missing column, a comparison on strings)
inside the result instead of raising; they come back here as failed expectations.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import great_expectations as gx
import numpy as np
import pandas as pd
from great_expectations.data_context.types.base import ProgressBarsConfig

from models.data.suite import to_gx_suite

SAMPLE_SIZE = 5
# BASIC already carries counts, percents and the first N unexpected values (20 leaves room to find
# SAMPLE_SIZE distinct ones); SUMMARY adds row-index lists we never show and runs ~2x slower.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 20}
# Not "local_site": every ephemeral context already defines that one (pointing at a temp dir).
DOCS_SITE = "validate_frame_site"


@dataclass(frozen=True)
class FailedExpectation:
    """One expectation that did not hold, in terms a person fixing the data can act on."""

    expectation: str
    column: str | None  # "A, B" for an expectation on a pair of columns
    unexpected_count: int | None
    unexpected_percent: float | None  # percent (0-100), as GX reports it
    sample_values: list
    detail: str


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating one frame against one suite."""

    success: bool
    suite_name: str
    row_count: int
    evaluated: int
    failed: list[FailedExpectation]
    docs_path: str | None

    def to_dict(self) -> dict:
        """JSON-safe dict: numpy/pandas scalars and timestamps in sample values become plain values."""
        data = asdict(self)
        for item in data["failed"]:
            item["sample_values"] = [_plain(v) for v in item["sample_values"]]
            item["unexpected_count"] = _plain(item["unexpected_count"])
            item["unexpected_percent"] = _plain(item["unexpected_percent"])
        return data

    def summary(self) -> str:
        """One line for logs and CLI output."""
        verdict = "passed" if self.success else "FAILED"
        line = (
            f"suite '{self.suite_name}' {verdict} on {self.row_count} rows: "
            f"{len(self.failed)} of {self.evaluated} expectations failed"
        )
        if self.failed:
            # A missing column fails every expectation on it; one mention is enough.
            reasons = list(dict.fromkeys(f"{f.column or 'table'}: {f.detail}" for f in self.failed))
            shown = reasons[:3]
            more = f"; +{len(reasons) - 3} more" if len(reasons) > 3 else ""
            line += " (" + "; ".join(shown) + more + ")"
        return line


def validate_frame(df: pd.DataFrame, suite: dict, *, docs_dir: Path | None = None) -> ValidationReport:
    """Run `suite` (a suite dict, see `models.data.suite`) on `df` and report what failed.

    Never raises for bad data: missing columns and values GX cannot compare are reported as failed
    expectations. Raises SuiteError only for a suite GX cannot build. With `docs_dir`, a Data Docs
    site for this run is written there and `docs_path` points at its index.html.
    """
    gx_suite = to_gx_suite(
        suite, source=f"suite '{suite.get('name')}'" if isinstance(suite, dict) else "suite"
    )
    frame = _gx_compatible(df)
    with _quiet_gx():
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        batch_definition = (
            context.data_sources.add_pandas("pandas")
            .add_dataframe_asset("frame")
            .add_batch_definition_whole_dataframe("whole_frame")
        )
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(
                name="validate_frame", data=batch_definition, suite=context.suites.add(gx_suite)
            )
        )
        docs_path = None
        if docs_dir is None:
            result = definition.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)
        else:
            result = _run_with_docs(context, definition, frame, Path(docs_dir))
            docs_path = str(Path(docs_dir) / "index.html")

    failed = [_describe(r, df) for r in result.results if not r.success]
    return ValidationReport(
        success=not failed,
        suite_name=gx_suite.name,
        row_count=len(df),
        evaluated=len(result.results),
        failed=failed,
        docs_path=docs_path,
    )


def _run_with_docs(
    context: Any, definition: gx.ValidationDefinition, frame: pd.DataFrame, docs_dir: Path
) -> Any:
    """Validate through a Checkpoint so its UpdateDataDocsAction renders the site into `docs_dir`."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    context.add_data_docs_site(
        site_name=DOCS_SITE,
        site_config={
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        },
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="validate_frame_docs",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])],
            result_format=RESULT_FORMAT,
        )
    )
    outcome = checkpoint.run(batch_parameters={"dataframe": frame})
    (result,) = outcome.run_results.values()
    return result


def _gx_compatible(df: pd.DataFrame) -> pd.DataFrame:
    """Decode dtypes GX's pandas type check cannot match by any name (category, tz-aware datetimes).

    A category column is validated on its values and a tz-aware one as naive UTC; the caller's frame
    is left alone, and no copy is made when nothing needs converting.
    """
    convert: dict[str, pd.Series] = {}
    for col in df.columns:
        dtype = df[col].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            convert[col] = df[col].astype(dtype.categories.dtype)
        elif isinstance(dtype, pd.DatetimeTZDtype):
            convert[col] = df[col].dt.tz_convert("UTC").dt.tz_localize(None)
    return df.assign(**convert) if convert else df


@contextmanager
def _quiet_gx() -> Iterator[None]:
    """Keep GX's own log chatter off the console for the duration of one validation."""
    logger = logging.getLogger("great_expectations")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _describe(result: Any, df: pd.DataFrame) -> FailedExpectation:
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column")
    pair = [kwargs[k] for k in ("column_A", "column_B") if kwargs.get(k) is not None]
    res = result.result or {}
    values = _distinct(res.get("partial_unexpected_list") or [])
    count, percent = res.get("unexpected_count"), res.get("unexpected_percent")
    etype = config.type

    error = _exception_message(result.exception_info)
    if any(c not in df.columns for c in ([column] if column is not None else pair)):
        detail, values = "missing column", []
    elif error is not None:
        detail = f"could not evaluate: {error}"
    elif etype == "expect_table_columns_to_match_set":
        mismatched = (res.get("details") or {}).get("mismatched") or {}
        extra, missing = list(mismatched.get("unexpected", [])), list(mismatched.get("missing", []))
        parts = []
        if extra:
            parts.append(f"columns not in the suite: {', '.join(map(str, extra))}")
        if missing:
            parts.append(f"missing: {', '.join(map(str, missing))}")
        detail, values = "; ".join(parts) or "column set differs", extra + missing
    elif etype == "expect_column_values_to_be_in_type_list":
        detail = (
            f"observed dtype {df[column].dtype}, expected one of [{_abbreviate(kwargs.get('type_list'))}]"
        )
        not_numbers = _non_numeric_values(df[column], kwargs.get("type_list") or [])
        if not_numbers is not None:
            # A text value in a numeric column turns every value into text; point at the culprits.
            count, samples = not_numbers
            percent = 100.0 * count / max(len(df), 1)
            values = samples
            detail = f"{count} value(s) are not numbers, so the column reads as text ({detail})"
    elif etype == "expect_column_values_to_not_be_null":
        mostly = kwargs.get("mostly")
        allowed = (1.0 - (1.0 if mostly is None else mostly)) * 100
        detail, values = f"null rate {percent or 0.0:.1f}% above allowed {allowed:.1f}%", []
    elif etype == "expect_column_values_to_be_between":
        detail = f"values outside [{kwargs.get('min_value')}, {kwargs.get('max_value')}]"
    elif etype == "expect_column_values_to_be_unique":
        detail = "duplicate values"
    elif etype == "expect_column_pair_values_a_to_be_greater_than_b":
        detail = f"{pair[0]} {'<' if kwargs.get('or_equal') else '<='} {pair[1]} in some rows"
    elif etype == "expect_table_row_count_to_be_between":
        upper = kwargs.get("max_value")
        detail = (
            f"row count {res.get('observed_value')} outside "
            f"[{kwargs.get('min_value')}, {'no maximum' if upper is None else upper}]"
        )
    elif values:
        detail = "unexpected values"
    else:
        detail = (
            f"observed {res.get('observed_value')!r}" if "observed_value" in res else "expectation failed"
        )
    return FailedExpectation(
        expectation=etype,
        column=column if column is not None else (", ".join(pair) or None),
        unexpected_count=count,
        unexpected_percent=percent,
        sample_values=values,
        detail=detail,
    )


def _non_numeric_values(series: pd.Series, type_list: list[str]) -> tuple[int, list] | None:
    """For a text column that should be numeric: how many values are not numbers, and a few of them."""
    if series.dtype != object or not ({"int", "float", "int64", "float64"} & set(type_list)):
        return None
    present = series.dropna()
    bad = present[pd.to_numeric(present, errors="coerce").isna()]
    if bad.empty:
        return None
    return len(bad), _distinct(bad.head(50).tolist())


def _exception_message(info: Any) -> str | None:
    """First error message in GX's exception_info, which is either flat or keyed by metric."""
    if not info:
        return None
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and (entry.get("raised_exception") or entry.get("exception_message")):
            message = str(entry.get("exception_message") or "unknown error").strip()
            return message.splitlines()[0][:200] if message else "unknown error"
    return None


def _abbreviate(names: list | None, limit: int = 6) -> str:
    names = list(names or [])
    shown = ", ".join(map(str, names[:limit]))
    return shown + (f", ... (+{len(names) - limit} more)" if len(names) > limit else "")


def _distinct(values: list) -> list:
    seen: list = []
    for value in values:
        if value not in seen:
            seen.append(value)
            if len(seen) == SAMPLE_SIZE:
                break
    return seen


def _plain(value: Any) -> Any:
    """A JSON-safe stand-in for a sample value."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)  # .item() would give an int for nanosecond precision
        if value is pd.NaT:
            return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)
