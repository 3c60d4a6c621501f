"""The record of what each materialisation wrote into the online store, one JSON line per run.

``materialize-features`` appends a line after every run that wrote; ``mlops monitor`` reads the file to say
how fresh each view is. A line::

    {"at": "2025-04-01T00:00:05+00:00", "flow_run_id": "…",
     "views": {"lead_activity": {"rows": 812, "start": "2025-03-30T00:00:00+00:00", "end": "…"}}}

Plain files and the standard library only: the monitor reads it without importing Feast or Prefect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from models.errors import UserInputError


@dataclass(frozen=True)
class ViewWindow:
    """What one run wrote for one view: the latest row per entity with an event time in [start, end]."""

    rows: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class MaterializationRecord:
    """One run: when it finished, which flow run it was, and per view what it wrote."""

    at: datetime
    flow_run_id: str | None
    views: dict[str, ViewWindow]

    def to_json(self) -> str:
        """One line of the record file (no newline), times as ISO 8601 in UTC."""
        return json.dumps(
            {
                "at": _iso(self.at),
                "flow_run_id": self.flow_run_id,
                "views": {
                    name: {"rows": w.rows, "start": _iso(w.start), "end": _iso(w.end)}
                    for name, w in sorted(self.views.items())
                },
            }
        )

    @classmethod
    def from_json(cls, line: str) -> MaterializationRecord:
        """Inverse of `to_json`; raises ValueError (or KeyError, TypeError) on a line that is not one."""
        data = json.loads(line)
        return cls(
            at=_time(data["at"]),
            flow_run_id=data.get("flow_run_id"),
            views={
                name: ViewWindow(rows=int(w["rows"]), start=_time(w["start"]), end=_time(w["end"]))
                for name, w in data["views"].items()
            },
        )


@dataclass(frozen=True)
class LastMaterialization:
    """A view's furthest materialisation: the online store holds its rows up to ``end``."""

    view: str
    end: datetime
    at: datetime  # when the run that reached ``end`` finished
    rows: int  # rows that run wrote for the view
    flow_run_id: str | None


def append_record(path: Path, record: MaterializationRecord) -> None:
    """Append ``record`` as one line, creating the file and its folder. One ``write`` of one line in append
    mode: two runs appending at once do not interleave their lines on a local file system."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(record.to_json() + "\n")


def read_records(path: Path) -> list[MaterializationRecord]:
    """Every record in the file, oldest first; none when the file does not exist yet.

    A last line without its newline is a run still appending and is left out; any other line that is not
    a record is a corrupt file (`UserInputError` naming the file and line)."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete = lines[:-1]  # the piece after the last newline is empty, or a line being written
    records = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            records.append(MaterializationRecord.from_json(line))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserInputError(f"{path}:{number}: not a materialisation record ({exc})") from None
    return records


def last_materialization(path: Path) -> dict[str, LastMaterialization]:
    """Per view, the run that materialised it furthest (the latest ``end``; of equal ends, the latest run).

    A backfill that ends earlier than an earlier run does not make a view look older than it is."""
    latest: dict[str, LastMaterialization] = {}
    for record in read_records(path):
        for view, window in record.views.items():
            seen = latest.get(view)
            if seen is None or (window.end, record.at) >= (seen.end, seen.at):
                latest[view] = LastMaterialization(
                    view, window.end, record.at, window.rows, record.flow_run_id
                )
    return latest


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat()


def _time(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text))


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time is taken to be UTC already (as Feast takes it)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
