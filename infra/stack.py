"""The local server stack: Prefect and MLflow servers as real processes of the project home.

The logic behind ``mlops up``, ``mlops status`` and ``mlops down``. Each server runs the same
command as its docker-compose service, bound to 127.0.0.1, in its own process group, with its
output in ``home.runtime/<name>.log``. ``home.runtime/stack.json`` records what was started
(pid, process group, command line, start time) so that ``down`` stops exactly those processes,
and a pid the system has since reused for something else is never mistaken for ours.
Other long-running processes (a detached deployment runner) can join the record with
``add_process`` so that ``down`` stops them too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import psutil

from infra.home import TELEMETRY_OFF, ProjectHome
from models.errors import UserInputError

PREFECT = "prefect"
MLFLOW = "mlflow"
SERVERS = (PREFECT, MLFLOW)
HOST = "127.0.0.1"
DEFAULT_PREFECT_PORT = 4200
DEFAULT_MLFLOW_PORT = 5000
# Each server is healthy in about 10 s on an idle machine; a cold start on a loaded one can take several times that.
DEFAULT_TIMEOUT = 120.0
# The CLI option that picks each server's port, named in "port busy" errors.
PORT_OPTION = {PREFECT: "--prefect-port", MLFLOW: "--mlflow-port"}
# Postgres databases of each server, as created by infra/postgres-init.sql. They cannot share
# one database: both keep their migration state in the same `alembic_version` table.
POSTGRES_DATABASE = {PREFECT: "prefect", MLFLOW: "mlflow"}

_STATE_VERSION = 1
_POLL_SECONDS = 0.3
_HEALTH_TIMEOUT_SECONDS = 2.0
_STOP_GRACE_SECONDS = 15.0
_STALE_PORT_GRACE_SECONDS = 5.0

Identity = Literal["ours", "gone", "other"]


class StackError(UserInputError):
    """The stack cannot be brought up or down as asked (busy port, crashed server, bad URL)."""


@dataclass(frozen=True)
class ServiceStatus:
    """What one service of the stack is doing now."""

    name: str
    url: str
    pid: int | None
    running: bool
    healthy: bool
    log: Path

    def describe(self) -> str:
        """One line for ``mlops status``: name, state, URL, pid and log."""
        state = "healthy" if self.healthy else "unhealthy" if self.running else "stopped"
        pid = f"pid {self.pid}" if self.running else f"pid {self.pid} exited" if self.pid else "no pid"
        url = self.url or "-"
        return f"{self.name:<10} {state:<9} {url:<24} {pid:<16} log {self.log}"


@dataclass(frozen=True)
class _Process:
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


@dataclass(frozen=True)
class _Spec:
    """How to start one server."""

    name: str
    port: int
    url: str
    health_url: str
    command: list[str]
    env: dict[str, str]
    log: Path


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def up(
    home: ProjectHome,
    *,
    prefect_port: int = DEFAULT_PREFECT_PORT,
    mlflow_port: int = DEFAULT_MLFLOW_PORT,
    database_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[ServiceStatus]:
    """Start the Prefect and MLflow servers of ``home`` and wait until both are healthy.

    Idempotent: a server already running from this home's state file is reported, not
    restarted (on the port it already has). Servers are started together and polled together,
    so the wait is that of the slower one. On any failure (busy port, a server that exits or
    stays unhealthy past ``timeout``, Ctrl-C) whatever this call started is stopped again, so
    the stack is never left half up. ``database_url`` (``postgresql://user:pass@host:port``,
    no database name) puts both servers on Postgres, each in its own database.
    """
    if prefect_port == mlflow_port:
        raise StackError(
            f"--prefect-port and --mlflow-port are both {prefect_port}: give each server its own port"
        )
    specs = _server_specs(home, prefect_port, mlflow_port, database_url)
    with _locked(home):
        records = _read_state(home)
        running = {r.name for r in records if r.name in SERVERS and _identify(r)[0] == "ours"}
        to_start = [specs[name] for name in SERVERS if name not in running]
        # Entries of servers that are not running are stale: whatever a crashed server left
        # behind in its process group (a worker holding the port) goes, then the entry is replaced.
        stale = [r for r in records if r.name in SERVERS and r.name not in running]
        _stop(stale)
        for spec in to_start:
            # The port of a server that just died can stay bound while its workers finish exiting.
            grace = _STALE_PORT_GRACE_SECONDS if spec.port in {r.port for r in stale} else 0.0
            if not _port_free(spec.port, grace):
                raise _port_busy(spec)
        kept = [r for r in records if r.name in running or r.name not in SERVERS]
        for folder in (home.prefect, home.mlflow_artifacts):
            folder.mkdir(parents=True, exist_ok=True)
        started: list[tuple[_Process, int]] = []
        try:
            for spec in to_start:
                started.append(_spawn(spec))
            # Recorded before the wait, so that `down` can stop them if this process is killed.
            _write_state(home, kept + [record for record, _ in started])
            _wait_healthy(started, specs, timeout)
        except BaseException:
            _stop([record for record, _ in started])
            _write_state(home, kept)
            raise
        by_name = {r.name: r for r in kept + [record for record, _ in started]}
    return _statuses([by_name[name] for name in SERVERS])


def status(home: ProjectHome) -> list[ServiceStatus]:
    """The services recorded for ``home``: running (checked against the live process) and
    healthy (one quick HTTP check each, made in parallel). Empty when nothing was started."""
    return _statuses(_read_state(home))


def down(home: ProjectHome) -> list[ServiceStatus]:
    """Stop every process this home's state file records, and nothing else; remove the file.

    Each process group gets SIGTERM, then SIGKILL after a grace period. Registered extra
    processes (runners) are stopped before the servers they talk to. Returns the services that
    were running and are now stopped; empty when nothing was running.
    """
    if not _state_path(home).exists():
        return []
    with _locked(home):
        records = _read_state(home)
        extras = [r for r in records if r.name not in SERVERS]
        servers = [r for r in records if r.name in SERVERS]
        stopped = _stop(extras) + _stop(servers)
        _state_path(home).unlink(missing_ok=True)
    return [_status_of(r, running=False, healthy=False) for r in stopped]


def endpoints(home: ProjectHome) -> dict[str, str]:
    """``PREFECT_API_URL`` and ``MLFLOW_TRACKING_URI`` of this home's stack when both servers
    are running, else ``{}``. No HTTP: cheap enough for every CLI call."""
    records = {r.name: r for r in _read_state(home)}
    if not all(name in records and _identify(records[name])[0] == "ours" for name in SERVERS):
        return {}
    return {
        "PREFECT_API_URL": f"{records[PREFECT].url}/api",
        "MLFLOW_TRACKING_URI": records[MLFLOW].url,
    }


def add_process(
    home: ProjectHome,
    name: str,
    pid: int,
    url: str = "",
    log: Path | None = None,
    *,
    health_url: str | None = None,
) -> ServiceStatus:
    """Record an already-started process (e.g. a detached deployment runner) so that
    ``status`` reports it and ``down`` stops it.

    Start it with ``start_new_session=True`` so that stopping it also stops its children.
    ``health_url`` defaults to ``url``; with neither, healthy means running.
    """
    if name in SERVERS:
        raise StackError(f"'{name}' is a server of the stack; choose another name for process {pid}")
    try:
        proc = psutil.Process(pid)
        command, create_time = _settled_cmdline(proc), proc.create_time()
        pgid = pid if os.getpgid(pid) == pid else None
    except (psutil.NoSuchProcess, ProcessLookupError) as exc:
        raise StackError(f"cannot register '{name}': process {pid} is not running") from exc
    record = _Process(
        name=name,
        pid=pid,
        pgid=pgid,
        port=urlsplit(url).port if url else None,
        url=url,
        health_url=health_url or url or None,
        command=command,
        create_time=create_time,
        started_at=_now(),
        log=str(log or home.runtime / f"{name}.log"),
    )
    with _locked(home):
        records = _read_state(home)
        for existing in records:
            if existing.name == name and _identify(existing)[0] == "ours":
                raise StackError(
                    f"'{name}' is already registered and running as pid {existing.pid}; "
                    "stop it with `mlops down` first"
                )
        _write_state(home, [r for r in records if r.name != name] + [record])
    return _statuses([record])[0]


def remove_process(home: ProjectHome, name: str) -> bool:
    """Forget a process registered with ``add_process`` without stopping it (e.g. it exited on
    its own). True if it was registered."""
    if name in SERVERS:
        raise StackError(f"'{name}' is a server of the stack: stop it with `mlops down`")
    if not _state_path(home).exists():
        return False
    with _locked(home):
        records = _read_state(home)
        kept = [r for r in records if r.name != name]
        if len(kept) == len(records):
            return False
        _write_state(home, kept)
    return True


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def _server_specs(
    home: ProjectHome, prefect_port: int, mlflow_port: int, database_url: str | None
) -> dict[str, _Spec]:
    """The two server commands: the same as their docker-compose services, on loopback."""
    bin_dir = Path(sys.executable).parent
    base_env = {**os.environ, **TELEMETRY_OFF}
    # A client setting for a server elsewhere means nothing to a server starting here.
    base_env.pop("PREFECT_API_URL", None)

    prefect_env = {
        **base_env,
        "PREFECT_HOME": str(home.prefect),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # The UI asks the server where its API is; without this it assumes port 4200.
        "PREFECT_SERVER_UI_API_URL": f"http://127.0.0.1:{prefect_port}/api",
    }
    mlflow_env = {
        **base_env,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    backend_store = home.tracking_uri
    if database_url is not None:
        prefect_db, backend_store = _postgres_urls(database_url)
        prefect_env["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_db

    prefect_url = f"http://{HOST}:{prefect_port}"
    mlflow_url = f"http://{HOST}:{mlflow_port}"
    specs = {
        PREFECT: _Spec(
            name=PREFECT,
            port=prefect_port,
            url=prefect_url,
            health_url=f"{prefect_url}/api/health",
            command=[
                str(bin_dir / "prefect"),
                "server",
                "start",
                "--host",
                HOST,
                "--port",
                str(prefect_port),
            ],
            env=prefect_env,
            log=home.runtime / f"{PREFECT}.log",
        ),
        MLFLOW: _Spec(
            name=MLFLOW,
            port=mlflow_port,
            url=mlflow_url,
            health_url=f"{mlflow_url}/health",
            # One worker: the default starts 15 processes and 2.4 GB for a single local user.
            command=[
                str(bin_dir / "mlflow"),
                "server",
                "--host",
                HOST,
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
                "--backend-store-uri",
                backend_store,
                "--artifacts-destination",
                str(home.mlflow_artifacts),
                "--serve-artifacts",
            ],
            env=mlflow_env,
            log=home.runtime / f"{MLFLOW}.log",
        ),
    }
    for spec in specs.values():
        if not Path(spec.command[0]).is_file():
            raise StackError(f"cannot start the {spec.name} server: {spec.command[0]} is not installed")
    return specs


def _postgres_urls(database_url: str) -> tuple[str, str]:
    """(Prefect, MLflow) database URLs on the Postgres server that ``database_url`` names."""
    parts = urlsplit(database_url)
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres") or not parts.hostname:
        raise StackError(
            f"--database-url must look like postgresql://user:password@host:5432, got '{parts.scheme}://...'"
        )
    if parts.path.strip("/"):
        raise StackError(
            f"--database-url names database '{parts.path.strip('/')}': give the server only "
            "(postgresql://user:password@host:5432); Prefect and MLflow use the databases "
            "'prefect' and 'mlflow' (created by infra/postgres-init.sql)"
        )
    missing = [module for module in ("asyncpg", "psycopg2") if find_spec(module) is None]
    if missing:
        raise StackError(
            f"--database-url needs the Postgres drivers {', '.join(missing)} "
            "(asyncpg for Prefect, psycopg2 for MLflow): pip install asyncpg psycopg2-binary"
        )
    # Prefect's server is async and needs the asyncpg driver; MLflow uses the default (psycopg2).
    prefect = urlunsplit(parts._replace(scheme="postgresql+asyncpg", path=f"/{POSTGRES_DATABASE[PREFECT]}"))
    mlflow = urlunsplit(parts._replace(scheme="postgresql", path=f"/{POSTGRES_DATABASE[MLFLOW]}"))
    return prefect, mlflow


# ---------------------------------------------------------------------------------------------
# Starting
# ---------------------------------------------------------------------------------------------


def _port_free(port: int, grace: float = 0.0) -> bool:
    """Whether a server could bind 127.0.0.1:port (trying again for ``grace`` seconds).

    SO_REUSEADDR, as the servers set it, so that connections of a stopped server in TIME_WAIT
    do not count as busy.
    """
    deadline = time.monotonic() + grace
    while True:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError:
                pass
            else:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _port_busy(spec: _Spec) -> StackError:
    return StackError(
        f"port {spec.port} on {HOST} is already in use, so the {spec.name} server cannot start: "
        f"stop whatever uses it or choose another port with {PORT_OPTION[spec.name]}"
    )


def _spawn(spec: _Spec) -> tuple[_Process, int]:
    """Start one server in its own session, output appended to its log.

    ``posix_spawn`` rather than ``subprocess.Popen``: the server outlives this call (and the
    CLI process), so there is no Popen handle to keep; the returned log offset marks where this
    start's output begins.
    """
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    with spec.log.open("a") as handle:
        handle.write(f"--- {_now()} {' '.join(spec.command)}\n")
        offset = handle.tell()
    fd = os.open(spec.log, os.O_WRONLY | os.O_APPEND)
    try:
        pid = os.posix_spawn(
            spec.command[0],
            spec.command,
            spec.env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(fd)
    try:
        proc = psutil.Process(pid)
        command, create_time = _settled_cmdline(proc, spec.command), proc.create_time()
    except psutil.NoSuchProcess:
        # Exited already (the wait reports why); record what we asked for.
        command, create_time = list(spec.command), time.time()
    record = _Process(
        name=spec.name,
        pid=pid,
        pgid=pid,
        port=spec.port,
        url=spec.url,
        health_url=spec.health_url,
        command=command,
        create_time=create_time,
        started_at=_now(),
        log=str(spec.log),
    )
    return record, offset


def _settled_cmdline(proc: psutil.Process, expected: list[str] | None = None) -> list[str]:
    """The command line of a process that was just started, once ``exec`` has finished.

    The spawner resumes before the kernel has set up the new program's arguments: read at once,
    /proc shows an empty command line most of the time. A script's interpreter comes first, so
    ``expected`` (the argv we passed) is matched against the end.
    """
    deadline = time.monotonic() + 2.0
    while True:
        command = proc.cmdline()
        settled = command[-len(expected) :] == expected if expected else bool(command)
        if settled or time.monotonic() > deadline:
            return command
        time.sleep(0.01)


def _wait_healthy(started: list[tuple[_Process, int]], specs: dict[str, _Spec], timeout: float) -> None:
    """Poll every started server each round until all answer their health check."""
    deadline = time.monotonic() + timeout
    pending = list(started)
    while pending:
        for record, offset in pending:
            code = _exit_code(record.pid)
            if code is not None:
                raise _startup_failure(record, offset, code, specs[record.name])
        healthy = _check_health([record.health_url for record, _ in pending])
        pending = [item for item, ok in zip(pending, healthy, strict=True) if not ok]
        if pending and time.monotonic() > deadline:
            raise StackError(
                "; ".join(
                    f"the {record.name} server did not become healthy at {record.health_url} within "
                    f"{timeout:g} s{_last_line(record, offset)}; see its log: {record.log}"
                    for record, offset in pending
                )
            )
        if pending:
            time.sleep(_POLL_SECONDS)


def _exit_code(pid: int) -> int | None:
    """The exit code of our child ``pid`` if it has exited (reaping it), else None."""
    try:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None if psutil.pid_exists(pid) else -1
    return os.waitstatus_to_exitcode(wait_status) if done else None


def _startup_failure(record: _Process, offset: int, code: int, spec: _Spec) -> StackError:
    # Rich wraps Prefect's messages at the terminal width: compare with whitespace collapsed.
    output = " ".join(_log_since(record, offset).split()).lower()
    if "address already in use" in output or "is already in use" in output:
        # Someone took the port between our check and the server's bind.
        return _port_busy(spec)
    return StackError(
        f"the {record.name} server exited with code {code} during start-up"
        f"{_last_line(record, offset)}; see its log: {record.log}"
    )


def _log_since(record: _Process, offset: int) -> str:
    try:
        with open(record.log, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _last_line(record: _Process, offset: int) -> str:
    """The end of this start's output on one line (wrapped messages joined), for the error."""
    tail = " ".join(_log_since(record, offset).split())[-200:]
    return f" (log ends: {tail})" if tail else ""


