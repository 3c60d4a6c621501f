"""Monitoring I/O around the registry: each registered version's drift reference (pure code in ``monitoring/``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
from prefect import task

from models.config import FeatureConfig
from models.scorer import TabularScorer
from monitoring.config import MonitoringConfig
from monitoring.reference import DriftReference
from tasks.caching import IO_RETRIES, PER_RUN_INPUTS, REPLAYABLE
from tasks.registry import RegisteredVersion
from tasks.tracking import TrackingTarget
from tasks.training import PreparedData

REFERENCE_FOLDER = "drift_reference"
REFERENCE_TAG = "monitoring.reference"  # on the version: the artifact URI of its reference


@task(name="save-drift-reference", cache_policy=PER_RUN_INPUTS, **REPLAYABLE, **IO_RETRIES)
def save_drift_reference(
    target: TrackingTarget,
    version: RegisteredVersion,
    prepared: PreparedData,
    scorer: TabularScorer,
    features: FeatureConfig,
    monitoring: MonitoringConfig,
    seed: int,
) -> str:
    """A training-split sample and the held-out validation scores and labels, as the version's run artifact
    `drift_reference/`; the version's tag `monitoring.reference` points at it. Returns the artifact URI."""
    split = prepared.split
    reference = DriftReference.of(
        scorer.transform.canonical_inputs(split.train),
        numeric=list(features.numeric),
        categorical=list(features.categorical),
        holdout_scores=scorer.predict_proba(split.val),
        holdout_labels=prepared.y_val,
        threshold=scorer.decision.threshold if scorer.decision is not None else None,
        rows=monitoring.reference_rows,
        seed=seed,
    )
    client = target.client()
    with tempfile.TemporaryDirectory() as tmp:
        folder = reference.save(Path(tmp) / REFERENCE_FOLDER)
        client.log_artifacts(version.run_id, str(folder), artifact_path=REFERENCE_FOLDER)
    uri = f"runs:/{version.run_id}/{REFERENCE_FOLDER}"
    client.set_model_version_tag(version.name, version.version, REFERENCE_TAG, uri)
    return uri


def load_drift_reference(tracking_uri: str, uri: str) -> DriftReference:
    """The reference a version's `monitoring.reference` tag names, downloaded and loaded."""
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        return DriftReference.load(Path(local))
