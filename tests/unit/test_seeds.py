"""Named seeds spawned from the root seed."""

from __future__ import annotations

from dataclasses import astuple

from models.seeds import Seeds


def test_seeds_are_reproducible_distinct_and_32_bit() -> None:
    seeds = Seeds.from_root(7)
    assert seeds == Seeds.from_root(7)
    values = astuple(seeds)
    assert len(set(values)) == len(values), "two steps share a stream"
    assert all(0 <= v < 2**32 for v in values)
    assert astuple(Seeds.from_root(8)) != values
