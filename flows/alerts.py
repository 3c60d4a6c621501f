"""Alerts through Prefect automations (no notifier of our own): a drift event and a gate that starts waiting
each send a Slack-compatible webhook (``{"text": ...}``) naming the model, the run and where to look.

`ensure_alerts` saves one webhook notification block per model and two automations on the Prefect server
(replacing earlier ones of the same name, so `mlops deploy` can run again); the server's automation
service sends the notifications, whether or not any runner is up.
"""

from __future__ import annotations

from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events import EventTrigger
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import Posture

from flows.config import PipelineConfig
from tasks.monitoring import DRIFT_EVENT

GATE_EVENTS = {"prefect.flow-run.Paused", "prefect.flow-run.Suspended"}  # a gate waits for a person
TRAINING_FLOW = "training-pipeline"


def _block_name(model: str) -> str:
    return f"mlops-alerts-{model}"


def _replace(automation: Automation) -> Automation:
    """Create `automation`, deleting any earlier one of the same name first (re-running deploy updates it)."""
    with get_client(sync_client=True) as client:
        for existing in client.read_automations_by_name(name=automation.name):
            client.delete_automation(existing.id)
    return automation.create()


def ensure_alerts(config: PipelineConfig, ui_url: str) -> list[str]:
    """Webhook block and automations for the config's model; returns the automations' names.

    Does nothing (returns []) when `monitoring.alert_webhook_url` is not set.
    """
    url = config.monitoring.alert_webhook_url
    if not url:
        return []
    model = config.registry.model_name
    block = CustomWebhookNotificationBlock(
        name=_block_name(model), url=url, method="POST", json_data={"text": "{{subject}}\n{{body}}"}
    )
    block_id = block.save(_block_name(model), overwrite=True)
    drift = Automation(
        name=f"mlops-drift-alert-{model}",
        description=f"Notify {url} when the drift monitor finds drift in {model}.",
        trigger=EventTrigger(
            expect={DRIFT_EVENT},
            match={"prefect.resource.id": f"mlops.model.{model}"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject=f"Drift detected in {model}",
                body=(
                    f"{model} v{{{{ event.payload.version }}}}: drifted columns {{{{ event.payload.drifted_columns }}}} "
                    "(share {{ event.payload.drifted_share }}), prediction drift {{ event.payload.prediction_drift }}, "
                    "estimated ROC AUC {{ event.payload.estimated_roc_auc }}. Report: {{ event.payload.report }}. "
                    f"Retraining runs through the promotion gate: {ui_url}/deployments"
                ),
            )
        ],
    )
    gate = Automation(
        name=f"mlops-gate-alert-{model}",
        description=f"Notify {url} when a run of {config.name} waits at an approval gate.",
        trigger=EventTrigger(
            expect=GATE_EVENTS,
            match={"prefect.resource.id": "prefect.flow-run.*"},
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
                    f"{model}: {ui_url}/runs/flow-run/{{{{ event.resource.id[16:] }}}}"
                ),
            )
        ],
    )
    return [_replace(drift).name, _replace(gate).name]
