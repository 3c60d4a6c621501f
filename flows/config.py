"""The pipeline config: one YAML file, validated once at the entry point, passed down.

Each layer owns its section's model and defaults (``models/``, ``serving/``, ``monitoring/``);
this module only composes them. Errors name the file, the field path and the bad value.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.data.config import DataConfig, LeakageConfig, SplitConfig
from models.errors import UserInputError
from models.estimate.config import EstimateConfig
from models.evaluation.config import BusinessConfig, EvaluationConfig
from models.features.config import FeatureConfig
from models.features.store import FeatureStoreConfig
from models.governance.config import ApprovalConfig, PromotionPolicy
from models.nn.config import ModelConfig
from models.training.config import SweepConfig
from monitoring.config import MonitoringConfig
from serving.config import ServingConfig

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


class ConfigError(UserInputError):
    """An invalid or unreadable pipeline config; the message names file, field and value."""


class RegistryConfig(BaseModel):
    """Where runs and model versions are recorded in MLflow."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(pattern=NAME_PATTERN, description="Registered model name.")
    experiment: str | None = Field(default=None, description="MLflow experiment; null = model_name.")


class ScheduleConfig(BaseModel):
    """When the training deployment runs on its own (`mlops deploy`)."""

    model_config = ConfigDict(extra="forbid")

    # The training default retrains Mondays at 03:00 (batch scoring's own default is in BatchConfig).
    cron: str | None = Field(
        default="0 3 * * 1",
        description="Cron expression (minute hour day-of-month month day-of-week), read in timezone; null with "
        "no interval_seconds: the deployment runs only when started.",
    )
    interval_seconds: int | None = Field(
        default=None, ge=10, description="Alternative to cron: run every N seconds."
    )
    timezone: str = Field(
        default="UTC", description="IANA time zone the cron is read in (e.g. Europe/Berlin)."
    )

    @model_validator(mode="after")
    def _one_schedule(self) -> ScheduleConfig:
        if self.cron and self.interval_seconds:
            raise ValueError("set either cron or interval_seconds, not both")
        return self


class BatchConfig(BaseModel):
    """The ``batch-scoring`` pipeline: the champion scores files like live traffic (`mlops deploy`)."""

    model_config = ConfigDict(extra="forbid")

    input: Path | None = Field(
        default=None,
        description="File or folder (CSV/Parquet) the scheduled batch-scoring run scores (relative to the config "
        "file); null: no batch-scoring deployment. Each file's scores go beside it as <name>.scored.<ext>.",
    )
    schedule: ScheduleConfig = Field(
        default_factory=lambda: ScheduleConfig(cron="0 4 * * *"),
        description="When the batch-scoring deployment runs; the default is daily at 04:00.",
    )


