"""Role inference (ids, targets, numerics with blank tokens, dates, high-cardinality text) and what would not
hold in production: possible target leakage, identifiers, constant columns, placeholders for missing values."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console

from flows.cli.data import print_profile
from flows.scaffold import write_scaffold
from models.data.config import LeakageConfig
from models.data.leakage import leakage_report, single_feature_auc
from models.data.profile import DataProfile, ProfileError, check_leakage, profile_frame
from models.seeds import Seeds

from helpers.tables import PLANTED, planted_table


def _frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    total = rng.uniform(10, 100, n).round(2).astype(str).astype(object)
    total[[3, 50]] = " "
    return pd.DataFrame(
        {
            "customerID": [f"C{i:05d}" for i in range(n)],
            "tenure": rng.integers(0, 72, n),
            "Contract": rng.choice(["Month-to-month", "One year", "Two year"], n),
            "TotalCharges": total,
            "signup": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "notes": [f"free text {i}" for i in range(n)],
            "Churn": rng.choice(["Yes", "No"], n),
        }
    )


def test_roles_and_issues() -> None:
    profile = profile_frame(_frame(), "Churn")
    roles = {c.name: c.role for c in profile.columns}
    assert roles == {
        "customerID": "id",
        "tenure": "numeric",
        "Contract": "categorical",
        "TotalCharges": "numeric",
        "signup": "datetime",
        "notes": "ignored",
        "Churn": "target",
    }
    assert profile.positive_class == "Yes"
    assert profile.na_values == [" "]
    assert any("TotalCharges" in issue for issue in profile.issues), "blank tokens must be reported"
    assert any("notes" in issue for issue in profile.issues)


def test_non_numeric_garbage_is_reported_not_guessed() -> None:
    df = _frame()
    df.loc[7, "TotalCharges"] = "abc"
    profile = profile_frame(df, "Churn")
    column = next(c for c in profile.columns if c.name == "TotalCharges")
    assert column.role == "ignored" and "abc" in column.note


def test_numeric_labels_pick_one() -> None:
    df = _frame().assign(Churn=lambda d: (d["Churn"] == "Yes").astype(int))
    assert profile_frame(df, "Churn").positive_class == 1


def test_target_errors() -> None:
    with pytest.raises(ProfileError, match="not found"):
        profile_frame(_frame(), "churn")
    with pytest.raises(ProfileError, match="exactly 2 values"):
        profile_frame(_frame(), "Contract")


# --- what would not hold in production: leakage, identifiers, constants, placeholders -------------------

LEAKAGE = LeakageConfig()


@pytest.fixture(scope="module")
def planted() -> DataProfile:
    """The profile of a generated table with every flaw planted, as `mlops data profile` computes it."""
    df = planted_table()
    profile = profile_frame(df, PLANTED.target)
    masked = df.mask(df.isin(profile.na_values))  # as the pipeline reads it: the placeholder missing
    return check_leakage(profile, masked, LEAKAGE, seed=Seeds.from_root(7).leakage)


def test_the_post_outcome_column_is_flagged_as_possible_leakage_and_no_honest_column(planted) -> None:
    report = planted.leakage
    assert report is not None and [f.feature for f in report.flagged] == [PLANTED.leak]
    leak = planted.column(PLANTED.leak)
    assert leak.flag == "leakage?" and "is this value known when the prediction is made?" in leak.note
    honest = [*PLANTED.numeric, *PLANTED.categorical]
    assert all(report.of(name).auc < LEAKAGE.single_feature_auc for name in honest)
    assert all(not planted.column(name).flag.startswith("leakage") for name in honest)


def test_identifiers_constants_and_placeholders_are_handled(planted) -> None:
    assert planted.id_column == PLANTED.id_column
    assert planted.column(PLANTED.record_number).role == "id"
    assert planted.excluded == [PLANTED.record_number, *PLANTED.constants, PLANTED.near_constant]
    assert {planted.column(c).flag for c in PLANTED.constants} == {"constant"}
    assert planted.column(PLANTED.near_constant).flag == "near-constant"
    assert planted.na_values == [PLANTED.placeholder]
    [placeholder] = planted.placeholders
    assert list(placeholder.columns) == list(PLANTED.placeholder_columns)
    assert placeholder.dominant_in == ["specialization"]
    assert all(planted.column(c).null_rate > 0.05 for c in PLANTED.placeholder_columns)
    assert any("--not-missing 'Select'" in issue for issue in planted.issues)
    # Every column has a place in the written config: target, id column, a feature or features.exclude.
    placed = [planted.target, planted.id_column, *planted.features, *planted.excluded]
    assert sorted(placed) == sorted(planted_table(20).columns)


def test_a_placeholder_is_proposed_only_when_widespread_or_dominant() -> None:
    rng = np.random.default_rng(1)
    n = 1_000

    def column(token: str, share: float) -> np.ndarray:
        values = rng.choice(["a", "b", "c", "d", "e"], n).astype(object)
        values[: int(share * n)] = token
        return values

    df = pd.DataFrame(
        {"y": rng.integers(0, 2, n), "one": column("unknown", 0.05), "two": column("none", 0.03)}
    )
    assert profile_frame(df, "y").na_values == []  # each in one column, not its commonest value
    df["three"] = column("none", 0.02)
    assert profile_frame(df, "y").na_values == ["none"]  # in two columns
    assert profile_frame(df, "y", not_missing=["none"]).na_values == []  # a person said it is an answer
    df["four"] = column("-- Select --", 0.4)
    assert profile_frame(df.drop(columns=["two", "three"]), "y").na_values == ["-- Select --"]  # dominant


def test_a_distinct_integer_is_an_identifier_only_when_it_looks_like_a_record_number() -> None:
    rng = np.random.default_rng(2)
    n = 2_000
    df = pd.DataFrame(
        {
            "record": 600_000 + rng.permutation(n),  # dense: every number of a range a little wider than n
            "revenue": rng.choice(10**8, n, replace=False),  # distinct too, but spread over 50,000 n
            "visits": rng.integers(0, 10 * n, n),  # a range of 10 n repeats values in about 5% of rows
            "y": rng.integers(0, 2, n),
        }
    )
    profile = profile_frame(df, "y")
    assert [c.role for c in profile.columns] == ["id", "numeric", "numeric", "target"]
    assert profile.id_column == "record" and profile.excluded == []


def test_the_one_feature_auc_cannot_memorise_a_column_distinct_per_row() -> None:
    rng = np.random.default_rng(3)
    n = 4_000
    y = rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "row_key": [f"k{i}" for i in range(n)],  # would fit every label in sample
            "copy": np.where(y == 1, "won", "lost"),  # the label itself
            "signal": y + rng.normal(0, 1.5, n),
        }
    )
    aucs, rows = single_feature_auc(
        frame, y, numeric=["signal"], categorical=["row_key", "copy"], folds=5, max_rows=n, seed=1
    )
    assert rows == n
    assert aucs["row_key"] == pytest.approx(0.5)
    assert aucs["copy"] == pytest.approx(1.0)
    assert 0.6 < aucs["signal"] < 0.75  # the same figure sklearn's AUC of the signal itself gives, binned
    sampled, rows = single_feature_auc(
        frame, y, numeric=["signal"], categorical=[], folds=5, max_rows=1_000, seed=1
    )
    assert rows == 1_000 and sampled["signal"] == pytest.approx(aucs["signal"], abs=0.05)


def test_confirmed_features_are_shown_but_not_flagged(planted) -> None:
    aucs = {f.feature: f.auc for f in planted.leakage.features}
    confirmed = LeakageConfig(confirmed_safe=[PLANTED.leak])
    report = leakage_report(aucs, confirmed, target=PLANTED.target, rows=planted.rows)
    assert report.flagged == [] and [f.feature for f in report.confirmed] == [PLANTED.leak]
    assert report.human_reason() is None
    assert "confirmed safe in the config: sales_tag" in report.markdown()


def test_the_written_config_marks_each_finding_next_to_its_column(planted, tmp_path: Path) -> None:
    data = tmp_path / "leads.csv"
    result = write_scaffold(
        {"name": "s"}, planted, data_path=data, out_dir=tmp_path / "p", delimiter=",", name="leads"
    )
    text = result.config_path.read_text()
    lines = {line.split("#")[0].strip(): line for line in text.splitlines() if line.lstrip().startswith("- ")}
    assert "possible target leakage" in lines[f"- {PLANTED.leak}"]
    assert "is this value known when the prediction is made?" in lines[f"- {PLANTED.leak}"].lower()
    assert all("#" not in lines[f"- {name}"] for name in PLANTED.numeric)
    assert "identifier" in lines[f"- {PLANTED.record_number}"]
    assert "constant: 'No' in every row" in lines["- magazine"]
    assert "near-constant" in lines[f"- {PLANTED.near_constant}"]
    assert (
        "proposed" in lines[f"- {PLANTED.placeholder}"]
        and "--not-missing" in lines[f"- {PLANTED.placeholder}"]
    )
    assert '#   confirmed_safe: ["sales_tag"]' in text
    raw = yaml.safe_load(text)  # the comments leave the YAML as written
    assert raw["features"]["exclude"] == planted.excluded and raw["data"]["na_values"] == ["Select"]
    assert result.config.features.exclude == planted.excluded
    assert result.config.leakage == LEAKAGE  # not written: the defaults the profile held the features to


def test_profile_notes_read_whole_at_a_narrow_terminal(planted) -> None:
    buffer = io.StringIO()
    print_profile(planted, "leads.csv: 2,000 rows", Console(file=buffer, width=60, color_system=None))
    printed = buffer.getvalue()
    assert max(len(line) for line in printed.splitlines()) <= 60 and "…" not in printed  # no cell cut either
    flat = " ".join(printed.split())
    for issue in planted.issues:
        assert " ".join(issue.split()) in flat, issue  # wrapped between words, never cut
    assert "possible target leakage in sales_tag" in flat


def test_a_numeric_column_holding_the_placeholder_stays_numeric() -> None:
    df = planted_table(500)
    df["age"] = np.where(df.index % 7 == 0, PLANTED.placeholder, (20 + df.index % 40).astype(str))
    profile = profile_frame(df, PLANTED.target)
    age = profile.column("age")
    assert (age.role, age.flag) == ("numeric", "blanks") and "'Select'" in age.note
    assert profile.na_values == [PLANTED.placeholder]
