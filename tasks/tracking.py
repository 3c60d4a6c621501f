"""MLflow tracking from the pipeline: one parent run, one nested run per sweep trial, the split's
datasets as the run's inputs.

Everything goes through an explicit ``MlflowClient(tracking_uri)``; per-epoch metrics are sent
in batches. Calls to the tracking store are I/O and retry; a server may blip.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.data
import pandas as pd
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from prefect import task

from models.artifact.pyfunc import SCORER_ARTIFACT, ScorerPyfunc, pip_requirements
from models.artifact.scorer import TabularScorer
from models.data.io import data_fingerprint, read_table, write_table
from models.data.split import DataSplit
from models.governance.datasets import DatasetIdentity
from models.governance.names import tag_value
from tasks.caching import IO_RETRIES, ONCE_PER_RUN, PER_RUN_INPUTS, REPLAYABLE

if TYPE_CHECKING:  # models.training.sweep imports Ray: seconds at start-up of every command that only tracks
    from models.training.sweep import TrialSummary

MAX_BATCH = 900  # MLflow accepts up to 1000 metrics per log_batch call
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value

# The split's parts, each saved as DATASETS_FOLDER/<part>.parquet of the parent run and logged as an input
# of its MLflow context: a retrain reads the same files back.
DATASETS_FOLDER = "datasets"
DATASET_CONTEXTS = {"train": "training", "validation": "validation", "test": "test"}


@dataclass(frozen=True)
class TrackingTarget:
    """Where runs go: the tracking URI, the experiment and (for a local store) the artifact root."""

    tracking_uri: str
    experiment: str
    artifact_root: Path | None = None

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri)

    @classmethod
    def for_store(cls, tracking_uri: str, experiment: str, local_artifacts: Path) -> TrackingTarget:
        """A local store (SQLite, files) keeps artifacts in ``local_artifacts``; a server decides itself."""
        local = tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri
        return cls(tracking_uri, experiment, local_artifacts if local else None)


@dataclass(frozen=True)
class TrackingRun:
    """The pipeline's parent run: where metrics, artifacts and the model go."""

    target: TrackingTarget
    run_id: str
    experiment_id: str

    @property
    def link(self) -> str:
        """Markdown pointing an approver at the run: a UI link on a server, the store otherwise."""
        uri = self.target.tracking_uri
        if uri.startswith("http"):
            return f"[MLflow run {self.run_id}]({uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id})"
        return f"MLflow run `{self.run_id}` in `{uri}`"


def _experiment_id(target: TrackingTarget) -> str:
    client = target.client()
    found = client.get_experiment_by_name(target.experiment)
    if found is not None:
        return found.experiment_id
    location = (target.artifact_root / target.experiment).as_uri() if target.artifact_root else None
    return client.create_experiment(target.experiment, artifact_location=location)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, list) else str(value)


def _log_batch(client: MlflowClient, run_id: str, metrics: list[Metric] = (), params=(), tags=()) -> None:
    metrics, params, tags = list(metrics), list(params), list(tags)
    for start in range(0, max(len(metrics), 1), MAX_BATCH):
        client.log_batch(
            run_id,
            metrics=metrics[start : start + MAX_BATCH],
            params=params if start == 0 else [],
            tags=tags if start == 0 else [],
        )


@task(name="start-tracking-run", cache_policy=PER_RUN_INPUTS, **REPLAYABLE, **IO_RETRIES)
def start_parent_run(
    target: TrackingTarget, run_name: str, params: dict[str, Any], tags: dict[str, str]
) -> TrackingRun:
    """Create the pipeline's parent run with the flattened config as params."""
    client = target.client()
    experiment_id = _experiment_id(target)
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    flat: dict[str, str] = {}
    _flatten("", params, flat)
    params = [Param(k, v[:MAX_PARAM_LENGTH]) for k, v in sorted(flat.items())]
    _log_batch(client, run.info.run_id, params=params)
    return TrackingRun(target, run.info.run_id, experiment_id)


