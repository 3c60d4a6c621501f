"""The ``rollback`` flow: move a model's champion back, record who, when and why, emit the event.

Wiring only: the rules are ``models.governance.rollback``, the registry moves ``tasks.registry.roll_back``. A running
service that follows the registry serves the restored version within its poll interval.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow
from prefect.events import emit_event

from infra.home import ProjectHome
from models.governance.rollback import ROLLBACK_EVENT, Rollback
from tasks.registry import roll_back
from tasks.tracking import TrackingTarget


@flow(name="rollback")
def rollback(model: str, reason: str, by: str, to: str | None = None) -> Rollback:
    """Champion of ``model`` back to ``to`` (default its previous champion)."""
    home = ProjectHome.configured()
    target = TrackingTarget.for_store(home.active_tracking_uri(), model, home.mlflow_artifacts)
    record = roll_back(target, model, to, reason, by, datetime.now(UTC).isoformat(timespec="seconds"))
    emit_event(
        event=ROLLBACK_EVENT,
        resource={"prefect.resource.id": f"mlops.model.{model}", "prefect.resource.name": model},
        payload=record.to_dict(),
    )
    return record
