"""Start-up of a Ray worker process that runs sweep trials: the training stack imported before the first trial.

A trial's worker imports torch, Lightning and this project's training modules when it unpickles its first
trial. With the cyclic garbage collector on, that import walks the growing heap again and again: measured on 2
cores, ``import models.training.sweep`` costs 6.3 s of CPU with the collector on and 3.9 s with it off. Ray
runs ``prepare`` in each worker at its start (``worker_process_setup_hook``, named by
``models.training.sweep.WORKER_SETUP_HOOK``): the imports happen with the
collector off and their objects are frozen after (they live as long as the worker), as the CLI does for its own
imports (``flows.cli.startup``).
"""

from __future__ import annotations

import gc


def prepare() -> None:
    """Import the trial's modules with the collector off, then freeze them out of later collections."""
    gc.disable()
    try:
        import models.training.sweep  # noqa: F401 - the trainable and everything it imports
    finally:
        gc.freeze()
        gc.enable()
