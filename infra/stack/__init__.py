"""The local stack: the platform's servers (Prefect, MLflow, the Evidently UI, Redis, the Feast UI) as processes
of the project home.

- ``services``: the registry, one ``Service`` per server (port, health check, command, log);
  ``mlops up`` starts what it lists and docker-compose.yml mirrors it.
- ``supervisor``: ``up``, ``status``, ``down``, ``endpoints``, ``client_settings``, ``add_process``, ``start_detached``, ``remove_process``.
- ``secrets``: the per-home server secrets (mode 0600) that ``up`` generates and clients read.
- ``processes``: spawning (a config on stdin where a server needs one), telling our processes from reused pids,
  stopping process groups.
- ``health``: a server's health check: an HTTP path, or a signed-in Redis PING.
- ``state``: the locked JSON state file that records what was started.
- ``feast_ui``: the Feast UI's launcher, its config read as the stack's clients read it.
"""

from infra.stack.errors import StackError
from infra.stack.services import HOST, SERVICES, Service, ServiceSpec, WatchedModel, build_specs
from infra.stack.supervisor import (
    DEFAULT_TIMEOUT,
    ServiceStatus,
    add_process,
    client_settings,
    credentials,
    down,
    endpoints,
    prepare,
    remove_process,
    start_detached,
    status,
    up,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "HOST",
    "SERVICES",
    "Service",
    "ServiceSpec",
    "ServiceStatus",
    "StackError",
    "WatchedModel",
    "add_process",
    "client_settings",
    "credentials",
    "prepare",
    "start_detached",
    "build_specs",
    "down",
    "endpoints",
    "remove_process",
    "status",
    "up",
]
