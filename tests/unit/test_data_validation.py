import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.data.suite import SuiteError, build_starter_suite, load_suite
from models.data.validation import FailedExpectation, ValidationReport, validate_frame

NUMERIC = ["age", "balance", "tenure_months"]
CATEGORICAL = ["plan", "region"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 200
    df = pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "age": rng.integers(18, 80, n).astype(float),
            "balance": rng.normal(500.0, 120.0, n).round(2),
            "tenure_months": rng.integers(0, 120, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "signup_date": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
            "churned": rng.integers(0, 2, n),
        }
    )
    df.loc[[3, 17, 41], "age"] = np.nan
    df.loc[[5, 90], "balance"] = np.nan
    return df


@pytest.fixture(scope="module")
def suite(frame: pd.DataFrame) -> dict:
    return build_starter_suite(
        frame,
        name="customers",
        id_column="customer_id",
        target="churned",
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        datetime=["signup_date"],
    )


def failures(report: ValidationReport, expectation: str | None = None) -> list[FailedExpectation]:
    assert report.success is False
    return [f for f in report.failed if expectation is None or f.expectation == expectation]


def test_clean_frame_passes(frame: pd.DataFrame, suite: dict) -> None:
    report = validate_frame(frame, suite)
    assert report.success, report.summary()
    assert report.failed == []
    assert report.row_count == len(frame)
    assert report.evaluated == len(suite["expectations"])
    assert report.docs_path is None


def test_starter_suite_shape(frame: pd.DataFrame, suite: dict) -> None:
    by_key = {(e["type"], e["kwargs"].get("column")): e["kwargs"] for e in suite["expectations"]}
    assert "id" not in suite and all("id" not in e for e in suite["expectations"])
    assert "edit" in suite["meta"]["note"]
    assert by_key[("expect_table_columns_to_match_set", None)]["column_set"] == list(frame.columns)
    assert by_key[("expect_table_row_count_to_be_between", None)]["min_value"] == 50
    assert by_key[("expect_column_values_to_not_be_null", "customer_id")]["mostly"] == 1.0
    assert by_key[("expect_column_values_to_not_be_null", "churned")]["mostly"] == 1.0
    # 3 of 200 null: 1 - (0.015 * 1.5 + 0.01) = 0.9675
    assert by_key[("expect_column_values_to_not_be_null", "age")]["mostly"] == pytest.approx(0.967)
    tenure = by_key[("expect_column_values_to_be_between", "tenure_months")]
    assert isinstance(tenure["min_value"], int) and isinstance(tenure["max_value"], int)
    assert (
        tenure["min_value"] <= frame["tenure_months"].min()
        and tenure["max_value"] >= frame["tenure_months"].max()
    )
    assert by_key[("expect_column_values_to_be_in_set", "plan")]["value_set"] == ["basic", "plus", "pro"]
    assert by_key[("expect_column_values_to_be_in_set", "churned")]["value_set"] == [0, 1]
    assert ("expect_column_values_to_be_unique", "customer_id") in by_key
    json.dumps(suite)


def test_missing_column_is_a_failure_not_an_error(frame: pd.DataFrame, suite: dict) -> None:
    report = validate_frame(frame.drop(columns=["balance"]), suite)
    missing = [f for f in failures(report) if f.column == "balance"]
    assert missing and all(f.detail == "missing column" for f in missing)
    (table,) = failures(report, "expect_table_columns_to_match_set")
    assert "missing: balance" in table.detail


def test_extra_column(frame: pd.DataFrame, suite: dict) -> None:
    report = validate_frame(frame.assign(extra_col=1), suite)
    (table,) = failures(report)
    assert table.expectation == "expect_table_columns_to_match_set"
    assert table.sample_values == ["extra_col"]
    assert "columns not in the suite: extra_col" in table.detail


def test_nulls_above_allowed_rate(frame: pd.DataFrame, suite: dict) -> None:
    df = frame.copy()
    df.loc[df.index[100:160], "balance"] = np.nan  # plus the fixture's own 2: 62 of 200
    (null,) = failures(validate_frame(df, suite), "expect_column_values_to_not_be_null")
    assert null.column == "balance"
    assert null.unexpected_count == 62
    assert null.detail == "null rate 31.0% above allowed 2.5%"


def test_out_of_range_value(frame: pd.DataFrame, suite: dict) -> None:
    df = frame.copy()
    df.loc[0, "tenure_months"] = 10_000
    (out,) = failures(validate_frame(df, suite))
    assert (out.expectation, out.column) == ("expect_column_values_to_be_between", "tenure_months")
    assert out.sample_values == [10_000]
    assert out.unexpected_count == 1


