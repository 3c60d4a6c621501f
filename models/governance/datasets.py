"""Which rows a model version was trained, validated and tested on: the lineage of its logged datasets.

MLflow's dataset digest hashes the first 10,000 rows of the string and number columns; the fingerprint
hashes every row and column. A version's tags carry both for each part of its split, so a retrain on the
logged datasets can be checked to use the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SPLIT_STRATEGY_TAG = "split.strategy"  # how the logged parts were made (random or time): a retrain keeps it
RETRAINED_FROM_TAG = "retrain.source"  # NAME/VERSION whose logged datasets a retrain used


@dataclass(frozen=True)
class DatasetIdentity:
    """One logged part of a split: MLflow's digest (shown in its UI) and the fingerprint of all its rows."""

    digest: str
    fingerprint: str


def dataset_tags(parts: Mapping[str, DatasetIdentity]) -> dict[str, str]:
    """``dataset.<part>.digest`` and ``dataset.<part>.fingerprint`` of each part (train, validation, test)."""
    tags = {}
    for part, identity in parts.items():
        tags[f"dataset.{part}.digest"] = identity.digest
        tags[f"dataset.{part}.fingerprint"] = identity.fingerprint
    return tags
