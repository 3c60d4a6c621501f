"""Named seeds derived from the config's one root seed.

Each consumer of randomness gets its own stream, spawned from ``np.random.SeedSequence(root)``
in a fixed order, so changing how many numbers one step draws never shifts another step's
draws, and two steps never share a stream by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# 32-bit: every library below (Lightning, sklearn, Ray's search algorithms) accepts it.
_SEED_BITS = 32


@dataclass(frozen=True)
class Seeds:
    """One seed per step of the pipeline. Field order is the spawn order: append, never reorder."""

    split: int
    baselines: int
    sweep: int  # the search algorithm's sampler
    trials: int  # root of the per-trial training seeds (see ``trial_seed``)
    estimate: int  # the estimate's profiling run
    bootstrap: int
    robustness: int
    importance: int
    diagnostics: int  # subsample of the test split for the slow diagnostics

    @classmethod
    def from_root(cls, root: int) -> Seeds:
        children = np.random.SeedSequence(root).spawn(len(fields(cls)))
        values = [int(c.generate_state(1, np.uint32)[0]) for c in children]
        return cls(*values)

    def trial_seed(self, trial_index: int) -> int:
        """The training seed of the sweep's ``trial_index``-th trial: distinct per trial, stable on resume."""
        child = np.random.SeedSequence(self.trials, spawn_key=(trial_index,))
        return int(child.generate_state(1, np.uint32)[0]) % (2**_SEED_BITS)
