"""How a node of the platform's Ray cluster is started: one command for the head, one for a worker.

docker-compose.yml's ``ray-head`` and ``ray-worker`` run exactly these (plus ``--block``, which keeps
the container's main process alive), and the two-node sweep test (tests/integration/test_sweep.py)
starts its cluster with them, so that test covers the compose path (tests/unit/test_compose.py holds
the two to each other). Runs reach the cluster through ``RAY_ADDRESS=<head>:<port>``.
"""

from __future__ import annotations

DEFAULT_PORT = 6379
# No dashboard (nothing here reads it; it is one more open port) and no usage reports.
HEAD_FLAGS = ("--include-dashboard", "false", "--disable-usage-stats")


def head_command(port: int = DEFAULT_PORT) -> list[str]:
    """``ray start`` for the head node, its GCS on ``port``."""
    return ["ray", "start", "--head", "--port", str(port), *HEAD_FLAGS]


def worker_command(address: str) -> list[str]:
    """``ray start`` for a worker node joining the head at ``address`` (``host:port``)."""
    return ["ray", "start", "--address", address]
