"""The ``ab-start`` and ``ab-stop`` flows: a candidate version beside the champion, decided by a person and
recorded like a gate decision (``approval.ab.*`` tags on the version, and a Prefect event).

Wiring only: the registry moves are ``tasks.registry.start_ab`` / ``stop_ab``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow
from prefect.events import emit_event

from infra.home import ProjectHome
from tasks.registry import start_ab, stop_ab
from tasks.tracking import TrackingTarget

AB_STARTED_EVENT = "mlops.model.ab_started"
AB_STOPPED_EVENT = "mlops.model.ab_stopped"


def _target(model: str) -> TrackingTarget:
    home = ProjectHome.configured()
    return TrackingTarget.for_store(home.active_tracking_uri(), model, home.mlflow_artifacts)


def _emit(event: str, model: str, payload: dict) -> None:
    emit_event(
        event=event,
        resource={"prefect.resource.id": f"mlops.model.{model}", "prefect.resource.name": model},
        payload=payload,
    )


@flow(name="ab-start")
def ab_start(model: str, version: str, reason: str, by: str) -> str:
    """Point ``candidate`` at ``version``; returns it."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    start_ab(_target(model), model, version, by=by, reason=reason, at=at)
    _emit(AB_STARTED_EVENT, model, {"version": version, "by": by, "reason": reason, "at": at})
    return version


@flow(name="ab-stop")
def ab_stop(model: str, reason: str, by: str) -> str | None:
    """Remove ``candidate``; returns the version it named (None if there was none)."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    stopped = stop_ab(_target(model), model, by=by, reason=reason, at=at)
    if stopped is not None:
        _emit(AB_STOPPED_EVENT, model, {"version": stopped, "by": by, "reason": reason, "at": at})
    return stopped
