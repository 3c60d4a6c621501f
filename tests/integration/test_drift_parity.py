"""monitoring.drift against Evidently 0.7.23 itself: on every column the same method, threshold and verdict,
the score equal to 1e-6 relative, and the same drifted share.

Each case runs ``Report([DataDriftPreset(...)], include_tests=True)`` with an explicit ``DataDefinition``
(the score column through its own ``ValueDrift``, so that it stays out of the share, as in ``detect_drift``)
and ``detect_drift`` on the same frames. Frames stay small (300 and 5,000 reference rows, on either side
of Evidently's 1,000-row switch from p-values to distances) so that the file runs in seconds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, norm

from monitoring.config import MonitoringConfig
from monitoring.drift import DriftReport, detect_drift
from monitoring.evidently_report import EvidentlyColumn, evidently_drift

pytestmark = pytest.mark.integration

NUMERIC = ["tenure", "deal_size", "seats", "visits", "has_demo", "engagement"]
CATEGORICAL = ["region", "plan", "source"]
SCORE = "score"
REGIONS = ["north", "south", "east", "west", "central", "islands"]


def assert_same(ours: DriftReport, theirs: dict[str, EvidentlyColumn], their_share: float) -> None:
    mine = [*ours.columns, *([ours.prediction] if ours.prediction is not None else [])]
    assert sorted(c.column for c in mine) == sorted(theirs)
    for column in mine:
        expected = theirs[column.column]
        assert (column.column, column.method, column.drifted) == (
            column.column,
            expected.method,
            expected.drifted,
        )
        assert column.threshold == pytest.approx(expected.threshold, rel=1e-12), column.column
        assert column.score == pytest.approx(expected.score, rel=1e-6), column.column
    assert ours.drifted_share == pytest.approx(their_share, rel=1e-12)


def mix(before: list[float], after: list[float], strength: float) -> np.ndarray:
    p = (1 - strength) * np.asarray(before) + strength * np.asarray(after)
    return p / p.sum()


def sample(rng: np.random.Generator, rows: int, drifted: frozenset[str]) -> pd.DataFrame:
    """Leads-like columns; each column named in ``drifted`` comes from its shifted distribution."""

    def s(column: str) -> float:
        return 1.0 if column in drifted else 0.0

    engagement = rng.beta(2.0 + 1.5 * s("engagement"), 2.0, rows) * 100.0
    engagement[rng.random(rows) < 0.05] = np.nan
    engagement[rng.random(rows) < 0.004] = np.inf  # Evidently drops ±inf with the NaN
    source = rng.choice(
        np.array(["web", "referral", "event", "partner"], dtype=object),
        rows,
        p=mix([0.5, 0.3, 0.2, 0], [0.3, 0.3, 0.2, 0.2], s("source")),
    )
    source[rng.random(rows) < 0.03] = None
    return pd.DataFrame(
        {
            "tenure": rng.normal(24.0 + 6.0 * s("tenure"), 8.0, rows),
            "deal_size": rng.lognormal(8.5 + 0.5 * s("deal_size"), 0.9, rows),
            "seats": rng.integers(1, 9, rows) + (rng.random(rows) < 0.5 * s("seats")),  # 8 or 9 integers
            "visits": rng.choice(4, rows, p=mix([0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], s("visits"))),
            "has_demo": (rng.random(rows) < 0.3 + 0.3 * s("has_demo")).astype(float),
            "engagement": engagement,
            "region": rng.choice(REGIONS, rows, p=mix([4, 3, 3, 2, 2, 1], [1, 2, 2, 3, 3, 4], s("region"))),
            "plan": rng.choice(["basic", "pro"], rows, p=mix([0.6, 0.4], [0.35, 0.65], s("plan"))),
            "source": source,
            SCORE: rng.beta(2.0 + 2.0 * s(SCORE), 5.0, rows),
        }
    )


EVERYTHING = frozenset([*NUMERIC, *CATEGORICAL, SCORE])
SCENARIOS = {
    "none": frozenset(),
    "few": frozenset({"tenure", "visits", "region"}),
    "everywhere": EVERYTHING,
}


@pytest.mark.parametrize("rows", [300, 5000], ids=["p-values", "distances"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_same_methods_scores_and_verdicts(rows: int, scenario: str) -> None:
    rng = np.random.default_rng(rows + len(scenario))
    reference = sample(rng, rows, frozenset())
    current = sample(rng, rows * 6 // 5, SCENARIOS[scenario])  # unequal sizes exercise the scaling
    ours = detect_drift(
        reference,
        current,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        config=MonitoringConfig(),
        score_column=SCORE,
    )
    theirs, share = evidently_drift(reference, current, NUMERIC, CATEGORICAL, SCORE)
    assert_same(ours, theirs, share)
    expected_methods = {"seats": "K-S p_value", "visits": "chi-square p_value", "has_demo": "Z-test p_value"}
    if rows > 1000:
        expected_methods = {
            "seats": "Wasserstein distance (normed)",
            "visits": "Jensen-Shannon distance",
            "has_demo": "Jensen-Shannon distance",
        }
    assert {c.column: c.method for c in ours.columns if c.column in expected_methods} == expected_methods
    if scenario == "everywhere":
        assert ours.dataset_drift and ours.prediction is not None and ours.prediction.drifted
    if scenario == "few":  # the shifted columns drift; at 300 rows a p-value may flag another by chance
        assert SCENARIOS["few"] <= set(ours.drifted_columns) and ours.drifted_share < 1


def test_scores_next_to_the_threshold() -> None:
    """Columns whose score sits on either side of the default threshold, as close as the data allow."""
    rng = np.random.default_rng(11)
    big = pd.DataFrame({"w_above": rng.normal(size=5000), "w_below": rng.normal(size=5000)})
    big_current = big.copy()
    big_current["w_above"] += 0.1 * np.std(big["w_above"]) * (1 + 1e-6)  # pure shift: score = shift / std
    big_current["w_below"] += 0.1 * np.std(big["w_below"]) * (1 - 1e-6)
    reference_plan = np.where(rng.random(5000) < 0.5, "basic", "pro").astype(object)
    flips = _first_count(lambda m: _js_after_flips(reference_plan, m) >= 0.1)
    big["js_above"] = big["js_below"] = reference_plan
    big_current["js_above"] = _flip(reference_plan, flips)
    big_current["js_below"] = _flip(reference_plan, flips - 1)

    small = pd.DataFrame({"ks": rng.normal(size=300)})
    small_current = small.copy()
    shifts = np.linspace(0.0, 0.6, 601)
    first = _first_count(lambda i: ks_2samp(small["ks"], small["ks"] + shifts[i]).pvalue <= 0.05)
    small_current["ks"] = small["ks"] + shifts[first]
    small["ks_below"] = small["ks"]
    small_current["ks_below"] = small["ks"] + shifts[first - 1]
    small_plan = np.where(rng.random(300) < 0.5, "basic", "pro").astype(object)
    z_flips = _first_count(lambda m: _z_after_flips(small_plan, m) < 0.05)
    small["z_above"] = small["z_below"] = small_plan
    small_current["z_above"] = _flip(small_plan, z_flips)
    small_current["z_below"] = _flip(small_plan, z_flips - 1)

    for reference, current, numeric, categorical in (
        (big, big_current, ["w_above", "w_below"], ["js_above", "js_below"]),
        (small, small_current, ["ks", "ks_below"], ["z_above", "z_below"]),
    ):
        ours = detect_drift(
            reference, current, numeric=numeric, categorical=categorical, config=MonitoringConfig()
        )
        assert_same(ours, *evidently_drift(reference, current, numeric, categorical))
        assert [c.drifted for c in ours.columns] == [True, False, True, False]
        assert ours.dataset_drift  # half drifted: 0.5 >= drift_share 0.5


def test_threshold_overrides_match_evidentlys_per_column_thresholds() -> None:
    rng = np.random.default_rng(5)
    config = MonitoringConfig(
        stattest_thresholds={
            "wasserstein": 0.05,
            "jensenshannon": 0.03,
            "ks": 0.2,
            "chisquare": 0.2,
            "z": 0.2,
        }
    )
    for rows in (300, 5000):
        reference = sample(rng, rows, frozenset())
        current = sample(rng, rows, frozenset({"tenure", "plan"}))
        ours = detect_drift(
            reference, current, numeric=NUMERIC, categorical=CATEGORICAL, config=config, score_column=SCORE
        )
        thresholds = {c.column: c.threshold for c in [*ours.columns, ours.prediction] if c is not None}
        assert set(thresholds.values()) <= set(config.stattest_thresholds.values())
        assert_same(ours, *evidently_drift(reference, current, NUMERIC, CATEGORICAL, SCORE, thresholds))


@pytest.mark.parametrize("rows", [300, 3000], ids=["p-values", "distances"])
def test_column_encodings(rows: int) -> None:
    """pandas category dtype, integer codes and booleans as categoricals, nullable integers as numbers."""
    rng = np.random.default_rng(rows)

    def frame(letters: str, top_code: int, p_flag: float, top_int: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "letter": pd.Categorical(rng.choice(list(letters), rows)),
                "code": rng.integers(0, top_code, rows),
                "flag": rng.random(rows) < p_flag,
                "count": pd.array(rng.integers(0, top_int, rows), dtype="Int64"),
            }
        )

    reference, current = frame("abc", 4, 0.4, 50), frame("abd", 5, 0.45, 55)
    reference.loc[3, "count"] = pd.NA
    numeric, categorical = ["count"], ["letter", "code", "flag"]
    ours = detect_drift(
        reference, current, numeric=numeric, categorical=categorical, config=MonitoringConfig()
    )
    assert_same(ours, *evidently_drift(reference, current, numeric, categorical))
    assert ours.columns[1].new_category_rate == pytest.approx(np.mean(current["letter"] == "d"))


def _first_count(condition: Callable[[int], bool]) -> int:
    """Smallest non-negative integer meeting a monotone condition (the data are small)."""
    return next(m for m in range(100_000) if condition(m))


def _flip(values: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` "basic" values turned "pro"."""
    flipped = values.copy()
    flipped[np.flatnonzero(flipped == "basic")[:count]] = "pro"
    return flipped


def _shares(values: np.ndarray) -> np.ndarray:
    return np.array([np.mean(values == "basic"), np.mean(values == "pro")])


def _js_after_flips(values: np.ndarray, count: int) -> float:
    return float(jensenshannon(_shares(values), _shares(_flip(values, count))))


def _z_after_flips(values: np.ndarray, count: int) -> float:
    p1, p2 = _shares(values)[1], _shares(_flip(values, count))[1]
    pooled = (p1 + p2) / 2  # equal sizes
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * 2 / values.size)
    return float(2 * norm.sf(abs(z)))
