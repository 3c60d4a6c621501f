"""The drift reference a registered version carries: a seeded training sample and held-out scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.reference import DriftReference


def _reference(rows: int) -> DriftReference:
    train = pd.DataFrame(
        {"x": np.arange(1000.0), "plan": ["a", "b"] * 500, "target": [0, 1] * 500, "id": range(1000)}
    )
    return DriftReference.of(
        train,
        numeric=["x"],
        categorical=["plan"],
        holdout_scores=np.array([0.1, 0.8, 0.4]),
        holdout_labels=np.array([0, 1, 1]),
        threshold=0.35,
        rows=rows,
        seed=3,
    )


def test_sample_keeps_feature_columns_only_in_training_order() -> None:
    reference = _reference(rows=100)
    assert list(reference.features.columns) == ["x", "plan"]  # no target, no id
    assert len(reference.features) == 100
    x = reference.features["x"].to_numpy()
    assert (np.diff(x) > 0).all()  # original order kept
    assert reference.features.equals(_reference(rows=100).features)  # seeded
    assert len(_reference(rows=5000).features) == 1000  # fewer rows than asked: all of them


def test_round_trip_through_files(tmp_path: Path) -> None:
    reference = _reference(rows=50)
    loaded = DriftReference.load(reference.save(tmp_path / "ref"))
    pd.testing.assert_frame_equal(loaded.features, reference.features)
    assert np.array_equal(loaded.holdout_scores, reference.holdout_scores)
    assert np.array_equal(loaded.holdout_labels, reference.holdout_labels)
    assert (loaded.numeric, loaded.categorical, loaded.threshold) == (["x"], ["plan"], 0.35)