# ---------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------


def _identify(record: _Process) -> tuple[Identity, psutil.Process | None]:
    """Whether ``record.pid`` is still our process, is gone, or now belongs to another one."""
    try:
        proc = psutil.Process(record.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(record.pid)
            return "gone", None
        same = abs(proc.create_time() - record.create_time) < 1.0 and proc.cmdline() == record.command
    except psutil.ZombieProcess:
        _reap(record.pid)
        return "gone", None
    except psutil.NoSuchProcess:
        return "gone", None
    except psutil.AccessDenied:
        return "other", None
    return ("ours", proc) if same else ("other", None)


def _reap(pid: int) -> bool:
    """Collect the exit status of ``pid`` if it is our exited child, so it stops existing.

    True while it is our child but not reapable yet: a multithreaded process shows as a zombie
    as soon as its main thread exits, before its other threads have finished.
    """
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


def _healthy(url: str | None) -> bool:
    if url is None:
        return True
    try:
        with urllib.request.urlopen(url, timeout=_HEALTH_TIMEOUT_SECONDS) as response:
            return response.status < 400
    except (OSError, ValueError):
        return False


def _check_health(urls: Sequence[str | None]) -> list[bool]:
    """One health check per URL, all at once."""
    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        return list(pool.map(_healthy, urls))


def _statuses(records: Sequence[_Process]) -> list[ServiceStatus]:
    running = [_identify(r)[0] == "ours" for r in records]
    healthy = _check_health([r.health_url for r, alive in zip(records, running, strict=True) if alive])
    answers = iter(healthy)
    return [
        _status_of(r, running=alive, healthy=alive and next(answers))
        for r, alive in zip(records, running, strict=True)
    ]


def _status_of(record: _Process, *, running: bool, healthy: bool) -> ServiceStatus:
    return ServiceStatus(
        name=record.name,
        url=record.url,
        pid=record.pid,
        running=running,
        healthy=healthy,
        log=Path(record.log),
    )


# ---------------------------------------------------------------------------------------------
# Stopping
# ---------------------------------------------------------------------------------------------


def _targets(record: _Process) -> list[psutil.Process]:
    """The live processes that stopping ``record`` must end."""
    identity, proc = _identify(record)
    if identity == "other":
        # The pid was reused. The kernel does not hand out a pid while a process group of that
        # number still has members, so our group is empty: nothing of ours is left.
        return []
    if record.pgid is not None:
        # Leader alive, or gone with workers left behind in its group: signal the group.
        return _group_members(record.pgid)
    return [proc, *proc.children(recursive=True)] if proc is not None else []


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and _alive(proc):
                members.append(proc)
    return members


def _stop(records: Sequence[_Process]) -> list[_Process]:
    """SIGTERM every recorded process (group), wait, SIGKILL what is left. Returns the records
    that had something running."""
    targets = {r.name: _targets(r) for r in records}
    live = [r for r in records if targets[r.name]]
    if not live:
        return []
    for record in live:
        _signal(record, targets[record.name], signal.SIGTERM)
    procs = [p for r in live for p in targets[r.name]]
    left = _wait_gone(procs, _STOP_GRACE_SECONDS)
    if left:
        for record in live:
            _signal(record, [p for p in targets[record.name] if p in left], signal.SIGKILL)
        _wait_gone(left, 5.0)
    return live


def _signal(record: _Process, procs: list[psutil.Process], sig: signal.Signals) -> None:
    if record.pgid is not None:
        # The whole group at once, including any worker started after we listed the members.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pgid, sig)
        return
    for proc in procs:
        # psutil checks the start time first, so a reused pid is never signalled.
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until ``procs`` have exited (reaping our own children); returns those still alive."""
    deadline = time.monotonic() + timeout
    alive = procs
    while True:
        alive = [p for p in alive if _alive(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _alive(proc: psutil.Process) -> bool:
    """Whether ``proc`` still runs or is still exiting (reaping it once it is our dead child).

    A multithreaded process shows as a zombie once its main thread exits, while its other
    threads (and its open sockets) are still being torn down: that still counts as alive.
    """
    with contextlib.suppress(psutil.NoSuchProcess):
        if proc.is_running() and (proc.status() != psutil.STATUS_ZOMBIE or proc.num_threads() > 1):
            return True
    return _reap(proc.pid)


# ---------------------------------------------------------------------------------------------
# State file
# ---------------------------------------------------------------------------------------------


def _state_path(home: ProjectHome) -> Path:
    return home.runtime / "stack.json"


@contextlib.contextmanager
def _locked(home: ProjectHome) -> Iterator[None]:
    """Serialise changes to the state file between concurrent ``mlops`` commands."""
    home.runtime.mkdir(parents=True, exist_ok=True)
    with open(home.runtime / "stack.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_state(home: ProjectHome) -> list[_Process]:
    path = _state_path(home)
    try:
        data = json.loads(path.read_text())
        return [_Process(**entry) for entry in data["services"]]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as exc:
        raise StackError(
            f"{path} is not a state file this version can read ({exc}); stop the servers it "
            "lists by hand and delete it"
        ) from exc


def _write_state(home: ProjectHome, records: Sequence[_Process]) -> None:
    """Replace the state file atomically; readers see the old or the new file, never half.
    Private to the user: MLflow's command line may carry a database password."""
    path = _state_path(home)
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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
