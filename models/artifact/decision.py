"""The decision rule saved with a model: whom to contact, given calibrated scores.

Scoring gives a probability; the business acts on a yes/no. The rule is chosen at training time (the
profit-maximising threshold on held-out rows when the config has a `business:` section, else
`evaluation.threshold`), saved beside the weights, and applied unchanged by batch scoring and serving.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def contact_decisions(
    scores: np.ndarray,
    threshold: float,
    capacity: int | None = None,
    batch_rows: int | None = None,
    order: np.ndarray | None = None,
) -> np.ndarray:
    """Which rows to contact: ``score >= threshold``, at most ``capacity`` of them per batch.

    A batch is ``batch_rows`` consecutive rows (None: all rows are one batch, e.g. one scoring request;
    the last batch may be shorter). In each batch only the ``capacity`` eligible rows of highest priority
    are contacted: ``order`` (higher first) or, when None, the score itself; ties go to the earlier row,
    so the result is deterministic. Any length works, including 0 and 1. Vectorised: one lexsort.
    """
    s = np.asarray(scores, dtype=np.float64)
    eligible = s >= threshold
    if capacity is None:
        return eligible
    n = s.size
    priority = s if order is None else np.asarray(order, dtype=np.float64)
    if priority.size != n:
        raise ValueError(f"length mismatch: scores has {n} rows but order has {priority.size}")
    size = batch_rows if batch_rows is not None else max(n, 1)
    position = np.arange(n)
    batch = position // size
    # Batch first, then eligible rows, then priority descending, then position: lexsort's last key leads.
    ranked = np.lexsort((position, -priority, ~eligible, batch))
    rank = np.empty(n, dtype=np.int64)
    rank[ranked] = position - batch[ranked] * size  # batch b fills sorted slots [b * size, (b+1) * size)
    return eligible & (rank < capacity)


@dataclass(frozen=True)
class DecisionRule:
    """Contact when the calibrated score reaches `threshold` (at most `capacity` per scoring batch)."""

    threshold: float
    source: str  # how the threshold was chosen, for people: shown in the model card and the service
    capacity: int | None = None

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """One bool per row; the rows passed together form one batch for the capacity."""
        return contact_decisions(scores, self.threshold, self.capacity)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> DecisionRule:
        capacity = state.get("capacity")
        return cls(
            float(state["threshold"]), str(state["source"]), None if capacity is None else int(capacity)
        )
