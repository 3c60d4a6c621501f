"""Role inference: ids, targets, numerics with blank tokens, dates, high-cardinality text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.data.profile import ProfileError, profile_frame


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
