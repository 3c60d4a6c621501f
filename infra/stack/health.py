"""Whether a server of the stack answers its health check: an HTTP path, or a Redis PING.

A health URL's scheme says which: ``http://host:port/path`` answers with a status below 400 once the
server is ready; ``redis://host:port`` answers ``PING`` with ``PONG`` once it is signed in. Redis answers
nothing but an error to a client without its password (and, while it loads its data, ``-LOADING``), so a
PONG means a server that is up, has its password and serves.
"""

from __future__ import annotations

import socket
import urllib.request
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 2.0


def answers(url: str | None, password: str | None = None, timeout: float = TIMEOUT_SECONDS) -> bool:
    """Whether the server at health URL ``url`` is healthy; no URL: nothing to check, so yes.
    ``password`` signs in where the protocol needs it (Redis)."""
    if url is None:
        return True
    parts = urlsplit(url)
    if parts.scheme == "redis":
        if parts.hostname is None or parts.port is None:
            return False
        return redis_pong(parts.hostname, parts.port, password, timeout)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status < 400
    except (OSError, ValueError):
        return False


def redis_command(*words: str) -> bytes:
    """One command in Redis's protocol (RESP): an array of bulk strings."""
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def redis_pong(host: str, port: int, password: str | None, timeout: float = TIMEOUT_SECONDS) -> bool:
    """Whether Redis at ``host:port`` answers ``AUTH password`` then ``PING`` with ``PONG``."""
    commands = [redis_command("AUTH", password)] if password else []
    commands.append(redis_command("PING"))
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(b"".join(commands))
            # Each reply here is one line: +OK, +PONG, or -ERR... (an error ends nothing: read them all).
            replies = b""
            while replies.count(b"\r\n") < len(commands):
                chunk = connection.recv(256)
                if not chunk:
                    return False
                replies += chunk
    except OSError:
        return False
    return replies.split(b"\r\n")[len(commands) - 1] == b"+PONG"
