"""The CRM source generator: deterministic, well-formed, and as messy in time as a real CRM."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.data.crm import ACTIVITY_TYPES, TABLES, generate_crm, label_spine, write_crm


@pytest.fixture(scope="module")
def source():
    return generate_crm(1500, seed=3, months=4)


def test_same_seed_same_source_other_seed_other_source(source) -> None:
    again = generate_crm(1500, seed=3, months=4)
    for name in ("leads", "activities", "outcomes"):
        pd.testing.assert_frame_equal(getattr(source, name), getattr(again, name))
    other = generate_crm(1500, seed=4, months=4)
    assert not source.activities.equals(other.activities)
    pd.testing.assert_frame_equal(label_spine(source, seed=9), label_spine(again, seed=9))


def test_schema(source) -> None:
    assert list(source.leads.columns) == [
        "lead_id",
        "created_at",
        "region",
        "lead_source",
        "plan",
        "industry",
        "company_size",
        "deal_size",
    ]
    assert source.leads["lead_id"].is_unique and source.leads["lead_id"].iloc[0] == "L000001"
    assert list(source.activities.columns) == ["lead_id", "timestamp", "type", "value"]
    assert set(source.activities["type"]) == set(ACTIVITY_TYPES)
    assert list(source.outcomes.columns) == ["lead_id", "converted", "decided_at"]
    assert set(source.outcomes["converted"]) == {0, 1}
    for times in (source.leads["created_at"], source.activities["timestamp"]):
        assert str(times.dt.tz) == "UTC" and times.max() < source.end
    # Every activity belongs to a lead and comes after its creation.
    joined = source.activities.merge(source.leads[["lead_id", "created_at"]], on="lead_id", validate="m:1")
    assert (joined["timestamp"] >= joined["created_at"]).all()


def test_activity_continues_after_the_decision(source) -> None:
    """What a naive join leaks: onboarding and customer activity after a conversion."""
    joined = source.activities.merge(source.outcomes, on="lead_id")
    after = joined[(joined["converted"] == 1) & (joined["timestamp"] > joined["decided_at"])]
    assert len(after) > 0.1 * len(joined)
    assert {"call", "meeting", "deal_update"} <= set(after["type"])


def test_spine_one_row_per_lead_with_labels_from_outcomes(source) -> None:
    spine = label_spine(source, seed=5, horizon_days=30)
    assert list(spine.columns) == ["lead_id", "as_of", "converted"]
    assert spine["lead_id"].is_unique and len(spine) > 0.7 * len(source.leads)
    rows = spine.merge(source.leads, on="lead_id").merge(
        source.outcomes, on="lead_id", suffixes=("", "_outcome")
    )
    assert (rows["as_of"] >= rows["created_at"] + pd.Timedelta(days=1)).all()
    decided = rows["decided_at"].notna()
    assert (rows.loc[decided, "as_of"] < rows.loc[decided, "decided_at"]).all()
    assert (rows["as_of"] <= source.end - pd.Timedelta(days=30)).all()  # every label window was observed
    expected = (rows["converted_outcome"] == 1) & (
        rows["decided_at"] <= rows["as_of"] + pd.Timedelta(days=30)
    )
    assert (rows["converted"] == expected.astype(int)).all()
    assert 0.1 < spine["converted"].mean() < 0.6


def test_write_crm_writes_every_table(source, tmp_path: Path) -> None:
    spine = label_spine(source, seed=5)
    paths = write_crm(source, spine, tmp_path / "crm")
    assert sorted(paths) == sorted(TABLES)
    pd.testing.assert_frame_equal(pd.read_parquet(paths["spine"]), spine)
    assert len(pd.read_parquet(paths["activities"])) == len(source.activities)
