"""Freshness of the online feature store, per feature view: how far behind its source the online store is, how
old the features the service actually read were, and whether the view is older than it may be.

Pure: the drift monitor reads each view's materialisations from the Feast registry and the served ages from the
prediction log, then calls `check_freshness`. A view's age is ``now`` minus the end of its furthest
materialisation: the online store holds the source's rows up to that end and nothing newer. The view is stale
when that age is over its limit (``feature_store.max_age_minutes`` for the view, else the view's ttl) or when it
was never materialised. The served ages (per row scored by entity id: request time minus the event time of the
row read) are reported beside the verdict, not judged: the service flags each row older than the ttl itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from models.errors import UserInputError
from monitoring.prediction_log import PredictionRecord

# The row flags the service writes to the prediction log for a view (serving.features writes the same prefixes).
STALE_FLAG = "stale:"  # + view: the row's features were older than the view's ttl
MISSING_FLAG = "missing:"  # + view: the online store had nothing for the row's entity


@dataclass(frozen=True)
class ViewMaterialization:
    """One online feature view as the feature registry records it."""

    view: str
    ttl: timedelta | None  # None: the view's features never expire (Feast's ttl 0)
    last_end: datetime | None  # the end of its furthest materialisation; None: never materialised
    ran_at: datetime | None = None  # when the run that reached ``last_end`` finished, where known


@dataclass(frozen=True)
class ServedAges:
    """The ages of one view's features as the service read them, over the prediction-log rows checked."""

    rows: int  # rows scored by id that read a value from the view
    median_seconds: float | None  # None: no such row
    max_seconds: float | None
    newest_event: datetime | None  # the latest event time among the values read
    stale_rows: int  # rows flagged ``stale:<view>``
    missing_rows: int  # rows flagged ``missing:<view>`` (nothing for the entity; no age)


@dataclass(frozen=True)
class ViewFreshness:
    """One view's verdict and the figures behind it."""

    view: str
    last_end: datetime | None
    ran_at: datetime | None
    age_seconds: float | None  # now - last_end; None: never materialised
    limit_seconds: float | None  # None: no limit (ttl 0 and none configured)
    limit_from: str  # "max_age_minutes", "ttl" or "none"
    served: ServedAges | None  # None: no row of the log read this view by id
    stale: bool
    reason: str  # why the view is stale, in words; "" when fresh

    def payload(self, model_name: str, service: str) -> dict[str, Any]:
        """The ``mlops.features.stale`` event's payload: the model, the view, how old it is and may be."""
        return {
            "model": model_name,
            "service": service,
            "view": self.view,
            "last_materialized": self.last_end.isoformat() if self.last_end else None,
            "materialized_at": self.ran_at.isoformat() if self.ran_at else None,
            "age_seconds": self.age_seconds,
            "limit_seconds": self.limit_seconds,
            "age": duration(self.age_seconds) if self.age_seconds is not None else "never materialised",
            "limit": _limit_text(self),
            "reason": self.reason,
            "served_stale_rows": self.served.stale_rows if self.served else 0,
        }


