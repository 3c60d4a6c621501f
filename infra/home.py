"""The project home: the one folder where the embedded default keeps its state.

Resolved once at the entry point from ``MLOPS_HOME`` (default ``./.mlops``) and passed down;
nothing is created at import time.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = ".mlops"

# Telemetry off: the platform must run offline and quietly.
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "BENTOML_DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

# With a tracking server, MLflow prints a "View run ... at: URL" line for every run it ends: one per
# sweep trial. The pipeline's summary gives the one link that matters.
QUIET = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
# MLflow's client retries a failed call 7 times with a back-off of 2 s doubling, about 4 minutes a call,
# and the registry tasks retry on top: a tracking server that is down would hold a run for a quarter of
# an hour before it says so. Bounded here: 3 retries, 1 s doubling (about 10 s a call, jitter included).
MLFLOW_CLIENT_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


@dataclass(frozen=True)
class ProjectHome:
    """Locations of everything the embedded default writes; each is derived from ``root``."""

    root: Path

    @classmethod
    def from_env(cls, environ: MutableMapping[str, str] | None = None) -> ProjectHome:
        env = os.environ if environ is None else environ
        return cls(Path(env.get("MLOPS_HOME") or DEFAULT_HOME).expanduser().resolve())

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def crm_source(self) -> Path:
        """Where `mlops data generate --crm` writes the CRM source and the shipped feature-store config reads it."""
        return self.data / "crm"

    @property
    def data_docs(self) -> Path:
        return self.root / "data_docs"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    def active_tracking_uri(self) -> str:
        """The tracking store runs of this process use: ``MLFLOW_TRACKING_URI`` when set, else this home's."""
        return os.environ.get("MLFLOW_TRACKING_URI") or self.tracking_uri

    @property
    def mlflow_auth(self) -> Path:
        """MLflow's basic-auth app of the local stack: its config and its user store (SQLite)."""
        return self.root / "mlflow-auth"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def ray_results(self) -> Path:
        return self.root / "ray"

    @property
    def bentoml(self) -> Path:
        return self.root / "bentoml"

    @property
    def prefect(self) -> Path:
        return self.root / "prefect"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def evidently_workspace(self) -> Path:
        """The Evidently workspace the drift monitor records its checks in (served by ``evidently ui``)."""
        return self.root / "evidently"

    @property
    def features(self) -> Path:
        """Feature-store state kept beside a Feast repository's own (registry, tables, online store)."""
        return self.root / "features"

    def materializations(self, project: str) -> Path:
        """The record of what each materialisation of Feast project ``project`` wrote: one JSON line a run
        (``models.features.materialization``)."""
        return self.features / project / "materializations.jsonl"

    @property
    def redis(self) -> Path:
        """The data of the local stack's Redis (the feature store's online store): its append-only file."""
        return self.root / "redis"

    @property
    def prediction_logs(self) -> Path:
        return self.root / "predictions"

    @property
    def prometheus(self) -> Path:
        """The local stack's Prometheus: its config, rules, scrape target files (``targets/``) and data."""
        return self.root / "prometheus"

    @property
    def alertmanager(self) -> Path:
        """The local stack's Alertmanager: its config and its state (silences, notification log)."""
        return self.root / "alertmanager"

    @property
    def runtime(self) -> Path:
        """Pid files and logs of servers started by ``mlops up``."""
        return self.root / "run"

    @classmethod
    def configured(cls) -> ProjectHome:
        """The home of this process (``MLOPS_HOME``), with the libraries pointed at it: what a flow
        run started by the CLI or by a deployment runner calls first."""
        home = cls.from_env()
        home.configure_environment()
        return home

    def configure_environment(self, environ: MutableMapping[str, str] | None = None) -> None:
        """Point the libraries at this home unless the user already pointed them elsewhere.

        Must run before Prefect is imported: Prefect reads its settings at import.
        """
        env = os.environ if environ is None else environ
        env.setdefault("MLOPS_HOME", str(self.root))
        env.setdefault("PREFECT_HOME", str(self.prefect))
        Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect will not create parents
        env.setdefault("MLFLOW_TRACKING_URI", self.tracking_uri)
        env.setdefault("BENTOML_HOME", str(self.bentoml))
        # A cold ephemeral Prefect server on a loaded 2-core machine can need more than 20 s.
        env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
        for key, value in (TELEMETRY_OFF | QUIET | MLFLOW_CLIENT_RETRIES).items():
            env.setdefault(key, value)
