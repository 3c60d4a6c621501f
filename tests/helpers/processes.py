"""Free loopback ports, servers started as process groups, and waiting for a condition with a deadline."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_stack_ports(**fixed: int) -> dict[str, int]:
    """A distinct free loopback port for every server of the registry (``up``'s keywords), but ``fixed``."""
    ports = dict(fixed)
    from infra import stack

    for service in stack.SERVICES.values():
        while service.port_parameter not in ports:
            port = free_port()
            if port not in ports.values():
                ports[service.port_parameter] = port
    return ports


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.5,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``condition`` every ``interval`` s until it returns a truthy value, and return that value.

    ``condition`` is called at once, then after each sleep, a last time once ``timeout`` s have passed;
    after that, ``TimeoutError("<what> not within <timeout> s")``, followed by what ``describe`` returns
    (a log's tail, the last answer seen). An exception from ``condition`` (a failed assertion, say, when
    what it watches has died) ends the wait at once and propagates.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    message = f"{what} not within {timeout:g} s"
    if describe is not None:
        message += f"\n{describe()}"
    raise TimeoutError(message)


def command_of(proc: subprocess.Popen) -> str:
    """The command ``proc`` runs, as typed: the program's name, then its arguments."""
    args = [str(arg) for arg in proc.args] if isinstance(proc.args, list | tuple) else [str(proc.args)]
    return shlex.join([Path(args[0]).name, *args[1:]])


def wait_http(
    url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    """Wait until ``url`` answers: a status below 500, though urllib raises for every status from 400 up, so in
    effect a success. Fails at once if ``proc`` (the server) exits, with the tail of its ``log``."""

    def answers() -> bool:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status < 500
        except OSError:
            return False

    wait_until(answers, timeout, f"an answer from {url}")


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a process group started with start_new_session=True: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
