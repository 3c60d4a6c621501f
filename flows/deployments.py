"""The training pipeline as a Prefect deployment on the config's schedule (``mlops deploy``)."""

from __future__ import annotations

from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Interval

from flows.config import PipelineConfig
from flows.training import training_pipeline

TAGS = ["mlops", "training"]


def training_deployment(config: PipelineConfig, config_path: str) -> RunnerDeployment:
    """Deployment ``training-pipeline/<config.name>``: cron or interval, in the schedule's time zone."""
    schedule = config.schedule
    if schedule.cron:
        schedules = [Cron(schedule.cron, timezone=schedule.timezone)]
        when = f"cron {schedule.cron!r} {schedule.timezone}"
    elif schedule.interval_seconds:
        schedules = [Interval(schedule.interval_seconds, timezone=schedule.timezone)]
        when = f"every {schedule.interval_seconds} s"
    else:
        schedules, when = [], "no schedule: runs only when triggered"
    return training_pipeline.to_deployment(
        name=config.name,
        schedules=schedules,
        parameters={"config_path": config_path},
        tags=TAGS,
        description=f"Training pipeline for {config.registry.model_name} ({config_path}), {when}.",
    )
