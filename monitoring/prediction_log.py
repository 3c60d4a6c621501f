"""Append-only prediction log: one JSON line per scored row, written by serving and read by monitoring.

Files are JSON Lines under one folder (``$MLOPS_HOME/predictions`` by convention), one file per writer process
and UTC day (``predictions-2025-01-31-<host>-<pid>.jsonl``), so concurrent workers never interleave lines and
readers can pick days by name. Writes go through a buffered file that is flushed once per `append` call (one
request) and never fsynced: a crash can lose the last request's lines, a request never waits on the disk.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

FILE_PREFIX = "predictions-"
FILE_SUFFIX = ".jsonl"


@dataclass(frozen=True)
class PredictionRecord:
    """One scored row as monitoring and A/B analysis read it back (the contract between the two).

    Records written before ``entity_id``, ``model_name``, ``flags`` and ``feature_ages`` existed read back with
    their defaults.
    """

    request_id: str
    variant: str  # a models.governance.names.Variant value: champion, challenger or shadow
    model_version: str
    features: dict[str, Any]  # raw request values, before encoding; None for missing
    score: float
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).isoformat())  # ISO 8601, UTC
    entity_id: str | None = None  # the config's id column (data.id_column) when the request carried it
    model_name: str = ""  # the registered model's name
    flags: list[str] = field(default_factory=list)  # e.g. "out_of_range:<column>", "stale:<view>"
    # Scored by entity id: per feature view, the age in seconds of the online features read (as_of - event time).
    feature_ages: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        """One compact JSON line (no newline). Non-finite floats become null, as JSON has no NaN; anything
        not JSON-native is written as its str()."""
        # vars(), not dataclasses.asdict: asdict deep-copies every features dict. orjson: the log line is
        # the serving path's main cost per row after the forward, and orjson writes it several times faster.
        return orjson.dumps(vars(self), default=str).decode()


class PredictionLog:
    """Writes `PredictionRecord`s to a per-process, per-day JSON Lines file under `directory`.

    The folder is created on the first write, not here, so constructing a log has no side effect.
    Thread-safe: a lock serialises appends from threaded (`def`) APIs.
    """

    def __init__(
        self,
        directory: Path,
        *,
        writer_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory = Path(directory)
        self.clock = clock  # picks the day's file; injectable so tests can cross midnight
        # Host and pid keep workers (and replicas sharing a volume) in separate files.
        self.writer_id = writer_id or f"{socket.gethostname()}-{os.getpid()}"
        self._lock = threading.Lock()
        self._handle: IO[str] | None = None
        self._day: str | None = None

    def path_for(self, day: str) -> Path:
        """File of this writer for a UTC day given as YYYY-MM-DD."""
        return self.directory / f"{FILE_PREFIX}{day}-{self.writer_id}{FILE_SUFFIX}"

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Write one line per record and flush once (one call per request)."""
        if records:
            self._write("".join(record.to_json() + "\n" for record in records))

    def append_dicts(self, records: Sequence[Mapping[str, Any]]) -> None:
        """`append` for records given as dicts with exactly `PredictionRecord`'s fields, ``timestamp``
        included: the serving path, which builds no object per row. They read back as `PredictionRecord`s."""
        if records:
            self._write(
                b"".join(
                    orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE) for record in records
                ).decode()
            )

    def _write(self, payload: str) -> None:
        with self._lock:
            handle = self._open_for(self.clock().strftime("%Y-%m-%d"))
            handle.write(payload)
            handle.flush()  # to the OS; no fsync, so a request never waits for the disk

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
                self._day = None

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open_for(self, day: str) -> IO[str]:
        if self._handle is None or day != self._day:
            if self._handle is not None:
                self._handle.close()
            self.directory.mkdir(parents=True, exist_ok=True)
            self._handle = self.path_for(day).open("a", encoding="utf-8")
            self._day = day
        return self._handle


def log_files(directory: Path) -> list[Path]:
    """Prediction log files under `directory`, oldest day first (names sort by day)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}"))


def read_records(paths: Iterable[Path]) -> Iterator[PredictionRecord]:
    """Records from the given files in file order; a torn last line (writer killed mid-write) is skipped."""
    for path in paths:
        with Path(path).open(encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break  # partial line from an interrupted write
                if line.strip():
                    yield PredictionRecord(**json.loads(line))
