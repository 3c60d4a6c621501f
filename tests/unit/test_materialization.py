"""The materialisation record file and which rows an incremental materialisation writes: pure code, no Feast."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from models.data.suite import load_suite
from models.errors import UserInputError
from models.features.incremental import (
    ViewInterval,
    expectation_columns,
    latest_rows,
    materialization_end,
    parse_time,
    suite_for_columns,
    unknown_columns,
    view_interval,
)
from models.features.materialization import (
    MaterializationRecord,
    ViewWindow,
    append_record,
    last_materialization,
    read_records,
)

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def _record(at: datetime, run: str, **ends: datetime) -> MaterializationRecord:
    return MaterializationRecord(
        at, run, {view: ViewWindow(10, end - DAY, end) for view, end in ends.items()}
    )


def test_records_round_trip_through_the_file_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "features" / "mlops_crm" / "materializations.jsonl"
    assert read_records(path) == []  # no run yet
    first = _record(T0, "run-1", lead_activity=T0, lead_attributes=T0)
    second = MaterializationRecord(T0 + DAY, None, {})  # a run with nothing new to write
    append_record(path, first)
    append_record(path, second)
    assert read_records(path) == [first, second]
    line = json.loads(path.read_text().splitlines()[0])
    assert line == {
        "at": "2025-03-01T00:00:00+00:00",
        "flow_run_id": "run-1",
        "views": {
            "lead_activity": {
                "rows": 10,
                "start": "2025-02-28T00:00:00+00:00",
                "end": "2025-03-01T00:00:00+00:00",
            },
            "lead_attributes": {
                "rows": 10,
                "start": "2025-02-28T00:00:00+00:00",
                "end": "2025-03-01T00:00:00+00:00",
            },
        },
    }


def test_times_are_read_back_in_utc(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    paris = datetime(2025, 3, 1, 1, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    append_record(path, _record(paris, "r", v=paris))
    (record,) = read_records(path)
    assert record.at == T0 + timedelta(hours=1) and record.at.tzinfo == UTC
    assert record.views["v"].end.isoformat() == "2025-03-01T01:00:00+00:00"


def test_a_line_still_being_written_is_left_out_and_a_corrupt_one_named(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    append_record(path, _record(T0, "r", v=T0))
    with path.open("a") as handle:
        handle.write('{"at": "2025-03-02T00:00:00+00:00", "flow_')  # another run mid-append
    assert [r.flow_run_id for r in read_records(path)] == ["r"]
    path.write_text(path.read_text() + "\n")
    with pytest.raises(UserInputError, match=r"m\.jsonl:2: not a materialisation record"):
        read_records(path)


def test_last_materialization_is_the_furthest_end_per_view(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    append_record(path, _record(T0, "a", lead_activity=T0 + DAY, lead_attributes=T0 + DAY))
    append_record(path, _record(T0 + DAY, "b", lead_activity=T0 + 2 * DAY))
    append_record(path, _record(T0 + 2 * DAY, "backfill", lead_attributes=T0))  # ends earlier: not the latest
    last = last_materialization(path)
    assert {view: (m.end, m.at, m.flow_run_id) for view, m in last.items()} == {
        "lead_activity": (T0 + 2 * DAY, T0 + DAY, "b"),
        "lead_attributes": (T0 + DAY, T0, "a"),
    }
    assert last_materialization(tmp_path / "none.jsonl") == {}


def test_a_first_run_reaches_back_the_ttl_and_a_later_one_starts_where_the_last_ended() -> None:
    end = T0 + 10 * DAY
    assert view_interval("a", 2 * DAY, None, end) == ViewInterval("a", end - 2 * DAY, end, first=True)
    assert view_interval("a", 2 * DAY, T0, end) == ViewInterval("a", T0, end, first=False)
    assert view_interval("a", timedelta(0), None, end).start == end - timedelta(weeks=52)  # ttl 0: no expiry
    assert view_interval("a", 2 * DAY, end, end).empty and view_interval("a", 2 * DAY, end + DAY, end).empty
    with pytest.raises(UserInputError, match="no ttl"):
        view_interval("a", None, None, end)


def test_latest_rows_takes_each_entitys_last_row_in_the_closed_interval() -> None:
    table = pd.DataFrame(
        {
            "lead_id": ["a", "a", "a", "b", "b", "c", "d"],
            "ts": pd.to_datetime(
                [T0, T0 + DAY, T0 + 3 * DAY, T0 + 2 * DAY, T0 + 2 * DAY, T0 - DAY, None], utc=True
            ),
            "created": pd.to_datetime([T0] * 3 + [T0, T0 + DAY] + [T0] * 2, utc=True),
            "x": [1, 2, 3, 4, 5, 6, 7],
        }
    )
    interval = ViewInterval("v", T0, T0 + 2 * DAY, first=False)
    rows = latest_rows(table, ["lead_id"], "ts", interval, created="created")
    # a: T0 + 3 days is after the end; b: equal times, the later created wins; c: before the start; d: no time
    assert rows[["lead_id", "x"]].values.tolist() == [["a", 2], ["b", 5]]
    assert latest_rows(table, ["lead_id"], "ts", ViewInterval("v", T0 + DAY, T0 + DAY, False))[
        "x"
    ].tolist() == [2]


def test_end_times() -> None:
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)
    assert materialization_end(None, now) == now
    assert parse_time("2025-03-31") == datetime(2025, 3, 31, tzinfo=UTC)  # naive: UTC
    assert parse_time("2025-03-31T14:00:00+02:00") == datetime(2025, 3, 31, 12, tzinfo=UTC)
    assert materialization_end(parse_time("2025-06-01T12:00"), now) == now
    with pytest.raises(UserInputError, match="in the future"):
        materialization_end(now + timedelta(seconds=1), now)
    with pytest.raises(UserInputError, match="not an ISO 8601 time"):
        parse_time("yesterday")


def test_the_shipped_suite_splits_by_view_and_names_only_columns_the_views_have() -> None:
    suite = load_suite(REPO / "configs" / "crm_features.expectations.json")
    attributes = [
        "lead_id",
        "region",
        "lead_source",
        "plan",
        "industry",
        "company_size",
        "deal_size",
        "created_at",
    ]
    activity = ["lead_id", "event_timestamp", "last_touch_at", "touches_7d", "touches_30d", "touches_90d"]
    activity += ["site_visits_7d", "site_visits_30d", "email_opens_30d", "calls_30d", "meetings_30d"]
    activity += ["form_fills_90d", "deal_updates_30d"]
    assert unknown_columns(suite, attributes + activity) == []
    assert unknown_columns(suite, activity) == sorted(set(attributes) - {"lead_id"})
    for columns in (attributes, activity):
        part = suite_for_columns(suite, columns)
        assert part["expectations"] and all(
            expectation_columns(e) <= set(columns) for e in part["expectations"]
        )
    pair = suite_for_columns(suite, activity)["expectations"]
    assert {"event_timestamp", "last_touch_at"} in [expectation_columns(e) for e in pair]
    assert len(suite_for_columns(suite, attributes)["expectations"]) + len(pair) > len(suite["expectations"])
