"""MLflow model registry: versions, aliases, lineage and decision tags, loading scorers back."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from prefect import task
from prefect.artifacts import create_markdown_artifact

from models.artifact.scorer import TabularScorer
from models.data.io import read_table
from models.errors import UserInputError
from models.evaluation.evaluate import ChampionModel
from models.governance.datasets import SPLIT_STRATEGY_TAG
from models.governance.history import (
    AB_START,
    AB_STOP,
    PROMOTION,
    ROLLBACK,
    AliasMove,
    history,
    now,
    served,
    with_service_section,
)
from models.governance.names import Alias, tag_value
from models.governance.rollback import Rollback, RollbackRefused, check_rollback
from serving.registry import download_scorer_dir, record_integrity
from tasks.caching import IO_RETRIES, ONCE_PER_RUN, PER_RUN_INPUTS, REPLAYABLE
from tasks.tracking import DATASET_CONTEXTS, DATASETS_FOLDER, TrackingTarget

_MODEL_REF = re.compile(r"([^@/]+)(?:@([\w-]+)|/(\d+))")


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def load_scorer(tracking_uri: str, model_uri: str) -> TabularScorer:
    """Download a logged model's scorer folder and load it (the transform comes with it)."""
    with tempfile.TemporaryDirectory() as tmp:
        return TabularScorer.load(download_scorer_dir(tracking_uri, model_uri, Path(tmp)))


@dataclass(frozen=True)
class ReferencedModel:
    """A registered version named by the user, resolved to its number (an alias moves; the number does
    not), with its scorer."""

    name: str
    version: str
    scorer: TabularScorer


def load_by_reference(tracking_uri: str, reference: str) -> ReferencedModel:
    """The version and scorer of ``NAME@ALIAS`` (e.g. ``crm-leads@champion``) or ``NAME/VERSION``; a clear
    error when the reference is malformed or names nothing in the registry."""
    match = _MODEL_REF.fullmatch(reference)
    if not match:
        raise UserInputError(
            f"--model {reference!r}: expected NAME@ALIAS (e.g. crm-leads@champion) or NAME/VERSION"
        )
    name, alias, number = match.groups()
    try:
        if alias:  # resolved once, so the version loaded is the version logged
            number = str(mlflow.MlflowClient(tracking_uri).get_model_version_by_alias(name, alias).version)
        return ReferencedModel(name, number, load_scorer(tracking_uri, f"models:/{name}/{number}"))
    except MlflowException as exc:
        raise UserInputError(
            f"--model {reference}: not found in the registry at {tracking_uri} ({exc.message})"
        ) from None


@dataclass(frozen=True)
class LoggedSplit:
    """The train, validation and test rows a registered version was trained on, read back from its run."""

    reference: str  # NAME/VERSION, the number even when the user named an alias
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    strategy: str  # how the original split was made (random or time)

    def rows(self) -> pd.DataFrame:
        """Every row, in the order train, validation, test: what the data validation checks."""
        return pd.concat([self.train, self.validation, self.test], ignore_index=True)


def _unless_user_error(task, task_run, state) -> bool:
    """Retry what a server blip may cause, not a reference that names nothing."""
    return not isinstance(state.result(raise_on_failure=False), UserInputError)


