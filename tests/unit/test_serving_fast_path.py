"""The serving hot path's shortcuts give what the plain way gives: bulk histogram observations, the validated
rows as arrays, and prediction-log lines written from dicts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from models.artifact.scorer import FeatureColumn
from monitoring.prediction_log import PredictionLog, PredictionRecord, log_files, read_records
from serving.encoding import rows_to_arrays
from serving.metrics import observe_all
from serving.schemas import build_request_model
from serving.scoring import ScoredRows

BUCKETS = [i / 10 for i in range(1, 11)]  # the service's score histogram


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


@pytest.mark.parametrize("seed", range(3))
def test_bulk_observation_matches_observing_each_value(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Values on the bucket bounds themselves, at 0 and 1, and in between: `le` buckets are inclusive.
    values = np.concatenate([rng.random(200), np.array(BUCKETS), [0.0, 1.0, 0.1, 0.1]])
    one, bulk = CollectorRegistry(), CollectorRegistry()
    by_value = Histogram("score", "s", ["variant"], buckets=BUCKETS, registry=one).labels("champion")
    for value in values:
        by_value.observe(float(value))
    observe_all(
        Histogram("score", "s", ["variant"], buckets=BUCKETS, registry=bulk).labels("champion"), values
    )
    expected, got = _samples(one), _samples(bulk)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        if key[0] == "score_sum":  # summed in another order: equal to 1e-12 relative
            assert got[key] == pytest.approx(value, rel=1e-12)
        else:  # counts: exact
            assert got[key] == value, key


COLUMNS = [
    FeatureColumn("deal_size", "numeric"),
    FeatureColumn("visits", "numeric"),
    FeatureColumn("plan", "categorical"),
    FeatureColumn("region", "categorical"),
]


def test_validated_rows_become_the_arrays_each_field_holds() -> None:
    model = build_request_model(COLUMNS, 100, "lead_id")
    raw = [
        {"deal_size": 12.5, "visits": 3, "plan": "pro", "region": None, "lead_id": 7},
        {"deal_size": None, "visits": 0, "plan": 3, "region": "north"},
        {"deal_size": -1e300, "visits": None, "plan": True, "region": 2.0, "ignored": "x"},
    ]
    rows = model.model_validate({"rows": raw}).rows
    numeric, categorical = rows_to_arrays(rows, COLUMNS)
    expected = np.array([[12.5, 3.0], [np.nan, 0.0], [-1e300, np.nan]])
    assert numeric.dtype == np.float64 and numeric.flags.c_contiguous
    np.testing.assert_array_equal(numeric, expected)  # NaN where None; exact values otherwise
    assert categorical == [["pro", 3, True], [None, "north", 2.0]]  # raw: the transform casts them
    empty_numeric, empty_categorical = rows_to_arrays([], COLUMNS)
    assert empty_numeric.shape == (0, 2) and empty_categorical == [[], []]


def test_log_lines_from_dicts_read_back_as_the_records(tmp_path: Path) -> None:
    scored = ScoredRows(
        "crm-leads",
        "4",
        [0.25, 0.75],
        [False, True],
        [[], ["out_of_range:visits"]],
        [{"visits": 1.0, "plan": None}, {"visits": 1e9, "plan": "pro"}],
    )
    now = datetime(2026, 1, 31, 12, tzinfo=UTC).isoformat()
    lines = scored.log_lines(["a", "b"], ["lead-1", None], "champion", now)
    assert all(set(line) == {f.name for f in dataclasses.fields(PredictionRecord)} for line in lines)
    with PredictionLog(tmp_path) as log:
        log.append_dicts(lines)
    expected = [
        PredictionRecord(
            request_id="a",
            variant="champion",
            model_version="4",
            features={"visits": 1.0, "plan": None},
            score=0.25,
            timestamp=now,
            entity_id="lead-1",
            model_name="crm-leads",
            flags=[],
        ),
        PredictionRecord(
            request_id="b",
            variant="champion",
            model_version="4",
            features={"visits": 1e9, "plan": "pro"},
            score=0.75,
            timestamp=now,
            entity_id=None,
            model_name="crm-leads",
            flags=["out_of_range:visits"],
        ),
    ]
    assert list(read_records(log_files(tmp_path))) == expected
