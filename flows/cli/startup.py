"""The start-up and exit costs of an ``mlops`` process that runs flows, kept out of the user's wait.

Measured on 2 cores (a smoke ``mlops run``: 2,000 rows, one trial of one epoch, 47 s in all):

- Importing the flow stack (Prefect, MLflow, torch, Lightning, Ray, Great Expectations: ~1 GB of
  objects) takes 9.5 s, of which 2.3 s are the cyclic garbage collector walking the growing heap. Imported
  with the collector off, then frozen (``gc.freeze``: those objects live until exit, so no later collection
  walks them again), the imports take 7.1 s and the run itself about 2.5 s less.
- At exit the interpreter runs one last full collection over that heap: 6 s. Frozen first, 0.3 s.
- With no ``PREFECT_API_URL`` Prefect starts a temporary server when the first flow runs: a subprocess
  that imports the server and migrates a new home's database, about 9 s of waiting. Started in a thread
  before the imports, it comes up on the other core while this process imports.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_settled = {"exit": False, "imports": False}  # once per process (tests call the CLI in-process, repeatedly)


def freeze_heap_at_exit() -> None:
    """Skip the final full collection at exit (registered first, so it runs after every other exit hook)."""
    if not _settled["exit"]:
        atexit.register(gc.freeze)
        _settled["exit"] = True


@contextmanager
def flow_stack() -> Iterator[None]:
    """Around a command's imports of the flow stack: the collector off while they run and their objects
    frozen after (the first time in this process), and Prefect's temporary server (when one will be
    needed) started meanwhile; on leaving, the server is up or its start has failed (the flow's own start
    then retries it and reports)."""
    server = _temporary_server_in_background()
    first = not _settled["imports"]
    if first:
        gc.disable()
    try:
        yield
    finally:
        if first:
            gc.freeze()
            gc.enable()
            _settled["imports"] = True
        if server is not None:
            server.join()


def _temporary_server_in_background() -> threading.Thread | None:
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None  # a server is configured (or none may be started): nothing to wait for
    thread = threading.Thread(target=_start_temporary_server, name="prefect-temporary-server", daemon=True)
    thread.start()
    return thread


def _start_temporary_server() -> None:
    # The same instance Prefect's client starts on the first flow run (one per process): once it runs,
    # that start returns at once.
    from prefect.server.api.server import SubprocessASGIServer

    # A failure is not lost: the first flow run starts the server again and raises the error to the user.
    with contextlib.suppress(Exception):
        SubprocessASGIServer().start()
