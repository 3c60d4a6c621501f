"""Windowed aggregates of a CRM activity log: one timestamped row per lead per day.

The table a Feast feature view reads (``feature_repo/crm``): the row of day d carries
``event_timestamp`` = the last microsecond of d (UTC) and aggregates of the activities with a timestamp
at or before it, never after. A point-in-time join then picks, for an as-of time t, the latest row at or
before t, so no activity after t reaches a training row.

Vectorised over a dense (lead, day) grid: per-day counts, cumulative sums along the days, windows as
differences of cumulative sums; the latest touch is a running maximum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOWS_DAYS = (7, 30, 90)
# Feature name -> (activity types counted, None = every type; window in days).
AGGREGATES: dict[str, tuple[tuple[str, ...] | None, int]] = {
    "touches_7d": (None, 7),
    "touches_30d": (None, 30),
    "touches_90d": (None, 90),
    "site_visits_7d": (("site_visit",), 7),
    "site_visits_30d": (("site_visit",), 30),
    "email_opens_30d": (("email_open",), 30),
    "calls_30d": (("call",), 30),
    "meetings_30d": (("meeting",), 30),
    "form_fills_90d": (("form_fill",), 90),
    "deal_updates_30d": (("deal_update",), 30),
}
LAST_TOUCH = "last_touch_at"
EVENT_TIMESTAMP = "event_timestamp"
_DAY = pd.Timedelta(days=1)
_NO_TOUCH = np.iinfo(np.int64).min  # NaT's own integer: a cell without a touch reads back as null


def _utc(values: pd.Series) -> pd.Series:
    times = pd.to_datetime(values)
    return times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")


def activity_features(activities: pd.DataFrame, leads: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """Daily snapshots of each lead's activity aggregates, from its creation day to ``end``'s day.

    ``activities``: lead_id, timestamp, type; ``leads``: lead_id, created_at. Returns lead_id,
    event_timestamp, one int column per ``AGGREGATES`` entry and ``last_touch_at`` (null before the
    first activity). Activities of unknown leads are ignored.
    """
    end = pd.Timestamp(end)
    end = end.tz_localize("UTC") if end.tz is None else end.tz_convert("UTC")
    created_day = _utc(leads["created_at"]).dt.floor("D")
    first_day = created_day.min()
    n_days = int((end.floor("D") - first_day) / _DAY) + 1
    n_leads = len(leads)
    index = pd.Index(leads["lead_id"])

    times = _utc(activities["timestamp"])
    lead = index.get_indexer(activities["lead_id"])
    day = ((times.dt.floor("D") - first_day) / _DAY).to_numpy().astype(np.int64)
    known = (lead >= 0) & (day >= 0) & (day < n_days)
    lead, day, times, types = lead[known], day[known], times[known], activities["type"].to_numpy()[known]
    cell = lead * n_days + day

    def daily_counts(kinds: tuple[str, ...] | None) -> np.ndarray:
        selected = np.ones(len(cell), dtype=bool) if kinds is None else np.isin(types, kinds)
        counts = np.bincount(cell[selected], minlength=n_leads * n_days).reshape(n_leads, n_days)
        return np.cumsum(
            counts, axis=1, dtype=np.int32
        )  # activities up to and including each day, shape (leads, days)

    cumulative = {kinds: daily_counts(kinds) for kinds, _ in AGGREGATES.values()}
    columns: dict[str, np.ndarray] = {}
    for name, (kinds, window) in AGGREGATES.items():
        total = cumulative[kinds]
        shifted = np.zeros_like(total)
        shifted[:, window:] = total[:, :-window] if window < n_days else 0
        columns[name] = total - shifted

    # The latest touch at or before each day's end: the day's own latest, carried forward.
    latest = np.full(n_leads * n_days, _NO_TOUCH, dtype=np.int64)
    np.maximum.at(latest, cell, times.dt.tz_localize(None).dt.as_unit("ns").to_numpy().view(np.int64))
    latest = np.maximum.accumulate(latest.reshape(n_leads, n_days), axis=1)

    # Keep each lead's days from its creation on.
    start = ((created_day - first_day) / _DAY).to_numpy().astype(np.int64)
    alive = np.arange(n_days)[None, :] >= start[:, None]
    rows_lead, rows_day = np.nonzero(alive)
    day_end = first_day + pd.to_timedelta(rows_day + 1, unit="D") - pd.Timedelta(microseconds=1)
    last = latest[rows_lead, rows_day]
    frame = pd.DataFrame({"lead_id": index.to_numpy()[rows_lead], EVENT_TIMESTAMP: day_end})
    for name, values in columns.items():
        frame[name] = values[rows_lead, rows_day].astype(np.int64)
    frame[LAST_TOUCH] = pd.to_datetime(last.view("datetime64[ns]")).tz_localize("UTC")  # NaT: no touch yet
    return frame
