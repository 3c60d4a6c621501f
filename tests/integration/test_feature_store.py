"""Point-in-time training sets through Feast end to end: the crm-features flow on a real Prefect server,
the shipped feature repository applied under a temporary project home, historical retrieval in process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from flows.config import load_config
from flows.features import crm_features, training_frame
from infra.home import ProjectHome
from models.data.crm import ACTIVITY_TYPES, generate_crm, label_spine, write_crm
from models.features.activity import AGGREGATES, EVENT_TIMESTAMP

from helpers.cli import home_variables

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "crm_feature_store.yaml"
COUNTS = list(AGGREGATES)
ATTRIBUTES = ["company_size", "deal_size"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, prefect_server: str):
    """A generated CRM source (1,000 leads over 3 months) and the project home the repository writes to."""
    root = tmp_path_factory.mktemp("feature-store")
    home = ProjectHome(root / "home")
    with pytest.MonkeyPatch.context() as environment:
        for key, value in home_variables(home).items():
            environment.setenv(key, value)
        source = generate_crm(1000, seed=21, months=3)
        spine = label_spine(source, seed=21)
        write_crm(source, spine, root / "crm")
        yield {"root": root, "home": home, "source": source, "spine": spine}


def _frame(store, source_dir: Path) -> pd.DataFrame:
    overrides = {
        "data.path": str(store["root"] / "crm" / "spine.parquet"),
        "feature_store.source": str(source_dir),
    }
    config = load_config(CONFIG, home=store["home"].root, overrides=overrides)
    return training_frame(config).data


def _auc(frame: pd.DataFrame) -> float:
    features = np.log1p(frame[[*ATTRIBUTES, *COUNTS]].to_numpy(dtype=float))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return float(cross_val_score(model, features, frame["converted"], scoring="roc_auc", cv=5).mean())


def test_crm_features_flow_writes_the_tables_and_applies_the_repository(store) -> None:
    refresh = crm_features(str(REPO / "feature_repo" / "crm"), str(store["root"] / "crm"))
    assert refresh.leads == 1000 and refresh.activity_rows > 1000 * 30
    assert refresh.activity_table.is_relative_to(store["home"].root)
    assert {"lead", "lead_attributes", "lead_activity", "lead_recency", "crm_lead_scoring"} <= set(
        refresh.applied
    )


def test_no_activity_after_a_rows_as_of_reaches_it_and_a_naive_join_leaks(store) -> None:
    spine: pd.DataFrame = store["spine"]
    frame = _frame(store, store["root"] / "crm")
    assert list(frame["lead_id"]) == list(spine["lead_id"])  # the spine's rows, in its order
    assert frame["days_since_last_touch"].min() >= 0

    # Sentinels: bursts of every activity type from one second after each row's as-of time on.
    offsets = pd.to_timedelta([1, 600, 3600 * 20, 86_400 * 2, 86_400 * 9], unit="s")
    sentinels = pd.DataFrame(
        [
            (lead, as_of + offset, kind, 1e6)
            for lead, as_of in zip(spine["lead_id"], spine["as_of"], strict=True)
            for offset in offsets
            for kind in ACTIVITY_TYPES
        ],
        columns=["lead_id", "timestamp", "type", "value"],
    )
    source = store["source"]
    leaked_source = store["root"] / "crm-with-sentinels"
    leaked_source.mkdir()
    source.leads.to_parquet(leaked_source / "leads.parquet")
    source.outcomes.to_parquet(leaked_source / "outcomes.parquet")
    pd.concat([source.activities, sentinels]).to_parquet(leaked_source / "activities.parquet")
    table = store["home"].root / "features" / "crm" / "lead_activity.parquet"
    naive_before = _naive_join(pd.read_parquet(table), source.leads, spine)

    leaked = _frame(store, leaked_source)
    pd.testing.assert_frame_equal(frame, leaked)  # not one feature of any row moved
    naive_after = _naive_join(pd.read_parquet(table), source.leads, spine)
    assert (naive_after["touches_90d"] > naive_before["touches_90d"]).all()  # the naive join took them all

    pit, naive = _auc(frame), _auc(naive_before)
    print(
        f"\nlogistic regression, 5-fold ROC AUC: point-in-time {pit:.4f}, naive latest-value join {naive:.4f}"
    )
    assert naive > pit + 0.05, "the naive join's leakage should inflate its offline AUC"


def _naive_join(table: pd.DataFrame, leads: pd.DataFrame, spine: pd.DataFrame) -> pd.DataFrame:
    """What a hand-built training table often does: each lead's latest values, whatever the as-of time."""
    latest = table.sort_values(EVENT_TIMESTAMP).groupby("lead_id").tail(1)[["lead_id", *COUNTS]]
    return spine.merge(leads[["lead_id", *ATTRIBUTES]], on="lead_id").merge(latest, on="lead_id")
