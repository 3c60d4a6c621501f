"""Alerts through Prefect automations (no notifier of our own): a drift event, a stale feature view and a gate
that starts waiting each send a Slack-compatible webhook (``{"text": ...}``) naming the model, the run or view
and where to look.

`ensure_alerts` saves one webhook notification block per model and its automations on the Prefect server (two,
three with a feature store; earlier ones of the same name are replaced, so `mlops deploy` can run again); the
server's automation service sends the notifications, whether or not any runner is up.
"""

from __future__ import annotations

from uuid import UUID

from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events import EventTrigger
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import Posture

from flows.config import PipelineConfig
from flows.links import flow_run_path, prefect_ui_link
from tasks.monitoring import DRIFT_EVENT, STALE_FEATURES_EVENT

GATE_EVENTS = {"prefect.flow-run.Paused", "prefect.flow-run.Suspended"}  # a gate waits for a person
FLOW_RUN_RESOURCE = "prefect.flow-run."  # a flow run's resource id in events: this prefix, then its id
TRAINING_FLOW = "training-pipeline"


def _block_name(model: str) -> str:
    return f"mlops-alerts-{model}"


def _replace(automation: Automation) -> Automation:
    """Create `automation`, deleting any earlier one of the same name first (re-running deploy updates it)."""
    with get_client(sync_client=True) as client:
        for existing in client.read_automations_by_name(name=automation.name):
            client.delete_automation(existing.id)
    return automation.create()


def _ui_link(path: str) -> str:
    link = prefect_ui_link(path)
    assert link is not None, "automations live on a Prefect server, which serves a UI"
    return link


def ensure_alerts(config: PipelineConfig) -> list[str]:
    """Webhook block and automations for the config's model on the current Prefect server; returns the
    automations' names. Their messages link the server's UI (`flows.links`: through its login with auth on).

    Does nothing (returns []) when `monitoring.alert_webhook_url` is not set.
    """
    url = config.monitoring.alert_webhook_url
    if not url:
        return []
    deployments = _ui_link("/deployments")
    # The run's id is the event's resource id without its prefix.
    paused_run = _ui_link(flow_run_path(f"{{{{ event.resource.id[{len(FLOW_RUN_RESOURCE)}:] }}}}"))
    model = config.registry.model_name
    block = CustomWebhookNotificationBlock(
        name=_block_name(model), url=url, method="POST", json_data={"text": "{{subject}}\n{{body}}"}
    )
    block_id = block.save(_block_name(model), overwrite=True)
    drift = _model_alert(
        model,
        block_id,
        name=f"mlops-drift-alert-{model}",
        description=f"Notify {url} when the drift monitor finds drift in {model}.",
        event=DRIFT_EVENT,
        subject=f"Drift detected in {model}",
        body=(
            f"{model} v{{{{ event.payload.version }}}}: drifted columns {{{{ event.payload.drifted_columns }}}} "
            "(share {{ event.payload.drifted_share }}), prediction drift {{ event.payload.prediction_drift }}, "
            "estimated ROC AUC {{ event.payload.estimated_roc_auc }}. Report: {{ event.payload.report }}. "
            f"Retraining runs through the promotion gate: {deployments}"
        ),
    )
    gate = Automation(
        name=f"mlops-gate-alert-{model}",
        description=f"Notify {url} when a run of {config.name} waits at an approval gate.",
        trigger=EventTrigger(
            expect=GATE_EVENTS,
            match={"prefect.resource.id": f"{FLOW_RUN_RESOURCE}*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": TRAINING_FLOW},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject=f"Approval waiting: {model}",
                body=(
                    "Flow run {{ event.resource.name }} of " + TRAINING_FLOW + " is waiting at a gate for "
                    f"{model}: {paused_run}"
                ),
            )
        ],
    )
    automations = [drift, gate]
    if config.feature_store is not None:
        automations.append(_stale_features_alert(config, block_id, deployments))
    return [_replace(automation).name for automation in automations]


def _stale_features_alert(config: PipelineConfig, block_id: UUID, deployments: str) -> Automation:
    """The drift alert's sibling: the same webhook when the monitor finds a feature view older than its limit.

    It retrains nothing: a new model would still be served the same stale rows, since only a materialisation
    refreshes the online store."""
    model = config.registry.model_name
    return _model_alert(
        model,
        block_id,
        name=f"mlops-stale-features-alert-{model}",
        description=f"Notify {config.monitoring.alert_webhook_url} when a feature view {model} reads is stale.",
        event=STALE_FEATURES_EVENT,
        subject=f"Stale features in {model}",
        body=(
            "Feature view {{ event.payload.view }} of service {{ event.payload.service }} is stale: "
            '{{ event.payload.reason }} (last materialised up to {{ event.payload.last_materialized or "never" }}). '
            f"{model} scores by id from it. The materialize-features/{config.name} deployment (or "
            f"`mlops features materialize`) brings it up to date: {deployments}"
        ),
    )


def _model_alert(
    model: str, block_id: UUID, *, name: str, description: str, event: str, subject: str, body: str
) -> Automation:
    """An automation posting ``subject`` and ``body`` to the webhook block when ``event`` names the model."""
    return Automation(
        name=name,
        description=description,
        trigger=EventTrigger(
            expect={event},
            match={"prefect.resource.id": f"mlops.model.{model}"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[SendNotification(block_document_id=block_id, subject=subject, body=body)],
    )