def test_unknown_category(frame: pd.DataFrame, suite: dict) -> None:
    df = frame.copy()
    df.loc[[0, 1], "plan"] = "platinum"
    (bad,) = failures(validate_frame(df, suite))
    assert (bad.expectation, bad.column) == ("expect_column_values_to_be_in_set", "plan")
    assert bad.sample_values == ["platinum"]
    assert bad.detail == "unexpected values"


def test_duplicate_ids(frame: pd.DataFrame, suite: dict) -> None:
    df = frame.copy()
    df.loc[1, "customer_id"] = df.loc[0, "customer_id"]
    (dup,) = failures(validate_frame(df, suite))
    assert (dup.expectation, dup.column) == ("expect_column_values_to_be_unique", "customer_id")
    assert dup.sample_values == [1000]


def test_a_failed_pair_expectation_names_both_columns(frame: pd.DataFrame) -> None:
    pair = {
        "type": "expect_column_pair_values_a_to_be_greater_than_b",
        "kwargs": {"column_A": "balance", "column_B": "age", "or_equal": True},
        "meta": {},
    }
    df = frame.assign(balance=frame["balance"].fillna(0.0), age=frame["age"].fillna(0.0))
    df.loc[4, "balance"] = -1.0
    (bad,) = validate_frame(df, {"name": "pair", "expectations": [pair]}).failed
    assert (bad.expectation, bad.column) == (pair["type"], "balance, age")
    assert bad.detail == "balance < age in some rows"
    (missing,) = validate_frame(df.drop(columns=["age"]), {"name": "pair", "expectations": [pair]}).failed
    assert missing.detail == "missing column"


@pytest.mark.parametrize("junk", ["unknown", " "], ids=["strings", "blank"])
def test_strings_in_numeric_column(frame: pd.DataFrame, suite: dict, junk: str) -> None:
    df = frame.copy()
    df["age"] = df["age"].astype(object)
    df.loc[[2, 8], "age"] = junk
    report = validate_frame(df, suite)
    assert {f.column for f in failures(report)} == {"age"}
    (typed,) = failures(report, "expect_column_values_to_be_in_type_list")
    assert typed.sample_values == [junk]
    assert typed.unexpected_count == 2
    assert "2 value(s) are not numbers" in typed.detail and "observed dtype object" in typed.detail


def test_suite_round_trips_through_a_file(tmp_path: Path, frame: pd.DataFrame, suite: dict) -> None:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite, indent=2))
    loaded = load_suite(path)
    assert loaded == suite
    assert validate_frame(frame, loaded).success


def test_unknown_expectation_type_is_named(tmp_path: Path, suite: dict) -> None:
    broken = {
        **suite,
        "expectations": [*suite["expectations"], {"type": "expect_column_to_be_nice", "kwargs": {}}],
    }
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(SuiteError, match="expect_column_to_be_nice") as info:
        load_suite(path)
    assert str(path) in str(info.value)


def test_invalid_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "suite.json"
    bad.write_text('{"name": "x", "expectations": [')
    with pytest.raises(SuiteError, match="not valid JSON"):
        load_suite(bad)
    with pytest.raises(SuiteError, match="cannot read"):
        load_suite(tmp_path / "absent.json")


def test_data_docs_written(tmp_path: Path, frame: pd.DataFrame, suite: dict) -> None:
    docs = tmp_path / "docs"
    report = validate_frame(frame, suite, docs_dir=docs)
    assert report.success
    assert report.docs_path == str(docs / "index.html")
    assert (docs / "index.html").is_file()


def test_report_to_dict_is_json_safe(frame: pd.DataFrame, suite: dict) -> None:
    df = frame.copy()
    df.loc[0, "tenure_months"] = 10_000
    df.loc[0, "plan"] = "platinum"
    report = validate_frame(df, suite)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["success"] is False
    assert {f["column"] for f in data["failed"]} == {"tenure_months", "plan"}
    assert "FAILED" in report.summary() and "\n" not in report.summary()


def test_validation_is_quiet(capfd: pytest.CaptureFixture[str], frame: pd.DataFrame, suite: dict) -> None:
    level = logging.getLogger("great_expectations").level
    validate_frame(frame.drop(columns=["plan"]), suite)
    out, err = capfd.readouterr()
    assert "Calculating Metrics" not in err and out == ""
    assert logging.getLogger("great_expectations").level == level
