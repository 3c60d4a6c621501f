"""A throwaway PostgreSQL server with the stack's databases, as a team's database stands in for in tests.

Debian's ``postgresql``: ``initdb`` into a temp folder, ``pg_ctl start`` on a free loopback port (both refuse
root, so as root they run as the ``postgres`` user), then what docker-compose.yml does: ``POSTGRES_DB=prefect``
and ``infra/postgres-init.sql``. Skips on a machine without it, fails under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from helpers.configs import REPO
from helpers.processes import free_port
from helpers.system import system_tool

PASSWORD = "stack-test-pw"


def _postgres_tool(name: str) -> str:
    return system_tool(name, "postgresql", *sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}")))


def _as_postgres_user(argv: list[str]) -> list[str]:
    """``initdb`` and ``pg_ctl`` refuse to run as root: run them as Debian's ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server on a free loopback port with the stack's databases; yields its server URL."""
    initdb, pg_ctl = _postgres_tool("initdb"), _postgres_tool("pg_ctl")
    psql = _postgres_tool("psql")
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    data, pwfile = root / "data", root / "pw"
    pwfile.write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
    port = free_port()
    init = subprocess.run(
        _as_postgres_user(
            [initdb, "-D", str(data), "-U", "mlops", "--pwfile", str(pwfile), "-A", "scram-sha-256"]
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root}"
    started = subprocess.run(
        _as_postgres_user(
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "postgres.log"), "-w", "start"]
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        # What docker-compose.yml does: POSTGRES_DB=prefect, then infra/postgres-init.sql.
        # The script through -f, as the image's entrypoint runs it: each statement on its own (CREATE DATABASE
        # cannot run inside the one transaction that -c makes of several).
        for source in (["-c", "CREATE DATABASE prefect;"], ["-f", str(REPO / "infra" / "postgres-init.sql")]):
            created = subprocess.run(
                [
                    psql,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "mlops",
                    "-d",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    *source,
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert created.returncode == 0, created.stderr
        yield f"postgresql://mlops:{PASSWORD}@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres_user([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)