@dataclass(frozen=True)
class FreshnessReport:
    """Every online view of a feature service, checked at one moment."""

    service: str
    checked_at: datetime
    views: list[ViewFreshness]

    @property
    def stale(self) -> list[ViewFreshness]:
        return [view for view in self.views if view.stale]

    def markdown(self) -> str:
        """The per-view table `mlops monitor` prints and the flow run attaches."""
        stale = self.stale
        verdict = f"STALE ({', '.join(v.view for v in stale)})" if stale else "fresh"
        lines = [
            f"## Feature freshness: {self.service}: {verdict}",
            "",
            f"Checked at {_time(self.checked_at)}. Age: how far behind its source the online store is (now minus "
            "the end of the view's last materialisation). Served age: request time minus the event time of "
            "the features read, over the prediction-log rows checked.",
            "",
            "| view | last materialised | age | served age p50 / max | stale rows | limit | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in self.views:
            last = "never" if v.last_end is None else _time(v.last_end)
            if v.ran_at is not None:
                last += f" (ran {_time(v.ran_at)})"
            age = "–" if v.age_seconds is None else duration(v.age_seconds)
            served, rows = "no rows read by id", "–"
            if v.served is not None:
                if v.served.median_seconds is not None and v.served.max_seconds is not None:
                    served = f"{duration(v.served.median_seconds)} / {duration(v.served.max_seconds)}"
                read = v.served.rows + v.served.missing_rows
                rows = f"{v.served.stale_rows:,} of {read:,}"
                if v.served.missing_rows:
                    rows += f" ({v.served.missing_rows:,} missing)"
            ruling = f"**STALE**: {v.reason}" if v.stale else "fresh"
            lines.append(f"| {v.view} | {last} | {age} | {served} | {rows} | {_limit_text(v)} | {ruling} |")
        return "\n".join(lines)


def served_ages(records: Iterable[PredictionRecord]) -> dict[str, ServedAges]:
    """Per view, the ages and flags of the features the service read by entity id in ``records`` (rows that
    carried every feature have no ages and no such flags, and count nowhere)."""
    ages: dict[str, list[float]] = {}
    events: dict[str, float] = {}  # per view, the latest event time read, in Unix seconds
    stale: dict[str, int] = {}
    missing: dict[str, int] = {}
    for record in records:
        if record.feature_ages:
            requested = _utc(datetime.fromisoformat(record.timestamp)).timestamp()
            for view, age in record.feature_ages.items():
                ages.setdefault(view, []).append(age)
                events[view] = max(events.get(view, -np.inf), requested - age)
        for flag in record.flags:
            if flag.startswith(STALE_FLAG):
                view = flag.removeprefix(STALE_FLAG)
                stale[view] = stale.get(view, 0) + 1
            elif flag.startswith(MISSING_FLAG):
                view = flag.removeprefix(MISSING_FLAG)
                missing[view] = missing.get(view, 0) + 1
    summaries = {}
    for view in sorted({*ages, *stale, *missing}):
        values = np.asarray(ages.get(view, []), dtype=float)
        summaries[view] = ServedAges(
            rows=len(values),
            median_seconds=float(np.median(values)) if len(values) else None,
            max_seconds=float(values.max()) if len(values) else None,
            newest_event=datetime.fromtimestamp(events[view], UTC) if view in events else None,
            stale_rows=stale.get(view, 0),
            missing_rows=missing.get(view, 0),
        )
    return summaries


def check_freshness(
    views: Sequence[ViewMaterialization],
    *,
    service: str,
    max_age_minutes: Mapping[str, float],
    served: Mapping[str, ServedAges],
    now: datetime,
) -> FreshnessReport:
    """Each view's age at ``now`` against its limit: ``max_age_minutes[view]`` when configured, else its ttl
    (none for ttl 0). A view never materialised is stale whatever its limit. A configured limit for a view the
    service does not read from the online store is a `UserInputError` (a misspelt view would never be checked)."""
    names = [v.view for v in views]
    unknown = sorted(set(max_age_minutes) - set(names))
    if unknown:
        raise UserInputError(
            f"feature_store.max_age_minutes names view(s) {', '.join(unknown)} that feature service {service!r} "
            f"does not read from the online store (its views: {', '.join(names) or 'none'})"
        )
    now = _utc(now)
    return FreshnessReport(
        service,
        now,
        [_view_freshness(v, max_age_minutes.get(v.view), served.get(v.view), now) for v in views],
    )


def _view_freshness(
    view: ViewMaterialization, max_age_minutes: float | None, served: ServedAges | None, now: datetime
) -> ViewFreshness:
    if max_age_minutes is not None:
        limit, limit_from = max_age_minutes * 60.0, "max_age_minutes"
    elif view.ttl is not None and view.ttl > timedelta(0):
        limit, limit_from = view.ttl.total_seconds(), "ttl"
    else:
        limit, limit_from = None, "none"
    if view.last_end is None:
        return ViewFreshness(
            view.view, None, view.ran_at, None, limit, limit_from, served, True, "never materialised"
        )
    # A clock a little behind the materialising machine's would give a negative age: read it as 0.
    age = max(0.0, (now - _utc(view.last_end)).total_seconds())
    stale = limit is not None and age > limit
    reason = (
        f"{duration(age)} old, over its {limit_from} of {duration(limit)}"
        if stale and limit is not None
        else ""
    )
    return ViewFreshness(
        view.view, _utc(view.last_end), view.ran_at, age, limit, limit_from, served, stale, reason
    )


def duration(seconds: float) -> str:
    """A duration in the unit an operator reads it in: 45 s, 12 min, 5.5 h, 3.0 d."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 120 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def _limit_text(view: ViewFreshness) -> str:
    if view.limit_seconds is None:
        return "none (ttl 0)"
    return f"{duration(view.limit_seconds)} ({view.limit_from})"


def _time(moment: datetime) -> str:
    return f"{_utc(moment):%Y-%m-%d %H:%M} UTC"


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time is taken to be UTC already (as Feast and the prediction log write them)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