@task(
    name="load-logged-datasets",
    cache_policy=PER_RUN_INPUTS,
    retry_condition_fn=_unless_user_error,
    **REPLAYABLE,
    **IO_RETRIES,
)
def logged_split(tracking_uri: str, reference: str) -> LoggedSplit:
    """The datasets the version ``NAME/VERSION`` (or ``NAME@ALIAS``) logged in its run's ``datasets/``.

    A clear error (nothing downloaded, nothing trained) when the reference is malformed, names no version,
    or names one trained before datasets were logged.
    """
    match = _MODEL_REF.fullmatch(reference)
    if not match:
        raise UserInputError(
            f"--retrain-version {reference!r}: expected NAME/VERSION (e.g. crm-leads/3) or NAME@ALIAS"
        )
    name, alias, number = match.groups()
    client = mlflow.MlflowClient(tracking_uri)
    try:
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, number)
        )
    except MlflowException as exc:
        if exc.get_http_status_code() >= 500:  # the server failed, not the reference: retried
            raise
        raise UserInputError(
            f"--retrain-version {reference}: not found in the registry at {tracking_uri} ({exc.message})"
        ) from None
    found = {f"{part}.parquet" for part in DATASET_CONTEXTS}
    if mv.run_id:
        found -= {Path(a.path).name for a in client.list_artifacts(mv.run_id, DATASETS_FOLDER)}
    if not mv.run_id or found:
        raise UserInputError(
            f"--retrain-version {reference}: {name} v{mv.version} has no logged datasets (missing "
            f"{DATASETS_FOLDER}/{', '.join(sorted(found))} in its run): it was trained before datasets were "
            "logged; train on its data with `mlops run --config CONFIG --data FILE` instead"
        )
    with tempfile.TemporaryDirectory() as tmp:
        folder = mlflow.artifacts.download_artifacts(
            run_id=mv.run_id, artifact_path=DATASETS_FOLDER, dst_path=tmp, tracking_uri=tracking_uri
        )
        parts = {part: read_table(Path(folder) / f"{part}.parquet") for part in DATASET_CONTEXTS}
    return LoggedSplit(
        reference=f"{name}/{mv.version}",
        train=parts["train"],
        validation=parts["validation"],
        test=parts["test"],
        strategy=mv.tags.get(SPLIT_STRATEGY_TAG, "random"),
    )


def version_by_alias(target: TrackingTarget, name: str, alias: Alias) -> RegisteredVersion | None:
    try:
        mv = target.client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return RegisteredVersion(mv.name, str(mv.version), mv.run_id)


@task(name="load-champion", cache_policy=ONCE_PER_RUN, **REPLAYABLE, **IO_RETRIES)
def load_champion(target: TrackingTarget, name: str) -> ChampionModel | None:
    """The current champion and its scorer, or None before the first promotion."""
    version = version_by_alias(target, name, Alias.CHAMPION)
    if version is None:
        return None
    return ChampionModel(version.version, load_scorer(target.tracking_uri, version.uri))


@task(name="register-challenger", cache_policy=ONCE_PER_RUN, **REPLAYABLE, **IO_RETRIES)
def register_challenger(
    target: TrackingTarget, name: str, model_uri: str, run_id: str, tags: dict[str, str]
) -> RegisteredVersion:
    """Register a new version, tag its lineage and point the ``challenger`` alias at it."""
    mlflow.set_tracking_uri(target.tracking_uri)
    mv = mlflow.register_model(model_uri, name, tags={k: tag_value(v) for k, v in tags.items()})
    target.client().set_registered_model_alias(name, Alias.CHALLENGER, mv.version)
    return RegisteredVersion(name, str(mv.version), run_id)


class RegistryUnavailableError(RuntimeError):
    """The registry failed while the decision on a version was being recorded or the champion moved."""


@task(name="record-decision", cache_policy=PER_RUN_INPUTS, **REPLAYABLE, **IO_RETRIES)
def record_decision(target: TrackingTarget, version: RegisteredVersion, tags: dict[str, str]) -> None:
    client = target.client()
    for key, value in tags.items():
        client.set_model_version_tag(version.name, version.version, key, tag_value(value))


def record_move(target: TrackingTarget, name: str, move: AliasMove) -> None:
    """Append ``move`` to the model's production history: a registered-model tag of its own, never rewritten.
    A champion move also brings the "In production" section of both versions' model cards up to date."""
    key, value = move.tag()
    client = target.client()
    client.set_registered_model_tag(name, key, value)
    if move.alias != Alias.CHAMPION.value:
        return
    moves = read_history(target, name)
    for version in {v for v in (move.from_version, move.to_version) if v is not None}:
        card = client.get_model_version(name, version).description or ""
        client.update_model_version(
            name, version, description=with_service_section(card, served(moves, version))
        )


