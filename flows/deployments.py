"""The pipelines as Prefect deployments (``mlops deploy``): training on the config's schedule and retrained by
drift events (with a cooldown), the drift monitor on its interval, batch scoring on its schedule, and feature
materialisation on its interval."""

from __future__ import annotations

from datetime import timedelta

from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.events.schemas.automations import Posture
from prefect.schedules import Cron, Interval

from flows.config import PipelineConfig, ScheduleConfig
from flows.features import materialize_features
from flows.monitor import drift_monitor
from flows.scoring import batch_scoring
from flows.training import training_pipeline
from tasks.monitoring import DRIFT_EVENT

TAGS = ["mlops", "training"]
MONITOR_TAGS = ["mlops", "monitoring"]
BATCH_TAGS = ["mlops", "batch-scoring"]
FEATURE_TAGS = ["mlops", "features"]


def drift_trigger(config: PipelineConfig, config_path: str) -> DeploymentEventTrigger:
    """Retrain on ``mlops.drift.detected`` for this model, at most once per cooldown.

    A reactive trigger with threshold 1 fires on the first drift event of the model's resource and opens a
    bucket of ``monitoring.retrain_cooldown_minutes``; later drift events inside it are counted in that bucket
    and start nothing. The run reads the labelled source the event names (``retrain_data``).
    """
    model = config.registry.model_name
    return DeploymentEventTrigger(
        name=f"retrain-{model}-on-drift",
        expect={DRIFT_EVENT},
        match={"prefect.resource.id": f"mlops.model.{model}"},
        for_each={"prefect.resource.id"},
        posture=Posture.Reactive,
        threshold=1,
        within=timedelta(minutes=config.monitoring.retrain_cooldown_minutes),
        parameters={"config_path": config_path, "data_path": "{{ event.payload.retrain_data }}"},
    )


def training_deployment(config: PipelineConfig, config_path: str) -> RunnerDeployment:
    """Deployment ``training-pipeline/<config.name>``: cron or interval, in the schedule's time zone, and
    the drift trigger."""
    schedules, when = _schedules(config.schedule, "no schedule: runs only when triggered")
    cooldown = config.monitoring.retrain_cooldown_minutes
    return training_pipeline.to_deployment(
        name=config.name,
        schedules=schedules,
        parameters={"config_path": config_path},
        triggers=[drift_trigger(config, config_path)],
        tags=TAGS,
        description=f"Training pipeline for {config.registry.model_name} ({config_path}), {when}; "
        f"retrained on drift at most every {cooldown} min.",
    )


def monitor_deployment(config: PipelineConfig, config_path: str) -> RunnerDeployment:
    """Deployment ``drift-monitor/<config.name>``: the champion's prediction log checked every interval."""
    minutes = config.monitoring.schedule_interval_minutes
    return drift_monitor.to_deployment(
        name=config.name,
        schedules=[Interval(timedelta(minutes=minutes))],
        parameters={"config_path": config_path},
        tags=MONITOR_TAGS,
        description=f"Drift monitor of {config.registry.model_name} ({config_path}), every {minutes} min.",
    )


def _schedules(
    schedule: ScheduleConfig, unscheduled: str = "no schedule: runs only when started"
) -> tuple[list, str]:
    if schedule.cron:
        return [
            Cron(schedule.cron, timezone=schedule.timezone)
        ], f"cron {schedule.cron!r} {schedule.timezone}"
    if schedule.interval_seconds:
        return [
            Interval(schedule.interval_seconds, timezone=schedule.timezone)
        ], f"every {schedule.interval_seconds} s"
    return [], unscheduled


def batch_deployment(config: PipelineConfig, config_path: str) -> RunnerDeployment | None:
    """Deployment ``batch-scoring/<config.name>`` of ``batch.input`` on ``batch.schedule``; None without an input."""
    if config.batch.input is None:
        return None
    schedules, when = _schedules(config.batch.schedule)
    return batch_scoring.to_deployment(
        name=config.name,
        schedules=schedules,
        parameters={"config_path": config_path},
        tags=BATCH_TAGS,
        description=f"Batch scoring of {config.batch.input} with the champion of {config.registry.model_name}, {when}.",
    )


def materialize_deployment(config: PipelineConfig, config_path: str) -> RunnerDeployment | None:
    """Deployment ``materialize-features/<config.name>``: the online store brought up to date every
    ``feature_store.materialize_interval_minutes``; None without a feature store or an interval."""
    store = config.feature_store
    if store is None or store.materialize_interval_minutes is None:
        return None
    minutes = store.materialize_interval_minutes
    return materialize_features.to_deployment(
        name=config.name,
        schedules=[Interval(timedelta(minutes=minutes))],
        parameters={"config_path": config_path},
        tags=FEATURE_TAGS,
        description=f"Materialisation of {store.service}'s features into the online store ({config_path}), "
        f"every {minutes} min.",
    )
