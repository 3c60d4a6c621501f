"""Following the MLflow registry from a running service: integrity records, and the poller that swaps models.

At registration the pipeline records two things on each version (`record_integrity`): the SHA-256 of the
scorer files as the registry holds them (tag ``serving.scorer_sha256``) and a smoke sample, a few held-out
rows with the scores the registered scorer gave them (run artifact ``serving_smoke/``, tag ``serving.smoke``).
A service that follows an alias (`RegistryFollower`) accepts a version only if its downloaded files hash to
the recorded digest, it loads, and it scores the smoke rows as recorded (within ``SMOKE_TOLERANCE``);
anything else is refused with the reason, and the model already served keeps serving.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models.artifact.pyfunc import SCORER_ARTIFACT
from models.artifact.scorer import TabularScorer
from monitoring.reference import SCORE_QUANTILES_TAG, parse_score_quantiles
from serving.packaging import ModelIntegrityError, scorer_digest
from serving.settings import LOGGER_NAME

logger = logging.getLogger(LOGGER_NAME)

DIGEST_TAG = "serving.scorer_sha256"
SMOKE_TAG = "serving.smoke"
SMOKE_FOLDER = "serving_smoke"
SMOKE_FILE = "smoke.json"
SMOKE_ROWS = 16
# Scores are float64 from an fp32 network on CPU: the same files give the same scores to ~1e-7 across
# machines; a swapped or damaged model misses by far more.
SMOKE_TOLERANCE = 1e-5


def smoke_sample(scorer: TabularScorer, rows: pd.DataFrame) -> dict[str, Any]:
    """The smoke record of ``scorer``: up to SMOKE_ROWS canonical rows (JSON-safe) and their scores."""
    canonical = scorer.transform.canonical_inputs(rows.head(SMOKE_ROWS))
    records = json.loads(canonical.to_json(orient="records", double_precision=15))  # NaN/None -> null
    return {"rows": records, "scores": scorer.predict_proba(canonical).tolist()}


def check_smoke(scorer: TabularScorer, smoke: dict[str, Any]) -> None:
    """Raise `ModelIntegrityError` unless ``scorer`` scores the smoke rows as recorded."""
    frame = pd.DataFrame(smoke["rows"])
    numeric = scorer.transform.spec.numeric
    frame[numeric] = frame[numeric].astype(np.float64)
    scores = scorer.predict_proba(frame)
    worst = (
        float(np.max(np.abs(scores - np.asarray(smoke["scores"], dtype=np.float64)))) if len(scores) else 0.0
    )
    if not worst <= SMOKE_TOLERANCE:
        raise ModelIntegrityError(
            f"smoke scores differ from the recorded ones by up to {worst:.3g} (> {SMOKE_TOLERANCE})"
        )


def download_scorer_dir(tracking_uri: str, model_uri: str, into: Path) -> Path:
    """The scorer folder of a logged model (``models:/NAME/VERSION``), downloaded under ``into``."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in a server log
    mlflow.set_tracking_uri(tracking_uri)
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(into))
    return Path(local) / "artifacts" / SCORER_ARTIFACT


def record_integrity(
    client: MlflowClient,
    tracking_uri: str,
    name: str,
    version: str,
    run_id: str,
    scorer: TabularScorer,
    rows: pd.DataFrame,
) -> None:
    """Tag ``version`` with the digest of its registry copy and log its smoke sample (see the module doc)."""
    with tempfile.TemporaryDirectory() as tmp:
        digest = scorer_digest(download_scorer_dir(tracking_uri, f"models:/{name}/{version}", Path(tmp)))
        folder = Path(tmp) / SMOKE_FOLDER
        folder.mkdir()
        (folder / SMOKE_FILE).write_text(json.dumps(smoke_sample(scorer, rows)))
        client.log_artifacts(run_id, str(folder), artifact_path=SMOKE_FOLDER)
    client.set_model_version_tag(name, version, DIGEST_TAG, digest)
    client.set_model_version_tag(name, version, SMOKE_TAG, f"runs:/{run_id}/{SMOKE_FOLDER}/{SMOKE_FILE}")


