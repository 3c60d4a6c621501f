"""Typed parameters of the feature store section, and what a point-in-time retrieval hands the pipeline.

With a ``feature_store`` section, ``data.path`` is a label spine (entity id, as-of time, label) and the
training frame is built by the feature store's historical retrieval: each spine row gets the features
as they were at its as-of time, never later values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field


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
