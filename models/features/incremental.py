"""What an incremental materialisation writes into the online store, and the check it must pass first.

Feast's ``materialize_incremental`` with its default local engine and file offline store writes, per feature
view, the latest row of each entity whose event time lies in [start, end], both ends included (ties on the
event time broken by the created timestamp), where start is the end of the view's previous
materialisation. These functions select that same batch from the view's table, so that the rows validated
are the rows written.

One difference, on purpose: for a view never materialised Feast starts at ``now - ttl``, not ``end - ttl``, so
a first run that ends in the past (a backfill, a test at the source's own dates) would write nothing. Here a
first run starts ``ttl`` before its end, and the writer materialises that interval explicitly.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from models.errors import UserInputError
from models.features.materialization import as_utc

if TYPE_CHECKING:  # Great Expectations loads in seconds: the reports are only named here
    from models.data.validation import ValidationReport

# Feast's own start for a view whose ttl is 0 (no expiry) and that was never materialised.
NO_TTL_LOOKBACK = timedelta(weeks=52)
# The kwargs through which a Great Expectations expectation names the columns it checks.
_COLUMN_KWARGS = ("column", "column_A", "column_B")


@dataclass(frozen=True)
class ViewInterval:
    """The event-time interval one materialisation reads for one view."""

    view: str
    start: datetime
    end: datetime
    first: bool  # never materialised before: the interval starts ttl before the end

    @property
    def empty(self) -> bool:
        """Already materialised up to ``end`` or past it: nothing to write (Feast would read nothing)."""
        return self.start >= self.end


def materialization_end(end: datetime | None, now: datetime) -> datetime:
    """The run's end time in UTC: ``end`` (naive = UTC) or ``now``. An end after ``now`` is refused: the next
    run would start there, and rows that arrive meanwhile with earlier times would never be written."""
    if end is None:
        return as_utc(now)
    end = as_utc(end)
    if end > as_utc(now):
        raise UserInputError(
            f"end {end.isoformat()} is in the future: the next run would start there and skip the rows "
            "that arrive until then; materialise up to now at most"
        )
    return end


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``2025-03-31``, ``2025-03-31T12:00``, with or without an offset; naive = UTC)."""
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise UserInputError(
            f"{text!r} is not an ISO 8601 time (e.g. 2025-03-31 or 2025-03-31T12:00:00+00:00)"
        ) from None


def view_interval(view: str, ttl: timedelta | None, last_end: datetime | None, end: datetime) -> ViewInterval:
    """The interval a run ending at ``end`` materialises for a view: from the end of its previous
    materialisation (``last_end``), or for a first run from ``ttl`` before ``end`` (a year for ttl 0)."""
    end = as_utc(end)
    if last_end is not None:
        return ViewInterval(view, as_utc(last_end), end, first=False)
    if ttl is None:
        raise UserInputError(f"feature view {view!r} has no ttl: set one to materialise it incrementally")
    lookback = ttl if ttl > timedelta(0) else NO_TTL_LOOKBACK
    return ViewInterval(view, end - lookback, end, first=True)


def latest_rows(
    table: pd.DataFrame,
    join_keys: list[str],
    timestamp: str,
    interval: ViewInterval,
    created: str | None = None,
) -> pd.DataFrame:
    """The latest row of each entity with ``timestamp`` in [start, end] (both included), sorted by entity;
    of rows with equal times the one created last. Rows without a time are never written."""
    times = pd.to_datetime(table[timestamp], utc=True)
    inside = table[(times >= pd.Timestamp(interval.start)) & (times <= pd.Timestamp(interval.end))]
    order = [timestamp, *([created] if created else [])]
    latest = inside.sort_values(order, kind="stable").drop_duplicates(join_keys, keep="last")
    return latest.sort_values(join_keys).reset_index(drop=True)


def expectation_columns(expectation: Mapping) -> set[str]:
    """The columns one expectation checks (none for a table-level one)."""
    kwargs = expectation.get("kwargs") or {}
    named = {kwargs[k] for k in _COLUMN_KWARGS if isinstance(kwargs.get(k), str)}
    return named | set(kwargs.get("column_list") or [])


def suite_for_columns(suite: Mapping, columns: Collection[str]) -> dict:
    """The part of ``suite`` that applies to a frame with ``columns``: every expectation whose columns are all
    there, and the table-level ones. One suite describes the features of every view; each view's batch is
    checked against the expectations on its own columns."""
    part = copy.deepcopy(dict(suite))
    present = set(columns)
    part["expectations"] = [e for e in suite.get("expectations", []) if expectation_columns(e) <= present]
    return part


def unknown_columns(suite: Mapping, columns: Collection[str]) -> list[str]:
    """Columns the suite names that no view has: a misspelt column would otherwise never be checked."""
    named = set().union(*(expectation_columns(e) for e in suite.get("expectations", [])))
    return sorted(named - set(columns))


class InvalidFeatureBatchError(UserInputError):
    """A batch failed the feature suite: no view was written."""

    def __init__(self, reports: Mapping[str, ValidationReport]) -> None:
        self.reports = dict(reports)
        failed = [
            f"{view}: {f.expectation} on {f.column or 'the table'} ({f.detail})"
            for view, report in sorted(self.reports.items())
            for f in report.failed
        ]
        super().__init__(
            "materialisation refused, the online store is unchanged: "
            f"{len(failed)} expectation(s) failed: " + "; ".join(failed)
        )