@contextmanager
def parent_run(
    target: TrackingTarget, run_name: str, params: dict[str, Any], tags: dict[str, str]
) -> Iterator[TrackingRun]:
    """The pipeline's parent run, ended FINISHED when the block completes and FAILED when it raises.

    Only ``Exception`` fails the run: a suspended flow leaves through Prefect's pause signal (a
    ``BaseException``) and the run stays open until the flow resumes and finishes it.
    """
    run = start_parent_run(target, run_name, params, tags)
    try:
        yield run
    except Exception:
        try:
            end_run(target, run.run_id, status="FAILED")
        except Exception as cleanup:  # noqa: BLE001 - the tracking server may be what failed: say why the run did
            from prefect.logging import get_run_logger

            get_run_logger().warning(
                "could not mark MLflow run %s FAILED (%s); it stays RUNNING", run.run_id, str(cleanup)[:200]
            )
        raise
    end_run(target, run.run_id)


@task(name="log-trials", cache_policy=ONCE_PER_RUN, **REPLAYABLE, **IO_RETRIES)
def log_trials(target: TrackingTarget, parent_run_id: str, trials: list[TrialSummary]) -> list[str]:
    """One nested run per trial with its params and per-epoch metrics; each ends terminated.

    Logged from the driver after the sweep: runs opened inside trial actors stay RUNNING when ASHA
    kills the actor.
    """
    client = target.client()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    run_ids = []
    for trial in trials:
        run = client.create_run(
            experiment_id,
            run_name=f"trial-{trial.trial_id}",
            tags={
                "mlflow.parentRunId": parent_run_id,
                "trial_id": trial.trial_id,
                "trial_status": trial.status,
            },
        )
        now = int(time.time() * 1000)
        metrics = [
            Metric(
                key.replace("val_", "val/").replace("train_", "train/"),
                float(value),
                now,
                int(row.get("epoch", i)),
            )
            for i, row in enumerate(trial.history)
            for key, value in row.items()
            if key not in ("epoch",) and isinstance(value, int | float) and value == value
        ]
        params = [
            Param(k, json.dumps(v) if isinstance(v, list) else str(v))
            for k, v in sorted(trial.params.items())
        ]
        tags = [RunTag("node_id", trial.node_id or ""), RunTag("error", tag_value(trial.error or ""))]
        _log_batch(client, run.info.run_id, metrics=metrics, params=params, tags=tags)
        client.set_terminated(run.info.run_id, status="FINISHED" if trial.error is None else "FAILED")
        run_ids.append(run.info.run_id)
    return run_ids


@task(name="log-metrics", cache_policy=PER_RUN_INPUTS, **REPLAYABLE, **IO_RETRIES)
def log_metrics(target: TrackingTarget, run_id: str, metrics: dict[str, float]) -> None:
    """Final (step 0) metrics of a run; non-finite values are not stored (MLflow rejects NaN on some stores)."""
    metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
    now = int(time.time() * 1000)
    _log_batch(
        target.client(), run_id, metrics=[Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())]
    )


@task(name="log-artifacts", cache_policy=PER_RUN_INPUTS, **REPLAYABLE, **IO_RETRIES)
def log_artifacts(
    target: TrackingTarget, run_id: str, files: dict[str, str | bytes | Path], folder: str = ""
) -> None:
    """Upload files (Path) or in-memory contents (str/bytes) under ``folder``."""
    client = target.client()
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in files.items():
            if isinstance(content, Path):
                client.log_artifact(run_id, str(content), artifact_path=folder or None)
                continue
            path = Path(tmp) / name
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
            client.log_artifact(run_id, str(path), artifact_path=folder or None)


