"""Cumulative gains and lift of a score: the share of all positives reached by contacting its top rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from models.evaluation.checks import as_labels, as_scores


@dataclass(frozen=True)
class Gains:
    """Cumulative gains and lift: share of all positives captured by contacting the top-scored rows.

    Entry ``i`` is for the top ``contacted_share[i]`` of rows by score (0.1, 0.2, ... 1.0 for deciles).
    Rows with tied scores are shared out evenly across a cut (the expectation over a random order
    among them), so a constant score gives the diagonal (lift 1) whatever the row order, and a cut that
    falls inside a row counts that row in proportion.
    """

    contacted_share: list[float]
    captured_share: list[float]
    lift: list[float]  # captured share / contacted share; 1 is a random ranking
    rows: int
    positives: int

    def captured_at(self, share: float) -> float:
        """Share of positives captured in the top ``share`` of rows, interpolated between bins."""
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share}")
        return float(np.interp(share, [0.0, *self.contacted_share], [0.0, *self.captured_share]))

    def lift_at(self, share: float) -> float:
        """Lift of the top ``share`` of rows: captured share over contacted share."""
        return self.captured_at(share) / share

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging."""
        return asdict(self)


def gains(y_true: np.ndarray, y_score: np.ndarray, n_bins: int = 10) -> Gains:
    """Cumulative gains and lift for the top 1/n_bins, 2/n_bins, ... of rows by score (deciles by default).

    Answers "if we contact the top 10%, what share of all positives do we reach, and how many times
    better than random is that?". Rows are ordered by score descending; tied rows are shared out evenly
    across a cut (see ``Gains``). Needs at least one positive.
    """
    y = as_labels(y_true)
    s = as_scores(y_score, y.size)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    positives = int(y.sum())
    if positives == 0:
        raise ValueError("gains need at least one positive in y_true")
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    group_ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    rows_through = np.r_[0, group_ends + 1]  # rows up to each tie group's end
    positives_through = np.r_[0.0, np.cumsum(y[order])[group_ends]]
    share = np.arange(1, n_bins + 1) / n_bins
    captured = np.interp(share * y.size, rows_through, positives_through) / positives
    return Gains(
        contacted_share=[float(x) for x in share],
        captured_share=[float(c) for c in captured],
        lift=[float(x) for x in captured / share],
        rows=int(y.size),
        positives=positives,
    )