def read_history(target: TrackingTarget, name: str) -> list[AliasMove]:
    """Every move of ``champion`` and ``candidate`` of ``name``, oldest first (earlier ones rebuilt from tags)."""
    client = target.client()
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        raise UserInputError(f"no registered model named {name} at {target.tracking_uri}") from None
    versions = {str(v.version): v.tags for v in client.search_model_versions(f"name = '{name}'")}
    return history(model.tags, versions)


@task(name="promote-champion", **IO_RETRIES)
def promote(
    target: TrackingTarget, version: RegisteredVersion, *, by: str = "", reason: str = ""
) -> RegisteredVersion | None:
    """Move ``champion`` to ``version``; the old champion keeps ``previous-champion`` for rollback. The move
    is appended to the production history (not when ``version`` already is the champion: a replayed run)."""
    client = target.client()
    previous = version_by_alias(target, version.name, Alias.CHAMPION)
    if previous is not None and previous.version != version.version:
        client.set_registered_model_alias(version.name, Alias.PREVIOUS_CHAMPION, previous.version)
    client.set_registered_model_alias(version.name, Alias.CHAMPION, version.version)
    if previous is None or previous.version != version.version:
        move = AliasMove(
            now(),
            Alias.CHAMPION.value,
            PROMOTION,
            previous.version if previous else None,
            version.version,
            by,
            reason,
            version.run_id or "",
        )
        record_move(target, version.name, move)
    return previous


def decide(
    target: TrackingTarget, version: RegisteredVersion, tags: dict[str, str], *, approved: bool
) -> None:
    """Record the promotion decision on ``version``, then move ``champion`` to it if approved.

    Raises RegistryUnavailableError, which says what did not happen and what to do, when MLflow fails
    on the way (after its client's and the tasks' bounded retries).
    """
    try:
        record_decision(target, version, tags)
        if approved:
            by = (
                tags.get("approval.promotion.approver") or f"policy ({tags.get('promotion.decided_by', '?')})"
            )
            promote(target, version, by=by, reason=tags.get("promotion.reason", ""))
    except MlflowException as exc:
        raise RegistryUnavailableError(
            f"MLflow at {target.tracking_uri} failed while the promotion decision on {version.name} "
            f"v{version.version} was recorded ({'approved' if approved else 'rejected'}), so the champion "
            f"did not move to v{version.version}. Run the pipeline again once MLflow is back (`mlops status`): "
            f"it registers a new version. MLflow said: {str(exc)[:300]}"
        ) from exc


@task(name="publish-model-card", cache_policy=PER_RUN_INPUTS, **REPLAYABLE, **IO_RETRIES)
def publish_model_card(target: TrackingTarget, version: RegisteredVersion, card: str) -> None:
    """The card as the version's registry description, as the run's `model_card.md` and as a Prefect artifact."""
    client = target.client()
    client.update_model_version(version.name, version.version, description=card)
    if version.run_id:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model_card.md"
            path.write_text(card)
            client.log_artifact(version.run_id, str(path))
    key = re.sub(r"[^a-z0-9-]+", "-", f"model-card-{version.name}-v{version.version}".lower())
    create_markdown_artifact(
        key=key, markdown=card, description=f"Model card of {version.name} v{version.version}"
    )


@task(name="record-serving-integrity", cache_policy=PER_RUN_INPUTS, **REPLAYABLE, **IO_RETRIES)
def record_serving_integrity(
    target: TrackingTarget, version: RegisteredVersion, scorer: TabularScorer, rows: pd.DataFrame
) -> None:
    """What a serving worker checks before it swaps this version in: the digest of the registry's copy of
    the scorer files and a smoke sample of ``rows`` (held-out rows) with their scores."""
    assert version.run_id is not None, "a registered version of the pipeline always has its run"
    record_integrity(
        target.client(), target.tracking_uri, version.name, version.version, version.run_id, scorer, rows
    )