def fetch_verified(tracking_uri: str, name: str, version: str) -> TabularScorer:
    """Download, verify and load a registered version; `ModelIntegrityError` saying why when it must not serve."""
    client = MlflowClient(tracking_uri)
    tags = client.get_model_version(name, version).tags
    for tag in (DIGEST_TAG, SMOKE_TAG):
        if tag not in tags:
            raise ModelIntegrityError(
                f"{name} v{version} has no {tag} tag: it was not registered for serving"
            )
    with tempfile.TemporaryDirectory() as tmp:
        directory = download_scorer_dir(tracking_uri, f"models:/{name}/{version}", Path(tmp))
        actual = scorer_digest(directory)
        if actual != tags[DIGEST_TAG]:
            raise ModelIntegrityError(
                f"{name} v{version}: files hash to {actual}, registered as {tags[DIGEST_TAG]}"
            )
        try:
            scorer = TabularScorer.load(directory)
        except Exception as exc:  # any failure to load refuses the version
            raise ModelIntegrityError(f"{name} v{version} does not load: {exc}") from exc
        smoke = json.loads(
            Path(mlflow.artifacts.download_artifacts(artifact_uri=tags[SMOKE_TAG], dst_path=tmp)).read_text()
        )
    try:
        check_smoke(scorer, smoke)
    except ModelIntegrityError as exc:
        raise ModelIntegrityError(f"{name} v{version}: {exc}") from None
    return scorer


@dataclass(frozen=True)
class Refusal:
    version: str
    reason: str


class RegistryFollower:
    """Polls ``name@alias`` at start and every ``interval`` seconds in a daemon thread; a new version that
    passes `fetch_verified` is handed to ``swap(version, scorer, reference_quantiles)`` (its
    `monitoring.score_quantiles` tag, None without one), one that fails goes to ``refuse(Refusal)``
    once, and an alias that does not exist (or no longer does) calls ``missing()`` when given.

    ``current`` is the version being served. Registry errors (the server unreachable) are logged and
    retried at the next poll: the served model never changes because of them.
    """

    def __init__(
        self,
        tracking_uri: str,
        name: str,
        alias: str,
        interval: float,
        current: str | None,
        swap: Callable[[str, TabularScorer, dict[str, float] | None], None],
        refuse: Callable[[Refusal], None],
        missing: Callable[[], None] | None = None,
    ) -> None:
        self.tracking_uri, self.name, self.alias, self.interval = tracking_uri, name, alias, interval
        self.current = current
        self._swap, self._refuse, self._missing = swap, refuse, missing
        self.refused: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow-{name}@{alias}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def poll_once(self) -> None:
        try:
            found = MlflowClient(self.tracking_uri).get_model_version_by_alias(self.name, self.alias)
            version = str(found.version)
        except MlflowException as exc:
            if self._missing is not None and "not found" in exc.message.lower():
                self.current = None  # the alias was removed: nothing to serve from it
                self._missing()
                return
            logger.warning("registry poll of %s@%s failed: %s", self.name, self.alias, exc.message)
            return
        if version == self.current or version in self.refused:
            return
        try:
            scorer = fetch_verified(self.tracking_uri, self.name, version)
        except (ModelIntegrityError, MlflowException, OSError) as exc:
            reason = str(exc)
            self.refused[version] = reason
            logger.error("refused %s v%s (still serving v%s): %s", self.name, version, self.current, reason)
            self._refuse(Refusal(version, reason))
            return
        previous, self.current = self.current, version
        self._swap(version, scorer, parse_score_quantiles((found.tags or {}).get(SCORE_QUANTILES_TAG)))
        logger.info(
            "now serving %s v%s (was v%s) from %s@%s", self.name, version, previous, self.name, self.alias
        )

    def _run(self) -> None:
        while not self._stop.is_set():  # a first poll at once, then one per interval
            try:
                self.poll_once()
            except Exception:  # a poller that dies silently would stop following: log and keep going
                logger.exception("registry poll of %s@%s crashed", self.name, self.alias)
            self._stop.wait(self.interval)