@task(name="log-model", cache_policy=ONCE_PER_RUN, **REPLAYABLE, **IO_RETRIES)
def log_model(target: TrackingTarget, run_id: str, scorer: TabularScorer, example: pd.DataFrame) -> str:
    """Log the scorer as a pyfunc with signature, a multi-row input example and explicit requirements."""
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(target.tracking_uri)
    canonical = scorer.transform.canonical_inputs(example)
    signature = infer_signature(canonical, scorer.predict_proba(canonical))
    with tempfile.TemporaryDirectory() as tmp:
        scorer.save(Path(tmp) / SCORER_ARTIFACT)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=ScorerPyfunc(),
                artifacts={SCORER_ARTIFACT: str(Path(tmp) / SCORER_ARTIFACT)},
                signature=signature,
                input_example=canonical,
                pip_requirements=pip_requirements(),
            )
    return info.model_uri


def dataset_source(artifact_uri: str, tracking_uri: str) -> str:
    """Where a logged dataset file can be fetched, as a source MLflow resolves: the artifact URI itself
    (``file:``, ``s3:``, ...), or for a server that proxies artifacts (``mlflow-artifacts:``) its HTTP URL."""
    if artifact_uri.startswith("mlflow-artifacts:") and tracking_uri.startswith("http"):
        path = artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")
        if artifact_uri.startswith("mlflow-artifacts://"):  # mlflow-artifacts://host:port/path
            path = path.partition("/")[2]
        return f"{tracking_uri.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts/{path}"
    return artifact_uri


def _pandas_dataset(frame: pd.DataFrame, source: str, fallback: str, name: str, label: str):
    with warnings.catch_warnings():
        # MLflow registers two resolvers for local files and warns that it picked one; its hint about
        # integer columns is for model signatures, not for a dataset's schema.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        try:
            return mlflow.data.from_pandas(frame, source=source, name=name, targets=label)
        except MlflowException:  # a store MLflow has no dataset source for: name the data file instead
            return mlflow.data.from_pandas(frame, source=fallback, name=name, targets=label)


@task(name="log-datasets", cache_policy=ONCE_PER_RUN, **REPLAYABLE, **IO_RETRIES)
def log_datasets(
    target: TrackingTarget, run_id: str, split: DataSplit, *, label: str, data_path: str
) -> dict[str, DatasetIdentity]:
    """Save the train, validation and test rows under the run's ``datasets/`` and log each as a dataset
    input (context training, validation or test) with digest, source and schema: the MLflow UI shows what
    the run was trained on, and ``mlops run --retrain-version`` trains on exactly these rows again.

    Each dataset is built from the file as read back, the frame a retrain gets, so the digests match.
    ``data_path`` is the source named when MLflow cannot resolve the artifact's URI. Returns the identity
    of each part by name (train, validation, test).
    """
    client = target.client()
    root = client.get_run(run_id).info.artifact_uri.rstrip("/")
    inputs, identities = [], {}
    parts = {"train": split.train, "validation": split.val, "test": split.test}
    with tempfile.TemporaryDirectory() as tmp:
        for part, frame in parts.items():
            path = write_table(frame, Path(tmp) / f"{part}.parquet")
            client.log_artifact(run_id, str(path), artifact_path=DATASETS_FOLDER)
            stored = read_table(path)
            source = dataset_source(f"{root}/{DATASETS_FOLDER}/{path.name}", target.tracking_uri)
            dataset = _pandas_dataset(stored, source, data_path, part, label)
            context = InputTag(MLFLOW_DATASET_CONTEXT, DATASET_CONTEXTS[part])
            inputs.append(DatasetInput(Dataset(**dataset.to_dict()), tags=[context]))
            identities[part] = DatasetIdentity(dataset.digest, data_fingerprint(stored))
    client.log_inputs(run_id, datasets=inputs)
    return identities


@task(name="end-tracking-run", **IO_RETRIES)
def end_run(target: TrackingTarget, run_id: str, status: str = "FINISHED") -> None:
    target.client().set_terminated(run_id, status=status)
