"""Named seeds derived from the config's one root seed.

Each consumer of randomness gets its own stream, spawned from ``np.random.SeedSequence(root)``
in a fixed order, so changing how many numbers one step draws never shifts another step's
draws, and two steps never share a stream by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class Seeds:
    """One seed per step of the pipeline. Field order is the spawn order: append, never reorder."""

    split: int
    baselines: int
    sweep: int  # the search algorithm: it also draws each trial's training seed (models/training/sweep.py)
    estimate: int  # the estimate's profiling run
    bootstrap: int
    robustness: int
    importance: int
    diagnostics: int  # subsample of the test split for the slow diagnostics
    cv: int  # fold assignment of the cross-validation and its fold models' training seeds
    business: int  # bootstrap of the profit-maximising threshold
    reference: int  # the training-split sample kept as each version's drift reference
    leakage: int  # folds (and row sample) of the one-feature leakage check, at profile time and in evaluation

    @classmethod
    def from_root(cls, root: int) -> Seeds:
        children = np.random.SeedSequence(root).spawn(len(fields(cls)))
        values = [int(c.generate_state(1, np.uint32)[0]) for c in children]
        return cls(*values)
