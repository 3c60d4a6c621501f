"""Typed parameters of the feature store section, and what a point-in-time retrieval hands the pipeline.

With a ``feature_store`` section, ``data.path`` is a label spine (entity id, as-of time, label) and the
training frame is built by the feature store's historical retrieval: each spine row gets the features
as they were at its as-of time, never later values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat


class FeatureStoreConfig(BaseModel):
    """A Feast feature repository, the feature service the model reads, and the source its tables come from."""

    model_config = ConfigDict(extra="forbid")

    repo: Path = Field(
        description="Feast feature repository (feature_store.yaml and definitions), relative to the config file."
    )
    service: str = Field(
        min_length=1,
        description="Feature service whose features the training frame gets: one service per model.",
    )
    source: Path = Field(
        description="CRM source folder (leads.parquet, activities.parquet: `mlops data generate --crm`) the "
        "crm-features flow aggregates into the repository's tables; relative to the config file; "
        "${MLOPS_HOME} expands to the project home.",
    )
    expectations: Path | None = Field(
        default=None,
        description="Great Expectations suite (JSON, as `data.expectations`) every materialised batch must pass "
        "before it is written to the online store; relative to the config file. Null: no check.",
    )
    materialize_interval_minutes: int | None = Field(
        default=None,
        ge=1,
        description="Schedule of the materialize-features deployment `mlops deploy` registers (and prefect.yaml "
        "declares); null registers none.",
    )
    max_age_minutes: dict[str, PositiveFloat] = Field(
        default_factory=dict,
        description="Per view, the oldest features (in minutes, above 0) the online store may serve before "
        "`mlops monitor` reports the view as stale (a finding, exit 1); a view not listed is held to its ttl.",
    )


@dataclass(frozen=True)
class TrainingFrame:
    """The rows the pipeline trains on, and where they came from beyond the data file."""

    data: pd.DataFrame
    # Lineage tags of the model version (feature_store.service, .views, .retrieved_at); empty for a flat file.
    lineage: dict[str, str] = field(default_factory=dict)


def retrieval_lineage(service: str, views: list[str], retrieved_at: datetime) -> dict[str, str]:
    """Tags naming the feature service, the views it read and when: enough to retrieve the same frame again."""
    return {
        "feature_store.service": service,
        "feature_store.views": ",".join(sorted(views)),
        "feature_store.retrieved_at": retrieved_at.isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class FeatureLookup:
    """How a model trained from a feature service reads its features when a request carries only the entity
    id: saved with the model (`models.artifact.scorer.LOOKUP_FILE`), so every copy of it (MLflow, Bento,
    a version the service swaps in) scores by id through the service it was trained from."""

    service: str  # the Feast feature service the training frame came from
    entity_column: str  # the request field holding the entity's join key (the config's data.id_column)
    # The repository's feature_store.yaml as written (``${MLOPS_HOME}`` unexpanded): where the registry and
    # the online store are, read where the model is served.
    repo_config: str

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "entity_column": self.entity_column, "repo_config": self.repo_config}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FeatureLookup:
        return cls(str(raw["service"]), str(raw["entity_column"]), str(raw["repo_config"]))
