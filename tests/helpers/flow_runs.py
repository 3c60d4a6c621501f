"""Prefect flow runs the tests wait for: a run paused at its gate, found on the server."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING
from uuid import UUID

from helpers.processes import command_of, wait_until

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun


def find_paused_run(
    *,
    timeout: float,
    what: str = "a paused flow run",
    flow_name: str | None = None,
    parameters: Mapping[str, object] | None = None,
    created_after: float | None = None,
    exclude: Collection[UUID] = (),
    limit: int = 50,
    process: subprocess.Popen | None = None,
    describe: Callable[[], str] | None = None,
    interval: float = 1.0,
) -> FlowRun:
    """The first flow run, in the server's order among the ``limit`` it lists, that is paused and matches
    every filter given: its flow's name, ``parameters`` it was started with, created at or after the
    ``created_after`` timestamp, its id not in ``exclude``.

    Asks the server of the current Prefect settings every ``interval`` s, through one client, and gives up
    after ``timeout`` s (``wait_until``: ``TimeoutError`` naming ``what``, then what ``describe`` returns).
    With ``process`` (the process that runs the flow, say ``mlops run``), its exit ends the wait at once:
    ``RuntimeError`` with its exit code and ``describe``'s text.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    flows = None if flow_name is None else FlowFilter(name=FlowFilterName(any_=[flow_name]))
    # Paused runs only, asked of the server: a session's server holds hundreds of runs, and the first
    # ``limit`` of all of them may not include the one that just paused.
    paused_only = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
    )
    wanted = dict(parameters or {})

    def matches(run: FlowRun) -> bool:
        if run.state is None or not run.state.is_paused() or run.id in exclude:
            return False
        if created_after is not None and not (run.created and run.created.timestamp() >= created_after):
            return False
        return all(run.parameters.get(key) == value for key, value in wanted.items())

    with get_client(sync_client=True) as client:

        def paused() -> FlowRun | None:
            if process is not None and process.poll() is not None:
                details = f":\n{describe()}" if describe is not None else ""
                raise RuntimeError(
                    f"`{command_of(process)}` exited with {process.returncode} before {what} appeared{details}"
                )
            runs = client.read_flow_runs(flow_filter=flows, flow_run_filter=paused_only, limit=limit)
            return next((run for run in runs if matches(run)), None)

        return wait_until(paused, timeout, what, interval=interval, describe=describe)
