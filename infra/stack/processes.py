"""The processes of the local stack: start them, tell ours from a reused pid, stop them.

Each server runs in its own session (process group), so that stopping it takes the workers
it starts along with it. A recorded process is ours only while its pid still shows the
command line and start time we recorded: the system may hand a freed pid to another program,
which is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import psutil

from infra.stack.errors import StackError
from infra.stack.services import ServiceSpec
from infra.stack.state import ProcessRecord, now

_STOP_GRACE_SECONDS = 15.0
_KILL_WAIT_SECONDS = 5.0
# How long a just-spawned process may take to show its command line.
_EXEC_WAIT_SECONDS = 2.0

Identity = Literal["ours", "gone", "other"]


@dataclass(frozen=True)
class Started:
    """A server just spawned, and where this start's output begins in its log."""

    record: ProcessRecord
    log_offset: int


@dataclass(frozen=True)
class Identified:
    """Whether a recorded pid is still our process, is gone, or now belongs to another one."""

    identity: Identity
    process: psutil.Process | None  # set when it is ours


# ---------------------------------------------------------------------------------------------
# Starting and joining
# ---------------------------------------------------------------------------------------------


def spawn(spec: ServiceSpec, env: Mapping[str, str]) -> Started:
    """Start one server in its own session, output appended to its log.

    ``posix_spawn`` rather than ``subprocess.Popen``: the server outlives this call (and the
    CLI process), so there is no Popen handle to keep; the returned log offset marks where this
    start's output begins.
    """
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    with spec.log.open("a") as handle:
        handle.write(f"--- {now()} {' '.join(spec.command)}\n")
        offset = handle.tell()
    fd = os.open(spec.log, os.O_WRONLY | os.O_APPEND)
    stdin = _stdin(spec.stdin(env)) if spec.stdin is not None else None
    try:
        pid = os.posix_spawn(
            spec.command[0],
            spec.command,
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, stdin, 0)
                if stdin is not None
                else (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(fd)
        if stdin is not None:
            os.close(stdin)
    try:
        proc = psutil.Process(pid)
        command, create_time = _settled_cmdline(proc, spec.command), proc.create_time()
    except psutil.NoSuchProcess:
        # Exited already (the wait reports why); record what we asked for.
        command, create_time = list(spec.command), time.time()
    record = ProcessRecord(
        name=spec.name,
        pid=pid,
        pgid=pid,
        port=spec.port,
        url=spec.url,
        health_url=spec.health_url,
        command=command,
        create_time=create_time,
        started_at=now(),
        log=str(spec.log),
        boot_start=boot_start(pid),
    )
    return Started(record, offset)


def _stdin(content: str) -> int:
    """The read end of a pipe that holds ``content`` and then ends: a server's config on its standard input,
    never in a file. A server's config is far below the pipe's buffer (64 KiB), so the write cannot block."""
    read, write = os.pipe()
    try:
        data = content.encode()
        if len(data) > 60_000:
            raise ValueError(f"a config of {len(data)} bytes does not fit a pipe's buffer")
        os.write(write, data)
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    return read


def adopt(name: str, pid: int, *, url: str, health_url: str | None, log: Path) -> ProcessRecord:
    """The record of ``pid``, a process started elsewhere (e.g. a detached deployment runner)."""
    try:
        proc = psutil.Process(pid)
        command, create_time = _settled_cmdline(proc), proc.create_time()
        pgid = pid if os.getpgid(pid) == pid else None
    except (psutil.NoSuchProcess, ProcessLookupError) as exc:
        raise StackError(f"cannot register '{name}': process {pid} is not running") from exc
    return ProcessRecord(
        name=name,
        pid=pid,
        pgid=pgid,
        port=urlsplit(url).port if url else None,
        url=url,
        health_url=health_url,
        command=command,
        create_time=create_time,
        started_at=now(),
        log=str(log),
        boot_start=boot_start(pid),
    )


def _settled_cmdline(proc: psutil.Process, expected: list[str] | None = None) -> list[str]:
    """The command line of a process that was just started, once ``exec`` has finished.

    The spawner resumes before the kernel has set up the new program's arguments: read at once,
    /proc shows an empty command line most of the time. A script's interpreter comes first, so
    ``expected`` (the argv we passed) is matched against the end.
    """
    deadline = time.monotonic() + _EXEC_WAIT_SECONDS
    while True:
        command = proc.cmdline()
        settled = command[-len(expected) :] == expected if expected else bool(command)
        if settled or time.monotonic() > deadline:
            return command
        time.sleep(0.01)


def exit_code(pid: int) -> int | None:
    """The exit code of our child ``pid`` if it has exited (reaping it), else None."""
    try:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None if psutil.pid_exists(pid) else -1
    return os.waitstatus_to_exitcode(wait_status) if done else None


# ---------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------


def boot_start(pid: int) -> str | None:
    """``<boot id>:<start in clock ticks since boot>`` of ``pid`` (Linux's /proc), None where there is no
    such file or the process is gone. Unlike ``create_time`` (the boot time, which /proc/stat gives in whole
    seconds, plus those ticks), it does not move with the wall clock: a clock slewed by a tenth of a second
    can move the boot time, so every process's ``create_time``, by a whole second."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces and parentheses): state is field 3,
    # starttime field 22 (proc(5)).
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"


def identify(record: ProcessRecord) -> Identified:
    """Whether ``record.pid`` is still our process, is gone, or now belongs to another one: the same
    command line, and the same start (since boot where the record has it, else by the wall clock)."""
    try:
        proc = psutil.Process(record.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(record.pid)
            return Identified("gone", None)
        started = boot_start(record.pid) if record.boot_start is not None else None
        if started is not None:
            same_start = started == record.boot_start
        else:
            same_start = abs(proc.create_time() - record.create_time) < 1.0
        same = same_start and proc.cmdline() == record.command
    except psutil.ZombieProcess:
        _reap(record.pid)
        return Identified("gone", None)
    except psutil.NoSuchProcess:
        return Identified("gone", None)
    except psutil.AccessDenied:
        return Identified("other", None)
    return Identified("ours", proc) if same else Identified("other", None)


def is_ours(record: ProcessRecord) -> bool:
    """Whether the recorded process is still running as the one we recorded."""
    return identify(record).identity == "ours"


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


# ---------------------------------------------------------------------------------------------
# Stopping
# ---------------------------------------------------------------------------------------------


def stop(records: Sequence[ProcessRecord]) -> list[ProcessRecord]:
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
        _wait_gone(left, _KILL_WAIT_SECONDS)
    return live


def _targets(record: ProcessRecord) -> list[psutil.Process]:
    """The live processes that stopping ``record`` must end."""
    found = identify(record)
    if found.identity == "other":
        # The pid was reused. The kernel does not hand out a pid while a process group of that
        # number still has members, so our group is empty: nothing of ours is left.
        return []
    if record.pgid is not None:
        # Leader alive, or gone with workers left behind in its group: signal the group. A server's workers
        # in sessions of their own (BentoML's process manager starts each with setsid) are not in it: while
        # the leader lives they are found as its descendants and signalled one by one.
        members = _group_members(record.pgid)
        leader = found.process
        descendants = leader.children(recursive=True) if leader is not None and _alive(leader) else []
        return members + [proc for proc in descendants if proc not in members]
    proc = found.process
    return [proc, *proc.children(recursive=True)] if proc is not None else []


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and _alive(proc):
                members.append(proc)
    return members


def _signal(record: ProcessRecord, procs: list[psutil.Process], sig: signal.Signals) -> None:
    if record.pgid is not None:
        # The whole group at once, including any worker started after we listed the members; then what
        # runs outside it (workers in their own sessions).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pgid, sig)
        procs = [proc for proc in procs if _pgid(proc) != record.pgid]
    for proc in procs:
        # psutil checks the start time first, so a reused pid is never signalled.
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except ProcessLookupError:
        return None


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
