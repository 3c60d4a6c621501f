"""Windowed activity aggregates: each daily row sees only activities at or before its timestamp."""

from __future__ import annotations

import pandas as pd
import pytest

from models.features.activity import AGGREGATES, EVENT_TIMESTAMP, LAST_TOUCH, activity_features

T0 = pd.Timestamp("2025-03-01", tz="UTC")
COLUMNS = [*AGGREGATES, LAST_TOUCH]


def _at(days: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=days)


@pytest.fixture
def leads() -> pd.DataFrame:
    return pd.DataFrame({"lead_id": ["A", "B"], "created_at": [_at(0.2), _at(3.5)]})


@pytest.fixture
def activities() -> pd.DataFrame:
    rows = [
        ("A", _at(0.5), "site_visit"),
        ("A", _at(1.25), "email_open"),
        ("A", _at(2.9), "call"),
        ("A", _at(9.1), "meeting"),
        ("B", _at(4.0), "form_fill"),
    ]
    return pd.DataFrame(rows, columns=["lead_id", "timestamp", "type"])


def _naive_latest(table: pd.DataFrame, spine: pd.DataFrame) -> pd.DataFrame:
    """What a hand-built training table often does: each lead's latest values, whatever the as-of time."""
    latest = table.sort_values(EVENT_TIMESTAMP).groupby("lead_id").tail(1)
    return spine.merge(latest.drop(columns=EVENT_TIMESTAMP), on="lead_id")


def test_windows_and_last_touch(leads, activities) -> None:
    table = activity_features(activities, leads, end=_at(12))
    a = table[table["lead_id"] == "A"].set_index(EVENT_TIMESTAMP)
    b = table[table["lead_id"] == "B"]
    # One row per day from the creation day to the end's day, each at the day's last microsecond.
    assert len(a) == 13 and len(b) == 10
    assert a.index[0] == T0 + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    day3 = a.loc[_at(3) - pd.Timedelta(microseconds=1)]
    assert (day3["touches_7d"], day3["site_visits_7d"], day3["calls_30d"]) == (3, 1, 1)
    assert day3[LAST_TOUCH] == _at(2.9)
    day9 = a.loc[_at(10) - pd.Timedelta(microseconds=1)]
    # 7-day window on day 9 covers days 3-9: the visit (day 0) and the email (day 1) and the call (day 2) left it.
    assert (day9["touches_7d"], day9["touches_30d"], day9["meetings_30d"]) == (1, 4, 1)
    assert (
        pd.isna(b.iloc[0][LAST_TOUCH]) and b.iloc[0]["touches_7d"] == 0
    )  # created on day 3, first touch day 4


def test_sentinels_after_a_rows_time_change_none_of_its_features_but_change_a_naive_join(
    leads, activities
) -> None:
    end = _at(12)
    table = activity_features(activities, leads, end)
    cutoff = _at(6)
    sentinels = pd.DataFrame(
        {
            "lead_id": ["A", "A", "B", "B"],
            "timestamp": [cutoff + pd.Timedelta(seconds=1), _at(7.5), _at(6.2), _at(11.9)],
            "type": ["meeting", "deal_update", "site_visit", "call"],
        }
    )
    leaked = activity_features(pd.concat([activities, sentinels]), leads, end)
    before = table[EVENT_TIMESTAMP] < cutoff
    pd.testing.assert_frame_equal(table[before], leaked[leaked[EVENT_TIMESTAMP] < cutoff])
    assert not table[~before][COLUMNS].equals(leaked[~before][COLUMNS])

    # A point-in-time lookup at an as-of before the sentinels is unchanged; the naive latest-value join is not.
    spine = pd.DataFrame({"lead_id": ["A", "B"], "as_of": [_at(5.5), _at(5.5)]})

    def as_of_lookup(features: pd.DataFrame) -> pd.DataFrame:
        return pd.merge_asof(
            spine.sort_values("as_of"),
            features.sort_values(EVENT_TIMESTAMP),
            left_on="as_of",
            right_on=EVENT_TIMESTAMP,
            by="lead_id",
        )[COLUMNS]

    pd.testing.assert_frame_equal(as_of_lookup(table), as_of_lookup(leaked))
    naive, naive_leaked = _naive_latest(table, spine), _naive_latest(leaked, spine)
    assert not naive[COLUMNS].equals(naive_leaked[COLUMNS])
    assert (naive_leaked[LAST_TOUCH] > spine["as_of"]).all()  # values from after the as-of time


def test_activities_of_unknown_leads_are_ignored(leads, activities) -> None:
    stray = pd.DataFrame({"lead_id": ["Z"], "timestamp": [_at(2)], "type": ["call"]})
    pd.testing.assert_frame_equal(
        activity_features(activities, leads, _at(12)),
        activity_features(pd.concat([activities, stray]), leads, _at(12)),
    )
