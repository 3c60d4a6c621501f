"""The local server stack: the registry's servers as real processes of the project home.

The logic behind ``mlops up``, ``mlops status`` and ``mlops down``. ``up`` starts every server
of the registry (``services.py``), each in its own process group with its output in
``home.runtime/<name>.log``; the state file (``state.py``) records what was started so that
``down`` stops exactly those processes, and a pid the system has since reused for something
else is never mistaken for ours (``processes.py``). Other long-running processes (a detached
deployment runner) can join the record with ``add_process`` so that ``down`` stops them too.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from infra.home import ProjectHome
from infra.stack import health
from infra.stack.errors import StackError
from infra.stack.processes import Started, adopt, exit_code, is_ours, spawn, stop
from infra.stack.secrets import (
    database_secret,
    ensure_secret,
    read_secret,
    remove_secret,
    secret_path,
    write_secret,
)
from infra.stack.services import (
    HOST,
    SERVICES,
    ServiceSpec,
    WatchedModel,
    always_started,
    build_specs,
    choose_ports,
    client_value,
)
from infra.stack.state import ProcessRecord, locked, read_state, state_path, write_state

# Each server is healthy in about 10 s on an idle machine; a cold start on a loaded one can take several times that.
DEFAULT_TIMEOUT = 120.0

_POLL_SECONDS = 0.3
# The port of a server that just died can stay bound while its workers finish exiting.
_STALE_PORT_GRACE_SECONDS = 5.0


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
        return f"{self.name:<12} {state:<9} {url:<24} {pid:<16} log {self.log}"


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def up(
    home: ProjectHome,
    *,
    database_url: str | None = None,
    artifacts: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    model: WatchedModel | None = None,
    **ports: int,
) -> list[ServiceStatus]:
    """Start every server of the registry for ``home`` and wait until all are healthy; with ``model``, also
    the Bento serving its champion and the Prometheus and Alertmanager watching it.

    ``<name>_port=`` picks a server's port (``prefect_port=4300``); any other comes from the
    registry. Idempotent: a server already running from this home's state file is reported,
    not restarted (on the port it already has). Servers are started together and polled
    together, so the wait is that of the slowest. On any failure (busy port, a server that
    exits or stays unhealthy past ``timeout``, Ctrl-C) whatever this call started is stopped
    again, so the stack is never left half up. ``database_url``
    (``postgresql://user:pass@host:port``, no database name) puts the servers on Postgres, each
    in its own database; ``artifacts`` (``s3://bucket/prefix`` or a folder) is where MLflow keeps
    artifacts, served through it.
    """
    specs = build_specs(home, choose_ports(ports), database_url, artifacts, model)
    _check_installed(list(specs.values()))
    with locked(home):
        records = read_state(home)
        running = {r.name for r in records if r.name in specs and is_ours(r)}
        to_start = [spec for name, spec in specs.items() if name not in running]
        # Entries of servers that are not running are stale: whatever a crashed server left
        # behind in its process group (a worker holding the port) goes, then the entry is replaced.
        stale = [r for r in records if r.name in specs and r.name not in running]
        stop(stale)
        stale_ports = {r.port for r in stale}
        for spec in to_start:
            grace = _STALE_PORT_GRACE_SECONDS if spec.port in stale_ports else 0.0
            if not _port_free(spec.port, grace):
                raise _port_busy(spec)
        kept = [r for r in records if r.name in running or r.name not in specs]
        started: list[Started] = []
        try:
            for spec in to_start:
                started.append(spawn(spec, prepare(home, spec, os.environ)))
            # Recorded before the wait, so that `down` can stop them if this process is killed.
            write_state(home, kept + [s.record for s in started])
            _wait_healthy(home, started, specs, timeout)
        except BaseException:
            stop([s.record for s in started])
            write_state(home, kept)
            raise
        by_name = {r.name: r for r in kept + [s.record for s in started]}
    return _statuses(home, [by_name[name] for name in specs])


def status(home: ProjectHome) -> list[ServiceStatus]:
    """The services recorded for ``home``: running (checked against the live process) and
    healthy (one quick health check each, made in parallel). Empty when nothing was started."""
    return _statuses(home, read_state(home))


def down(home: ProjectHome) -> list[ServiceStatus]:
    """Stop every process this home's state file records, and nothing else; remove the file.

    Each process group gets SIGTERM, then SIGKILL after a grace period. Registered extra
    processes (runners) are stopped before the servers they talk to. Returns the services that
    were running and are now stopped; empty when nothing was running.
    """
    if not state_path(home).exists():
        return []
    with locked(home):
        records = read_state(home)
        extras = [r for r in records if r.name not in SERVICES]
        servers = [r for r in records if r.name in SERVICES]
        stopped = stop(extras) + stop(servers)
        state_path(home).unlink(missing_ok=True)
    return [_status_of(r, running=False, healthy=False) for r in stopped]


def endpoints(home: ProjectHome) -> dict[str, str]:
    """What clients set to use this home's stack (``PREFECT_API_URL``, ``MLFLOW_TRACKING_URI``,
    ``MLOPS_FEAST_REDIS``, and the credentials, ``PREFECT_API_AUTH_STRING``..., with ``--database-url`` the
    registry's ``MLOPS_FEAST_REGISTRY``) when ``up`` started every server it always starts and ``down`` has
    not stopped them, else ``{}``. No network: cheap enough for every CLI call.

    A server that crashed since is still named: its clients then fail loudly (within MLflow's and Prefect's
    bounded retries) instead of writing to the home's SQLite stores behind the stack's back, and the
    servers still up stay usable (an approver can answer a gate while MLflow is down).
    """
    records = {r.name: r for r in read_state(home)}
    if not all(name in records for name in always_started()):
        return {}
    urls = {
        variable: client_value(template, records[name].url)
        for name, service in SERVICES.items()
        if name in records
        for variable, template in service.client_env.items()
    }
    signed_in = {
        variable: value
        for name, service in SERVICES.items()
        if name in records and service.client_variables
        for variable, value in credentials(home, name).items()
    }
    return {**urls, **signed_in}


def prepare(home: ProjectHome, spec: ServiceSpec, inherited: Mapping[str, str]) -> dict[str, str]:
    """Everything ``up`` does before it starts ``spec``'s process: its folders, its config files (mode 0600),
    its secrets (generated the first time), its database's URL for its clients (or none, without
    ``--database-url``); returns the environment to start it with."""
    for folder in spec.folders:
        folder.mkdir(parents=True, exist_ok=True)
    for path, content in spec.files.items():
        _write_private(path, content)
    env = spec.process_env(inherited)
    for secret in spec.secrets:
        env.update(secret.values(ensure_secret(home, secret.file, secret.user), secret.server_env))
    service = SERVICES.get(spec.name)
    if spec.database_env is not None and service is not None and service.postgres is not None:
        # Written as the server starts, so that it names the database the running server uses.
        name = database_secret(service.postgres.name)
        if spec.database is not None:
            write_secret(home, name, spec.database)
        else:
            remove_secret(home, name)
    return env


def feature_store_settings(home: ProjectHome) -> dict[str, str]:
    """The variables a process started by hand (``bentoml serve``) sets to read the running stack's feature
    stores, as shell text: an address as it is, a secret as ``"$(cat <its file>)"`` so that a command printed
    for the user shows no password. Empty when the stack is not up."""
    ours = endpoints(home)
    settings: dict[str, str] = {}
    for name in ("redis", "feast-ui"):
        service = SERVICES[name]
        files = {
            variable: secret_path(home, secret.file)
            for secret in service.secrets
            for variable, part in secret.client_env.items()
            if part == "secret"
        }
        if service.database_env is not None and service.postgres is not None:
            files[service.database_env] = secret_path(home, database_secret(service.postgres.name))
        for variable in service.client_variables:
            if variable in ours:
                secret = files.get(variable)
                settings[variable] = f'"$(cat {shlex.quote(str(secret))})"' if secret else ours[variable]
    return settings


def credentials(home: ProjectHome, name: str) -> dict[str, str]:
    """What a client sets to sign in to server ``name`` of ``home`` (``MLFLOW_TRACKING_USERNAME``...), from
    the secrets ``up`` (or ``prepare``) generated, and its database's URL where ``up`` started it on one."""
    service = SERVICES[name]
    signed_in = {
        variable: value
        for secret in service.secrets
        for variable, value in secret.values(read_secret(home, secret.file), secret.client_env).items()
    }
    if service.database_env is not None and service.postgres is not None:
        database = secret_path(home, database_secret(service.postgres.name))
        if database.is_file():
            signed_in[service.database_env] = database.read_text()
    return signed_in


def client_settings(home: ProjectHome, environ: Mapping[str, str]) -> dict[str, str]:
    """What a CLI call adds to ``environ`` to use this home's running stack: each server's ``endpoints``
    where ``environ`` does not point that client elsewhere. A credential goes only with its own server's
    URL, so that a ``PREFECT_API_URL`` set to another server never receives this home's secret."""
    ours = endpoints(home)
    if not ours:
        return {}
    settings: dict[str, str] = {}
    for service in SERVICES.values():
        if all(environ.get(v, ours[v]) == ours[v] for v in service.client_env):
            settings.update({v: ours[v] for v in service.client_variables if v in ours and v not in environ})
    return settings


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
    if name in SERVICES:
        raise StackError(f"'{name}' is a server of the stack; choose another name for process {pid}")
    record = adopt(
        name, pid, url=url, health_url=health_url or url or None, log=log or home.runtime / f"{name}.log"
    )
    with locked(home):
        records = read_state(home)
        for existing in records:
            if existing.name == name and is_ours(existing):
                raise StackError(
                    f"'{name}' is already registered and running as pid {existing.pid}; "
                    "stop it with `mlops down` first"
                )
        write_state(home, [r for r in records if r.name != name] + [record])
    return _statuses(home, [record])[0]


def start_detached(home: ProjectHome, name: str, command: Sequence[str]) -> ServiceStatus:
    """Start ``command`` in the background in its own session, output to ``run/<name>.log``, and
    record it (``add_process``) so that ``status`` reports it and ``down`` stops it with its children."""
    home.runtime.mkdir(parents=True, exist_ok=True)
    log = home.runtime / f"{name}.log"
    with log.open("a") as handle:
        proc = subprocess.Popen(
            list(command),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ.copy(),
        )
    return add_process(home, name, proc.pid, log=log)


def remove_process(home: ProjectHome, name: str) -> bool:
    """Forget a process registered with ``add_process`` without stopping it (e.g. it exited on
    its own). True if it was registered."""
    if name in SERVICES:
        raise StackError(f"'{name}' is a server of the stack: stop it with `mlops down`")
    if not state_path(home).exists():
        return False
    with locked(home):
        records = read_state(home)
        kept = [r for r in records if r.name != name]
        if len(kept) == len(records):
            return False
        write_state(home, kept)
    return True


# ---------------------------------------------------------------------------------------------
# Starting
# ---------------------------------------------------------------------------------------------


def _check_installed(specs: Sequence[ServiceSpec]) -> None:
    """Fail before anything starts when a server's program or its Postgres driver is missing."""
    for spec in specs:
        if not Path(spec.command[0]).is_file():
            hint = f" ({spec.install})" if spec.install else ""
            raise StackError(f"cannot start the {spec.name} server: {spec.command[0]} is not installed{hint}")
    missing = {
        spec.name: spec.postgres
        for spec in specs
        if spec.postgres is not None and find_spec(spec.postgres.driver) is None
    }
    s3 = any(arg.startswith("s3://") for spec in specs for arg in spec.command)
    if s3 and find_spec("boto3") is None:
        raise StackError("--artifacts s3://... needs boto3 for MLflow's S3 artifact store: pip install boto3")
    if missing:
        raise StackError(
            f"--database-url needs the Postgres drivers {', '.join(db.driver for db in missing.values())} "
            f"({', '.join(f'{db.driver} for {name}' for name, db in missing.items())}): "
            f"pip install {' '.join(db.package for db in missing.values())}"
        )


def _write_private(path: Path, content: str) -> None:
    """Write a server's config file readable by the user only (it may name a database's password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(path, 0o600)


def _port_free(port: int, grace: float = 0.0) -> bool:
    """Whether a server could bind HOST:port (trying again for ``grace`` seconds).

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


def _port_busy(spec: ServiceSpec) -> StackError:
    return StackError(
        f"port {spec.port} on {HOST} is already in use, so the {spec.name} server cannot start: "
        f"stop whatever uses it or choose another port with {spec.port_option}"
    )


def _wait_healthy(
    home: ProjectHome, started: Sequence[Started], specs: Mapping[str, ServiceSpec], timeout: float
) -> None:
    """Poll every started server each round until all answer their health check."""
    deadline = time.monotonic() + timeout
    pending = list(started)
    while pending:
        for item in pending:
            code = exit_code(item.record.pid)
            if code is not None:
                raise _startup_failure(item, code, specs[item.record.name])
        healthy = _check_health(home, [item.record for item in pending])
        pending = [item for item, ok in zip(pending, healthy, strict=True) if not ok]
        if pending and time.monotonic() > deadline:
            raise StackError(
                "; ".join(
                    f"the {item.record.name} server did not become healthy at {item.record.health_url} "
                    f"within {timeout:g} s{_last_line(item)}; see its log: {item.record.log}"
                    for item in pending
                )
            )
        if pending:
            time.sleep(_POLL_SECONDS)


def _startup_failure(item: Started, code: int, spec: ServiceSpec) -> StackError:
    # Rich wraps Prefect's messages at the terminal width: compare with whitespace collapsed.
    output = " ".join(_log_since(item).split()).lower()
    if "address already in use" in output or "is already in use" in output:
        # Someone took the port between our check and the server's bind.
        return _port_busy(spec)
    return StackError(
        f"the {item.record.name} server exited with code {code} during start-up"
        f"{_last_line(item)}; see its log: {item.record.log}"
    )


def _log_since(item: Started) -> str:
    try:
        with open(item.record.log, "rb") as handle:
            handle.seek(item.log_offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _last_line(item: Started) -> str:
    """The end of this start's output on one line (wrapped messages joined), for the error."""
    tail = " ".join(_log_since(item).split())[-200:]
    return f" (log ends: {tail})" if tail else ""


# ---------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------


def _health_password(home: ProjectHome, name: str) -> str | None:
    """The password the health check of server ``name`` signs in with: its ``health_secret``, if any."""
    service = SERVICES.get(name)
    if service is None or service.health_secret is None:
        return None
    path = secret_path(home, service.health_secret)
    return path.read_text().strip() if path.is_file() else None


def _check_health(home: ProjectHome, records: Sequence[ProcessRecord]) -> list[bool]:
    """One health check per recorded process, all at once."""
    if not records:
        return []
    passwords = [_health_password(home, r.name) for r in records]
    with ThreadPoolExecutor(max_workers=len(records)) as pool:
        return list(pool.map(health.answers, [r.health_url for r in records], passwords))


def _statuses(home: ProjectHome, records: Sequence[ProcessRecord]) -> list[ServiceStatus]:
    running = [is_ours(r) for r in records]
    healthy = _check_health(home, [r for r, alive in zip(records, running, strict=True) if alive])
    answers = iter(healthy)
    return [
        _status_of(r, running=alive, healthy=alive and next(answers))
        for r, alive in zip(records, running, strict=True)
    ]


def _status_of(record: ProcessRecord, *, running: bool, healthy: bool) -> ServiceStatus:
    return ServiceStatus(
        name=record.name,
        url=record.url,
        pid=record.pid,
        running=running,
        healthy=healthy,
        log=Path(record.log),
    )
