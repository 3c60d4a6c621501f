"""The state file of the local stack: what was started, so that ``down`` stops exactly that.

``home.runtime/stack.json`` records each process (pid, process group, command line, start
time, log). Changes are serialised between concurrent ``mlops`` commands by a lock file and
written atomically; the file is private to the user, since a command line may carry a
database password.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from infra.home import ProjectHome
from infra.stack.errors import StackError

_STATE_VERSION = 1


@dataclass(frozen=True)
class ProcessRecord:
    """One process recorded in the state file."""

    name: str
    pid: int
    # Set when the process leads its own process group: stopping it signals the whole group,
    # which takes the worker processes a server starts along with it.
    pgid: int | None
    port: int | None
    url: str
    health_url: str | None
    # The live command line and start time as the OS reports them: together they tell our
    # process apart from a later one that was given the same pid.
    command: list[str]
    create_time: float
    started_at: str
    log: str
    # On Linux, the boot's id and the process's start in clock ticks since boot: its start time
    # unmoved by the wall clock (`create_time` moves with it). None elsewhere, and in older files.
    boot_start: str | None = None


def state_path(home: ProjectHome) -> Path:
    return home.runtime / "stack.json"


@contextlib.contextmanager
def locked(home: ProjectHome) -> Iterator[None]:
    """Serialise changes to the state file between concurrent ``mlops`` commands."""
    home.runtime.mkdir(parents=True, exist_ok=True)
    with open(home.runtime / "stack.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_state(home: ProjectHome) -> list[ProcessRecord]:
    """The recorded processes, in the order they were recorded; empty without a state file."""
    path = state_path(home)
    try:
        data = json.loads(path.read_text())
        return [ProcessRecord(**entry) for entry in data["services"]]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as exc:
        raise StackError(
            f"{path} is not a state file this version can read ({exc}); stop the servers it "
            "lists by hand and delete it"
        ) from exc


def write_state(home: ProjectHome, records: Sequence[ProcessRecord]) -> None:
    """Replace the state file atomically; readers see the old or the new file, never half.
    Private to the user: MLflow's command line may carry a database password."""
    path = state_path(home)
    if not records:
        path.unlink(missing_ok=True)
        return
    text = json.dumps({"version": _STATE_VERSION, "services": [asdict(r) for r in records]}, indent=2)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def now() -> str:
    """The current time as the state file and the logs write it."""
    return datetime.now(UTC).isoformat(timespec="seconds")
