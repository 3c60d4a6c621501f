"""Append-only prediction log: one JSON line per scored row, written by serving and read by monitoring.

Files are JSON Lines under one folder (``$MLOPS_HOME/predictions`` by convention), one file per writer process
and UTC day (``predictions-2025-01-31-<host>-<pid>.jsonl``, then ``.00001.jsonl``, ... when rotated by size),
so concurrent workers never interleave lines and readers can pick days by name. Each `append` call (one
request) hands its lines to the OS in one flush before the service answers, and never fsyncs: a killed
process loses no line of a request it answered (a line it was writing when killed is torn, and skipped when
read), while a request never waits on the disk; only the machine itself failing can lose the last lines.
Size rotation with a retention limit keeps the folder bounded (`PredictionLog`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

logger = logging.getLogger(__name__)

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
    """Writes `PredictionRecord`s to per-process, per-day JSON Lines files under `directory`, rotated by size.

    A file past ``max_file_bytes`` is closed and the next segment opened (``...-<writer>.00001.jsonl``, ...);
    at each rotation, whole files are deleted oldest first (by modification time) while the folder holds more
    than ``max_total_bytes``, never a writer's newest segment (it may be open). So the folder stays within
    ``max_total_bytes`` plus one segment per writer, and readers (`log_files`) see every file that remains.
    The folder is created on the first write, not here, so constructing a log has no side effect.
    Thread-safe: a lock serialises appends from threaded (`def`) APIs.
    """

    def __init__(
        self,
        directory: Path,
        *,
        writer_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_file_bytes: int | None = None,
        max_total_bytes: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.clock = clock  # picks the day's file; injectable so tests can cross midnight
        # Host and pid keep workers (and replicas sharing a volume) in separate files.
        self.writer_id = writer_id or f"{socket.gethostname()}-{os.getpid()}"
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self._lock = threading.Lock()
        self._handle: IO[bytes] | None = None
        self._day: str | None = None
        self._segment = 0
        self._size = 0

    def path_for(self, day: str, segment: int = 0) -> Path:
        """File of this writer for a UTC day given as YYYY-MM-DD, and its size-rotation segment."""
        suffix = f".{segment:05d}" if segment else ""
        return self.directory / f"{FILE_PREFIX}{day}-{self.writer_id}{suffix}{FILE_SUFFIX}"

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Write one line per record and flush once (one call per request)."""
        if records:
            self._write("".join(record.to_json() + "\n" for record in records).encode())

    def append_dicts(self, records: Sequence[Mapping[str, Any]]) -> None:
        """`append` for records given as dicts with exactly `PredictionRecord`'s fields, ``timestamp``
        included: the serving path, which builds no object per row. They read back as `PredictionRecord`s."""
        if records:
            self._write(
                b"".join(
                    orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE) for record in records
                )
            )

    def _write(self, payload: bytes) -> None:
        with self._lock:
            handle = self._open_for(self.clock().strftime("%Y-%m-%d"))
            handle.write(payload)
            handle.flush()  # to the OS (one write call); no fsync, so a request never waits for the disk
            self._size += len(payload)

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

    def _open_for(self, day: str) -> IO[bytes]:
        full = self.max_file_bytes is not None and self._size >= self.max_file_bytes
        if self._handle is not None and day == self._day and not full:
            return self._handle
        if self._handle is not None:
            self._handle.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        if day != self._day:  # a new day (or the first write): continue this writer's last segment of it
            self._day, self._segment = day, self._last_segment(day)
        elif full:
            self._segment += 1
        path = self.path_for(day, self._segment)
        # A segment that is full, or ends in a torn line (a writer with this id was killed mid-write),
        # is left as it is: the next one starts clean.
        while path.exists() and (
            (self.max_file_bytes is not None and path.stat().st_size >= self.max_file_bytes)
            or not _ends_with_newline(path)
        ):
            self._segment += 1
            path = self.path_for(day, self._segment)
        self._handle = path.open("ab")
        self._size = self._handle.tell()
        if self.max_total_bytes is not None:
            enforce_retention(self.directory, self.max_total_bytes)
        return self._handle

    def _last_segment(self, day: str) -> int:
        segments = [
            name.segment
            for name in map(parse_name, log_files(self.directory))
            if name is not None and name.day == day and name.writer == self.writer_id
        ]
        return max(segments, default=0)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


@dataclass(frozen=True)
class LogFileName:
    """What a prediction log file's name says: its UTC day, its writer and its size-rotation segment."""

    day: str
    writer: str
    segment: int


_NAME = re.compile(
    rf"^{re.escape(FILE_PREFIX)}(\d{{4}}-\d{{2}}-\d{{2}})-(.+?)(?:\.(\d{{5}}))?{re.escape(FILE_SUFFIX)}$"
)


def parse_name(path: Path) -> LogFileName | None:
    """The day, writer and segment of a log file's name; None for a name this module did not write."""
    match = _NAME.match(Path(path).name)
    if match is None:
        return None
    return LogFileName(match.group(1), match.group(2), int(match.group(3) or 0))


def enforce_retention(directory: Path, max_total_bytes: int) -> list[Path]:
    """Delete whole log files, oldest modified first, while ``directory`` holds more than
    ``max_total_bytes``; each writer's newest segment is kept (it may be open). Returns what was deleted."""
    files = []  # (path, its name, its stat), names this module wrote only
    for path in log_files(directory):
        name = parse_name(path)
        if name is None:
            continue
        try:
            files.append((path, name, path.stat()))
        except FileNotFoundError:  # deleted meanwhile by another writer's retention
            continue
    total = sum(stat.st_size for _, _, stat in files)
    newest: dict[str, tuple[str, int]] = {}
    for _, name, _ in files:
        newest[name.writer] = max(newest.get(name.writer, ("", -1)), (name.day, name.segment))
    deleted = []
    for path, name, stat in sorted(files, key=lambda item: item[2].st_mtime_ns):
        if total <= max_total_bytes:
            break
        if newest[name.writer] == (name.day, name.segment):
            continue
        path.unlink(missing_ok=True)
        total -= stat.st_size
        deleted.append(path)
    if deleted:
        logger.warning(
            "prediction log over its %d-byte retention: deleted %d oldest file(s) (%s ... %s)",
            max_total_bytes,
            len(deleted),
            deleted[0].name,
            deleted[-1].name,
        )
    return deleted


def log_files(directory: Path) -> list[Path]:
    """Prediction log files under `directory`: by day, writer and size-rotation segment."""
    directory = Path(directory)
    if not directory.is_dir():
        return []

    def order(path: Path) -> tuple[str, str, int]:
        name = parse_name(path)
        return (path.name, "", 0) if name is None else (name.day, name.writer, name.segment)

    return sorted(directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}"), key=order)


def read_records(paths: Iterable[Path]) -> Iterator[PredictionRecord]:
    """Records from the given files in file order; a torn last line (writer killed mid-write) is skipped, and
    so is a file deleted by retention after it was listed."""
    for path in paths:
        try:
            yield from _records_of(Path(path))
        except FileNotFoundError:
            continue


def _records_of(path: Path) -> Iterator[PredictionRecord]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # partial line from an interrupted write
            if line.strip():
                yield PredictionRecord(**json.loads(line))