@task(name="roll-back-champion", **IO_RETRIES)
def roll_back(target: TrackingTarget, name: str, to: str | None, reason: str, by: str, at: str) -> Rollback:
    """Move ``champion`` back to ``to`` (default: the ``previous-champion``) and record it on both versions.

    The version it replaces becomes ``previous-champion``, so a rollback can itself be undone. Refused
    (`RollbackRefused`, nothing moved) unless ``to`` once passed its promotion gate.
    """
    client = target.client()
    champion = version_by_alias(target, name, Alias.CHAMPION)
    if to is None:
        previous = version_by_alias(target, name, Alias.PREVIOUS_CHAMPION)
        if previous is None:
            raise RollbackRefused(
                f"{name} has no {Alias.PREVIOUS_CHAMPION} to roll back to: name one with --to"
            )
        to = previous.version
    try:
        tags = client.get_model_version(name, to).tags
    except MlflowException:
        raise RollbackRefused(f"{name} has no version {to}") from None
    check_rollback(name, champion.version if champion else None, to, tags, reason)
    assert champion is not None
    record = Rollback(model=name, from_version=champion.version, to_version=to, by=by, reason=reason, at=at)
    client.set_registered_model_alias(name, Alias.CHAMPION, to)
    client.set_registered_model_alias(name, Alias.PREVIOUS_CHAMPION, champion.version)
    record_move(target, name, AliasMove(at, Alias.CHAMPION.value, ROLLBACK, champion.version, to, by, reason))
    for version, version_tags in ((to, record.restored_tags()), (champion.version, record.demoted_tags())):
        for key, value in version_tags.items():
            client.set_model_version_tag(name, version, key, tag_value(value))
    return record


def start_ab(target: TrackingTarget, name: str, version: str, *, by: str, reason: str, at: str) -> None:
    """Point ``candidate`` at ``version`` (served beside the champion in A/B or shadow mode), recorded on the
    version as a gate decision (``approval.ab.*``). Refused for the champion itself or an unknown version."""
    if not reason.strip():
        raise RollbackRefused("--reason is required: say why this version goes live (it is recorded)")
    client = target.client()
    try:
        client.get_model_version(name, version)
    except MlflowException:
        raise RollbackRefused(f"{name} has no version {version}") from None
    champion = version_by_alias(target, name, Alias.CHAMPION)
    if champion is not None and champion.version == version:
        raise RollbackRefused(f"{name} v{version} is the champion: an A/B test needs another version")
    tags = {
        "approval.ab.outcome": "approved",
        "approval.ab.decided_by": "person",
        "approval.ab.approver": by,
        "approval.ab.reason": reason,
        "approval.ab.decided_at": at,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, tag_value(value))
    previous = version_by_alias(target, name, Alias.CANDIDATE)
    client.set_registered_model_alias(name, Alias.CANDIDATE, version)
    was = previous.version if previous else None
    record_move(target, name, AliasMove(at, Alias.CANDIDATE.value, AB_START, was, version, by, reason))


def stop_ab(target: TrackingTarget, name: str, *, by: str, reason: str, at: str) -> str | None:
    """Remove the ``candidate`` alias (services stop serving it within their poll interval), recorded on the
    version; returns the version it named, None if there was none."""
    candidate = version_by_alias(target, name, Alias.CANDIDATE)
    if candidate is None:
        return None
    client = target.client()
    for key, value in {
        "approval.ab.stopped_by": by,
        "approval.ab.stopped_reason": reason,
        "approval.ab.stopped_at": at,
    }.items():
        client.set_model_version_tag(name, candidate.version, key, tag_value(value))
    client.delete_registered_model_alias(name, Alias.CANDIDATE)
    record_move(
        target, name, AliasMove(at, Alias.CANDIDATE.value, AB_STOP, candidate.version, None, by, reason)
    )
    return candidate.version
