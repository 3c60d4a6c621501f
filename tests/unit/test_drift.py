"""Unit tests for monitoring.drift: hand-checkable scores, Evidently's choice of test, verdicts, errors.

Parity with Evidently itself is in tests/integration/test_drift_parity.py; these run without it.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.stats import chisquare, ks_2samp, wasserstein_distance

from monitoring.config import EVIDENTLY_DEFAULT_THRESHOLDS, MonitoringConfig
from monitoring.drift import ColumnDrift, DriftInputError, DriftReport, choose_stattest, detect_drift

DEFAULTS = MonitoringConfig()


def one(
    reference: pd.Series | list,
    current: pd.Series | list,
    kind: str = "numeric",
    config: MonitoringConfig = DEFAULTS,
) -> ColumnDrift:
    """Drift of a single column named "x"."""
    ref, cur = pd.DataFrame({"x": reference}), pd.DataFrame({"x": current})
    columns = (
        {"numeric": ["x"], "categorical": []} if kind == "numeric" else {"numeric": [], "categorical": ["x"]}
    )
    return detect_drift(ref, cur, config=config, **columns).columns[0]


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


# --- which test -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reference_rows", "n_values", "expected"),
    [
        ("numeric", 1000, 6, "ks"),
        ("numeric", 1000, 5, "chisquare"),
        ("numeric", 1000, 3, "chisquare"),
        ("numeric", 1000, 2, "z"),
        ("numeric", 1001, 6, "wasserstein"),
        ("numeric", 1001, 5, "jensenshannon"),
        ("numeric", 1001, 2, "jensenshannon"),
        ("categorical", 1000, 3, "chisquare"),
        ("categorical", 1000, 2, "z"),
        ("categorical", 1000, 1, "z"),
        ("categorical", 1001, 50, "jensenshannon"),
        ("categorical", 1001, 2, "jensenshannon"),
    ],
)
def test_choice_of_test_follows_evidently(
    kind: str, reference_rows: int, n_values: int, expected: str
) -> None:
    assert choose_stattest(kind, reference_rows, n_values) == expected  # type: ignore[arg-type]


def test_method_depends_on_reference_size_not_current_size(rng: np.random.Generator) -> None:
    small = one(rng.normal(size=1000), rng.normal(size=5000))
    large = one(rng.normal(size=1001), rng.normal(size=50))
    assert (small.method, small.threshold) == ("K-S p_value", 0.05)
    assert (large.method, large.threshold) == ("Wasserstein distance (normed)", 0.1)


def test_reference_size_counts_non_missing_rows_only(rng: np.random.Generator) -> None:
    reference = rng.normal(size=1001)
    reference[0] = np.nan  # 1000 usable rows: still the small-reference rule
    assert one(reference, rng.normal(size=2000)).method == "K-S p_value"


def test_distinct_values_count_both_sides(rng: np.random.Generator) -> None:
    reference = rng.integers(0, 5, 2000)  # 5 values: discrete
    assert one(reference, rng.integers(0, 5, 2000)).method == "Jensen-Shannon distance"
    assert one(reference, rng.integers(0, 6, 2000)).method == "Wasserstein distance (normed)"  # 6 together


def test_low_cardinality_numeric_is_tested_on_its_values(rng: np.random.Generator) -> None:
    assert one(rng.integers(0, 4, 500), rng.integers(0, 4, 500)).method == "chi-square p_value"
    assert one(rng.integers(0, 2, 500), rng.integers(0, 2, 500)).method == "Z-test p_value"
    assert one([True, False] * 250, [True, False] * 250).method == "Z-test p_value"  # bool is numeric


def test_categorical_methods(rng: np.random.Generator) -> None:
    labels = np.array(["a", "b", "c"], dtype=object)
    assert one(labels[rng.integers(0, 3, 800)], labels[rng.integers(0, 3, 800)], "categorical").method == (
        "chi-square p_value"
    )
    assert one(labels[rng.integers(0, 2, 800)], labels[rng.integers(0, 2, 800)], "categorical").method == (
        "Z-test p_value"
    )
    big = one(labels[rng.integers(0, 3, 3000)], labels[rng.integers(0, 3, 300)], "categorical")
    assert (big.method, big.threshold) == ("Jensen-Shannon distance", 0.1)


# --- scores -----------------------------------------------------------------------------------------


def test_identical_data_does_not_drift(rng: np.random.Generator) -> None:
    labels = np.array(["a", "b", "c", "d"], dtype=object)
    for size in (400, 4000):
        frame = pd.DataFrame(
            {
                "x": rng.normal(size=size),
                "few": rng.integers(0, 4, size),
                "binary": rng.integers(0, 2, size),
                "cat": labels[rng.integers(0, 4, size)],
                "pair": labels[rng.integers(0, 2, size)],
            }
        )
        report = detect_drift(
            frame, frame.copy(), numeric=["x", "few", "binary"], categorical=["cat", "pair"], config=DEFAULTS
        )
        assert report.drifted_columns == []
        assert (report.drifted_share, report.dataset_drift) == (0.0, False)
        for column in report.columns:
            expected = 1.0 if column.method.endswith("p_value") else 0.0
            assert column.score == pytest.approx(expected, abs=1e-12), column


def test_shifted_numeric_drifts(rng: np.random.Generator) -> None:
    reference = rng.normal(size=5000)
    shifted = one(reference, reference + 0.5)
    assert shifted.drifted
    assert shifted.score == pytest.approx(0.5 / np.std(reference), rel=1e-9)  # a pure shift moves W1 by 0.5
    small = one(reference[:300], reference[:300] + 0.5)
    assert small.method == "K-S p_value" and small.drifted and small.score < 1e-6


def test_wasserstein_matches_scipy_with_ties_and_unequal_sizes(rng: np.random.Generator) -> None:
    reference = rng.integers(0, 40, 3000).astype(float)  # many ties
    current = np.concatenate([rng.integers(5, 45, 7000), [0.25, 1e6]])
    expected = wasserstein_distance(reference, current) / np.std(reference)
    assert one(reference, current).score == pytest.approx(expected, rel=1e-12)


def test_wasserstein_norm_has_a_floor() -> None:
    reference = np.r_[np.zeros(1995), np.arange(1, 6) * 1e-6]  # std far below 0.001, 6 values
    current = reference + 1e-4
    assert one(reference, current).score == pytest.approx(1e-4 / 0.001, rel=1e-9)


def test_ks_is_scipys_two_sample_p_value(rng: np.random.Generator) -> None:
    reference, current = rng.normal(size=600), rng.normal(0.1, size=900)
    assert one(reference, current).score == pytest.approx(ks_2samp(reference, current).pvalue, rel=1e-12)


def test_chi_square_scales_reference_counts_to_current_rows() -> None:
    reference = ["a"] * 50 + ["b"] * 30 + ["c"] * 20  # 100 rows
    current = ["a"] * 90 + ["b"] * 70 + ["c"] * 40  # 200 rows: expected 100, 60, 40
    expected = chisquare([90, 70, 40], [100.0, 60.0, 40.0]).pvalue
    assert one(reference, current, "categorical").score == pytest.approx(expected, rel=1e-12)


def test_z_test_is_the_pooled_two_proportion_test() -> None:
    reference, current = ["no"] * 100 + ["yes"] * 100, ["no"] * 140 + ["yes"] * 60
    pooled = 160 / 400
    z = (0.5 - 0.3) / math.sqrt(pooled * (1 - pooled) * (1 / 200 + 1 / 200))
    result = one(reference, current, "categorical")
    assert result.score == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)
    assert result.drifted


def test_z_test_on_one_shared_value_is_one() -> None:
    assert one(["a"] * 10, ["a"] * 20, "categorical").score == 1.0


def test_jensen_shannon_by_hand() -> None:
    reference = ["a"] * 1000 + ["b"] * 1000  # shares 0.5, 0.5
    current = ["a"] * 3000  # shares 1, 0; mixture 0.75, 0.25
    kl_ref = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    kl_cur = math.log(1 / 0.75)
    result = one(reference, current, "categorical")
    assert result.score == pytest.approx(math.sqrt((kl_ref + kl_cur) / 2), rel=1e-12)
    assert result.drifted


# --- data quality figures -----------------------------------------------------------------------------


def test_new_category_rate_and_chi_square_verdict_on_unseen_values() -> None:
    reference = ["a", "b", "c"] * 100
    current = ["a", "b", "c"] * 75 + ["d"] * 70 + [None] * 5  # 300 non-missing, 70 new
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unseen value has expected count 0: no division warning
        result = one(reference, current, "categorical")
    assert result.new_category_rate == pytest.approx(70 / 295)
    assert (result.score, result.drifted) == (0.0, True)  # expected count 0: infinite statistic
    assert one(reference, reference, "categorical").new_category_rate == 0.0
    assert one([1.0, 2.0] * 600, [3.0] * 10).new_category_rate is None


def test_missing_rates_count_nan_none_and_infinities() -> None:
    reference = [1.0, 2.0, 3.0, np.nan] * 500  # 25% missing
    current = [1.0, 2.0, np.inf, -np.inf, None] * 200  # 60% dropped
    result = one(reference, current)
    assert (result.missing_rate_reference, result.missing_rate_current) == (
        pytest.approx(0.25),
        pytest.approx(0.6),
    )
    categorical = one(["a", None, "b", float("nan")] * 10, ["a", "b", np.inf] * 10, "categorical")
    assert categorical.missing_rate_reference == pytest.approx(0.5)
    assert categorical.missing_rate_current == pytest.approx(1 / 3)
    assert categorical.new_category_rate == 0.0  # inf is dropped, not a new category


def test_missing_values_do_not_enter_the_statistic(rng: np.random.Generator) -> None:
    reference, current = rng.normal(size=3000), rng.normal(0.2, size=3000)
    holed = current.copy()
    holed[::3] = np.nan
    assert one(reference, holed).score == pytest.approx(one(reference, current[np.isfinite(holed)]).score)


# --- thresholds and the dataset verdict ---------------------------------------------------------------


def test_threshold_override_changes_threshold_and_verdict(rng: np.random.Generator) -> None:
    reference = rng.normal(size=3000)
    current = reference + 0.15  # normed distance about 0.15
    assert one(reference, current).drifted
    relaxed = one(reference, current, config=MonitoringConfig(stattest_thresholds={"wasserstein": 0.2}))
    assert (relaxed.threshold, relaxed.drifted) == (0.2, False)
    untouched = one(
        reference[:500], current[:500], config=MonitoringConfig(stattest_thresholds={"wasserstein": 0.2})
    )
    assert untouched.threshold == EVIDENTLY_DEFAULT_THRESHOLDS["ks"]


def test_comparisons_at_the_threshold_follow_evidently(rng: np.random.Generator) -> None:
    reference = rng.normal(size=3000)
    at = one(reference, reference + 0.5)
    on_the_line = one(
        reference, reference + 0.5, config=MonitoringConfig(stattest_thresholds={"wasserstein": at.score})
    )
    assert on_the_line.drifted  # distances drift at score >= threshold
    small = one(reference[:300], reference[:300] + 0.1)
    ks_line = MonitoringConfig(stattest_thresholds={"ks": small.score})
    assert one(reference[:300], reference[:300] + 0.1, config=ks_line).drifted  # K-S: p <= threshold
    z = one(["a"] * 100 + ["b"] * 100, ["a"] * 140 + ["b"] * 60, "categorical")
    z_line = MonitoringConfig(stattest_thresholds={"z": z.score})
    assert not one(
        ["a"] * 100 + ["b"] * 100, ["a"] * 140 + ["b"] * 60, "categorical", z_line
    ).drifted  # p < thr


def test_config_rejects_unknown_tests_and_impossible_thresholds() -> None:
    with pytest.raises(ValidationError, match="unknown stat test"):
        MonitoringConfig(stattest_thresholds={"psi": 0.1})
    with pytest.raises(ValidationError, match=r"p-value.*\(0, 1\)"):
        MonitoringConfig(stattest_thresholds={"ks": 1.5})
    with pytest.raises(ValidationError, match="distance"):
        MonitoringConfig(stattest_thresholds={"jensenshannon": 0.0})
    assert MonitoringConfig().threshold_for("wasserstein") == 0.1


def test_dataset_drifts_when_share_reaches_drift_share(rng: np.random.Generator) -> None:
    reference = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    current = reference.assign(a=reference["a"] + 1.0)
    report = detect_drift(reference, current, numeric=["a", "b"], categorical=[], config=DEFAULTS)
    assert report.drifted_columns == ["a"]
    assert (report.drifted_share, report.dataset_drift) == (0.5, True)  # 0.5 >= 0.5
    strict = detect_drift(
        reference, current, numeric=["a", "b"], categorical=[], config=MonitoringConfig(drift_share=0.6)
    )
    assert not strict.dataset_drift


def test_score_column_is_reported_apart_from_the_share(rng: np.random.Generator) -> None:
    reference = pd.DataFrame({"a": rng.normal(size=2000), "score": rng.uniform(size=2000)})
    current = reference.assign(score=np.clip(reference["score"] + 0.3, 0, 1))
    report = detect_drift(
        reference, current, numeric=["a"], categorical=[], config=DEFAULTS, score_column="score"
    )
    assert report.prediction is not None and report.prediction.drifted
    assert report.prediction.kind == "numeric"
    assert (report.drifted_share, report.dataset_drift) == (0.0, False)


def test_report_serialises_to_strict_json_and_markdown(rng: np.random.Generator) -> None:
    reference = pd.DataFrame({"a": rng.normal(size=300), "c": ["x", "y"] * 150, "s": rng.uniform(size=300)})
    current = reference.assign(a=reference["a"] + 2.0, c=["x", "z"] * 150)
    report = detect_drift(
        reference, current, numeric=["a"], categorical=["c"], config=DEFAULTS, score_column="s"
    )
    assert isinstance(report, DriftReport)
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["columns"][1]["new_category_rate"] == 0.5
    assert payload["rows_reference"] == 300 and payload["prediction"]["column"] == "s"
    text = report.markdown()
    assert text.startswith("## Data drift detected")
    assert "| a | numeric | K-S p_value |" in text and "| s (model score) |" in text


def test_object_columns_of_numbers_are_numeric() -> None:
    reference = pd.Series([1, 2.5, None, 4] * 300, dtype=object)
    assert one(reference, [1.0, 2.5, 4.0] * 300).missing_rate_reference == pytest.approx(0.25)


# --- errors -----------------------------------------------------------------------------------------------


def test_missing_columns_are_named() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    with pytest.raises(
        DriftInputError,
        match=r"missing: from the reference data: \['s'\]; from the current data: \['b', 's'\]",
    ):
        detect_drift(frame, frame[["a"]], numeric=["a"], categorical=["b"], config=DEFAULTS, score_column="s")
    with pytest.raises(DriftInputError, match=r"missing: from the reference data: \['c'\]$"):
        detect_drift(frame, frame.assign(c=1), numeric=["c"], categorical=[], config=DEFAULTS)


def test_non_numeric_values_in_a_numeric_column_are_named() -> None:
    reference = pd.DataFrame({"deal": [1.0, 2.0, 3.0]})
    current = pd.DataFrame({"deal": [1.0, "n/a", 3.0]})
    with pytest.raises(DriftInputError, match=r"'deal' in the current data holds non-numeric values.*'n/a'"):
        detect_drift(reference, current, numeric=["deal"], categorical=[], config=DEFAULTS)


def test_zero_rows_and_empty_columns_are_refused() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(DriftInputError, match="current data has no rows"):
        detect_drift(frame, frame.iloc[:0], numeric=["a"], categorical=[], config=DEFAULTS)
    with pytest.raises(DriftInputError, match="reference data has no rows"):
        detect_drift(frame.iloc[:0], frame, numeric=["a"], categorical=[], config=DEFAULTS)
    with pytest.raises(DriftInputError, match="'a' has no non-missing value in the current data"):
        detect_drift(frame, frame.assign(a=np.nan), numeric=["a"], categorical=[], config=DEFAULTS)
    with pytest.raises(DriftInputError, match="'a' has no non-missing value in the reference data"):
        detect_drift(frame.assign(a=None), frame, numeric=[], categorical=["a"], config=DEFAULTS)


def test_column_lists_must_be_usable() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(DriftInputError, match="no feature columns"):
        detect_drift(frame, frame, numeric=[], categorical=[], config=DEFAULTS, score_column="a")
    with pytest.raises(DriftInputError, match=r"more than once.*\['a'\]"):
        detect_drift(frame, frame, numeric=["a"], categorical=["a"], config=DEFAULTS)
