"""A/B routing: which variant answers each row while a challenger serves beside the champion.

A stable hash of each row's routing key (``serving.ab.key``, default the entity id column) sends
``serving.ab.challenger_share`` of the entities to the challenger: the same lead always sees the same variant,
in every worker and after restarts. Rows without the key go to the champion.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel

from models.governance.names import Variant
from serving.config import ABConfig
from serving.served import ServedModel

CHAMPION, CHALLENGER = Variant.CHAMPION.value, Variant.CHALLENGER.value


def ab_bucket(salt: str, key: str) -> float:
    """A stable position in [0, 1) for a routing key: the same lead always lands in the same place (BLAKE2b,
    not Python's per-process randomised ``hash``), so every worker and every restart routes it alike."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def routing_keys(
    ab: ABConfig, served: ServedModel, rows: list[BaseModel], entities: list[str | None]
) -> list[str | None]:
    """Each row's routing key as a string: ``ab.key``'s feature value, or the entity id when the key is the
    entity column (or unset); None for rows without one."""
    key = ab.key or served.entity_column
    if key is None or key == served.entity_column:
        return entities
    index = next((i for i, c in enumerate(served.columns) if c.name == key), None)
    return (
        [None] * len(rows)
        if index is None
        else [None if (v := getattr(row, f"f{index}")) is None else str(v) for row in rows]
    )


def assign_variants(
    ab: ABConfig, served: ServedModel, rows: list[BaseModel], entities: list[str | None]
) -> list[str]:
    """The variant meant to answer each row (validated by the champion's ``served`` request model): challenger
    for keys whose bucket (salted with the model's name) is under ``ab.challenger_share``, champion otherwise."""
    share = ab.challenger_share
    return [
        CHALLENGER if key is not None and ab_bucket(served.name, key) < share else CHAMPION
        for key in routing_keys(ab, served, rows, entities)
    ]