class PipelineConfig(BaseModel):
    """Everything one training pipeline needs, composed from the layers' own sections."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Pipeline name, used for deployments.")
    seed: int = Field(
        default=7,
        description="Root seed: the named seeds of split, baselines, sweep (and its trials), estimate, bootstrap, "
        "robustness, importance and diagnostics are spawned from it (models/seeds.py).",
    )
    data: DataConfig
    features: FeatureConfig
    feature_store: FeatureStoreConfig | None = Field(
        default=None,
        description="Build the training frame from a Feast feature repository: data.path is then a label spine "
        "(id, as-of time, label) and each row gets the service's features as of its data.time_column. "
        "Null: data.path is the training table itself.",
    )
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    leakage: LeakageConfig = Field(
        default_factory=LeakageConfig,
        description="Possible target leakage: the limits a feature is held to at `mlops data profile` and in "
        "the evaluation, and the features a person confirmed are known when the prediction is made.",
    )
    promotion: PromotionPolicy = Field(default_factory=PromotionPolicy)
    business: BusinessConfig | None = Field(
        default=None,
        description="Value of a conversion and cost of a contact: profit, ROI and the profit-maximising decision "
        "threshold saved with the model. Null: no business figures, the threshold is evaluation.threshold.",
    )
    estimate: EstimateConfig = Field(default_factory=EstimateConfig)
    approval: ApprovalConfig = Field(default_factory=ApprovalConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    registry: RegistryConfig
    serving: ServingConfig = Field(default_factory=ServingConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)

    @model_validator(mode="after")
    def _consistent_columns(self) -> PipelineConfig:
        features = [*self.features.numeric, *self.features.categorical]
        if not features:
            raise ValueError("features: list at least one numeric or categorical column")
        seen: set[str] = set()
        for column in features:
            if column in seen:
                raise ValueError(f"features: column {column!r} is listed twice")
            seen.add(column)
        for role, column in (("data.target", self.data.target), ("data.id_column", self.data.id_column)):
            if column and column in seen:
                raise ValueError(f"{role} {column!r} must not also be a feature")
        if self.feature_store is not None and not self.data.time_column:
            raise ValueError("feature_store: set data.time_column to the label spine's as-of column")
        if self.feature_store is not None and not self.data.id_column:
            raise ValueError(
                "feature_store: set data.id_column to the label spine's entity id (the join key)"
            )
        unknown = sorted(set(self.sweep.search_space) - set(ModelConfig.model_fields))
        if unknown:
            raise ValueError(
                f"sweep.search_space: unknown model parameter(s) {unknown}; "
                f"choose from {sorted(ModelConfig.model_fields)}"
            )
        return self

    @property
    def feature_columns(self) -> list[str]:
        return [*self.features.numeric, *self.features.categorical]

    @property
    def input_columns(self) -> list[str]:
        """Columns a scoring request must carry (features only; id and target are optional)."""
        return self.feature_columns

    def config_hash(self) -> str:
        """Stable hash of the validated config, for lineage tags."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _format_loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _describe(error: dict[str, Any]) -> str:
    field = _format_loc(tuple(error["loc"]))
    if error["type"] == "extra_forbidden":
        return f"{field}: unknown key"
    if error["type"] == "missing":
        return f"{field}: required field is missing"
    value = error.get("input")
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return f"{field}: {error['msg']} (got {shown})"


def _expand(raw: str, home: Path) -> str:
    return re.sub(r"\$\{MLOPS_HOME\}|\$MLOPS_HOME\b", lambda _m: str(home), raw)


def load_config(
    path: Path, *, home: Path | None = None, overrides: dict[str, Any] | None = None
) -> PipelineConfig:
    """Read, validate and resolve a pipeline config.

    Relative ``data.path``, ``data.expectations`` and the feature store's paths are resolved against the config file's
    folder; ``${MLOPS_HOME}`` expands to ``home``. ``overrides`` (dotted keys, from the CLI)
    are applied before validation so they are checked like the file's own values.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable config ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections at the top level, got {type(raw).__name__}"
        )
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{path}: {details}") from exc
    home_dir = home if home is not None else Path(os.environ.get("MLOPS_HOME", ".mlops")).resolve()
    base = path.resolve().parent

    def resolve(p: Path) -> Path:
        expanded = Path(_expand(str(p), home_dir)).expanduser()
        return expanded if expanded.is_absolute() else (base / expanded).resolve()

    data = config.data.model_copy(
        update={"path": resolve(config.data.path), "expectations": resolve(config.data.expectations)}
    )
    monitoring = config.monitoring
    if monitoring.retrain_data is not None:
        monitoring = monitoring.model_copy(update={"retrain_data": resolve(monitoring.retrain_data)})
    batch = config.batch
    if batch.input is not None:
        batch = batch.model_copy(update={"input": resolve(batch.input)})
    store = config.feature_store
    if store is not None:
        store = store.model_copy(
            update={
                "repo": resolve(store.repo),
                "source": resolve(store.source),
                "expectations": None if store.expectations is None else resolve(store.expectations),
            }
        )
    return config.model_copy(
        update={"data": data, "monitoring": monitoring, "batch": batch, "feature_store": store}
    )
