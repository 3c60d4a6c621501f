"""MLflow model registry: versions, aliases, lineage and decision tags, loading scorers back."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from prefect import task

from models.mlflow_model import SCORER_ARTIFACT
from models.scorer import TabularScorer
from tasks.caching import ONCE_PER_RUN, PER_RUN_INPUTS, REPLAYABLE
from tasks.tracking import TrackingTarget

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass
class LoadedModel:
    """A registered version and its scorer, loaded from the registry's own artifacts."""

    version: RegisteredVersion
    scorer: TabularScorer


def load_scorer(tracking_uri: str, model_uri: str) -> TabularScorer:
    """Download a logged model's scorer folder and load it (the transform comes with it)."""
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        return TabularScorer.load(Path(local) / "artifacts" / SCORER_ARTIFACT)


def version_by_alias(target: TrackingTarget, name: str, alias: str) -> RegisteredVersion | None:
    try:
        mv = target.client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return RegisteredVersion(mv.name, str(mv.version), mv.run_id)


@task(name="load-champion", retries=2, retry_delay_seconds=2, cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def load_champion(target: TrackingTarget, name: str) -> LoadedModel | None:
    """The current champion and its scorer, or None before the first promotion."""
    version = version_by_alias(target, name, CHAMPION)
    if version is None:
        return None
    return LoadedModel(version, load_scorer(target.tracking_uri, version.uri))


@task(name="register-challenger", retries=2, retry_delay_seconds=2, cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def register_challenger(
    target: TrackingTarget, name: str, model_uri: str, run_id: str, tags: dict[str, str]
) -> RegisteredVersion:
    """Register a new version, tag its lineage and point the ``challenger`` alias at it."""
    mlflow.set_tracking_uri(target.tracking_uri)
    mv = mlflow.register_model(model_uri, name, tags=tags)
    client = target.client()
    client.set_registered_model_alias(name, CHALLENGER, mv.version)
    return RegisteredVersion(name, str(mv.version), run_id)


@task(name="record-decision", retries=2, retry_delay_seconds=2, cache_policy=PER_RUN_INPUTS, **REPLAYABLE)
def record_decision(target: TrackingTarget, version: RegisteredVersion, tags: dict[str, str]) -> None:
    client = target.client()
    for key, value in tags.items():
        client.set_model_version_tag(version.name, version.version, key, value)


@task(name="promote-champion", retries=2, retry_delay_seconds=2)
def promote(target: TrackingTarget, version: RegisteredVersion) -> RegisteredVersion | None:
    """Move ``champion`` to ``version``; the old champion keeps ``previous-champion`` for rollback."""
    client = target.client()
    previous = version_by_alias(target, version.name, CHAMPION)
    if previous is not None and previous.version != version.version:
        client.set_registered_model_alias(version.name, PREVIOUS_CHAMPION, previous.version)
    client.set_registered_model_alias(version.name, CHAMPION, version.version)
    return previous
