"""Names shared by training, serving and monitoring, each defined once.

Registry aliases say which version plays which role; serving variants say which role answered a
request (the prediction log and A/B analysis read them). MLflow caps tag values: every tag
written by the platform is cut to ``MAX_TAG_LENGTH``.
"""

from __future__ import annotations

from enum import StrEnum


class Alias(StrEnum):
    """MLflow registry aliases of a registered model."""

    CHALLENGER = "challenger"  # the newest candidate, before its promotion gate
    CHAMPION = "champion"  # what serving loads
    PREVIOUS_CHAMPION = "previous-champion"  # kept for rollback when the champion moves
    CANDIDATE = "candidate"  # served beside the champion (A/B or shadow); set only by `mlops ab start`


class Variant(StrEnum):
    """Which model answered a prediction request."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"
    SHADOW = "shadow"
    BATCH = "batch"  # scored by the batch-scoring pipeline, logged like live traffic


# MLflow accepts tag values up to 8000 characters (5000 on older stores); 5000 fits every backend.
MAX_TAG_LENGTH = 5000


def tag_value(text: str) -> str:
    """``text`` cut to what every MLflow backend stores as a tag value."""
    return text[:MAX_TAG_LENGTH]
