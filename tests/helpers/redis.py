"""A real ``redis-server`` (Debian's package) for tests: loopback, a free port, a password, its data saved in a
folder at shutdown and loaded at start (so a stop and a start keep what was written).

Skips on a machine without it, fails under ``CI=true`` (``.ci/run`` installs it). The password reaches the
server through its standard input (``redis-server -`` reads its config there), never a command line.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from helpers.processes import free_port, stop_process
from helpers.system import system_tool


def redis_server_program() -> str:
    return system_tool("redis-server", "redis-server")


class RedisServer:
    """One redis-server on 127.0.0.1; ``stop`` and ``start`` again keep its port and password."""

    def __init__(self, log: Path, folder: Path, password: str = "redis-test-pw") -> None:
        self.program, self.log, self.folder, self.password = redis_server_program(), log, folder, password
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = (
            f"bind 127.0.0.1\nport {self.port}\nrequirepass {self.password}\n"
            f"dir {self.folder}\nsave 3600 1\nappendonly no\n"
        )
        with self.log.open("a") as handle:
            self.proc = subprocess.Popen(
                [self.program, "-"],
                stdin=subprocess.PIPE,
                stdout=handle,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        assert self.proc.stdin is not None
        self.proc.stdin.write(config)
        self.proc.stdin.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                replies = b""
                while replies.count(b"\r\n") < 2:
                    chunk = connection.recv(64)
                    if not chunk:
                        break
                    replies += chunk
                return replies.endswith(b"+PONG\r\n")
        except OSError:
            return False
