"""Point-in-time training sets through Feast end to end: the crm-features flow on a real Prefect server,
the shipped feature repository applied under a temporary project home, historical retrieval in process;
materialisation into the online store, checked against the historical retrieval at the same time."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from flows.config import load_config
from flows.features import Materialization, crm_features, materialize_features, training_frame
from infra.home import ProjectHome
from models.data.crm import ACTIVITY_TYPES, generate_crm, label_spine, write_crm
from models.features.activity import AGGREGATES, EVENT_TIMESTAMP
from models.features.materialization import last_materialization, read_records

from helpers.cli import home_variables, mlops_in_process

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "crm_feature_store.yaml"
FEATURE_REPO = REPO / "feature_repo" / "crm"
TTL = {"lead_attributes": timedelta(days=3650), "lead_activity": timedelta(days=2)}  # definitions.py
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
    assert Path(refresh.activity_table).is_relative_to(store["home"].root)
    assert {"lead", "lead_attributes", "lead_activity", "lead_recency", "crm_lead_scoring"} <= set(
        refresh.applied
    )


def test_a_file_of_ids_gets_the_service_features_as_of_its_time(store) -> None:
    """What `mlops batch --at` scores: a file's rows keep their columns and gain the service's features as of
    ``at`` (a row's own as_of wins), equal to the training frame's retrieval; unknown ids are named."""
    from models.errors import UserInputError
    from tasks.feature_store import features_by_id, historical_frame

    crm_features(str(FEATURE_REPO), str(store["root"] / "crm"))
    spine: pd.DataFrame = store["spine"].head(6)
    at = spine["as_of"].max().to_pydatetime()
    own = spine["as_of"].iloc[0]
    rows = pd.DataFrame({"lead_id": spine["lead_id"], "campaign": "spring"}).reset_index(drop=True)
    rows["as_of"] = [own, *([pd.NaT] * 5)]
    rows["as_of"] = rows["as_of"].fillna(pd.Timestamp(at))
    scored = features_by_id.fn(FEATURE_REPO, rows, "crm_lead_scoring", "lead_id", at)
    expected = historical_frame.fn(
        FEATURE_REPO, spine.assign(as_of=rows["as_of"].to_numpy()), "crm_lead_scoring", "as_of"
    ).data
    features = [c for c in scored.columns if c not in rows.columns]
    assert len(features) == 18 and "created_at" not in features  # the service's, not the on-demand inputs
    assert list(scored["campaign"]) == ["spring"] * 6
    pd.testing.assert_frame_equal(scored[features], expected[features], check_dtype=False)

    for ids in (["L-unknown"], [spine["lead_id"].iloc[0], "L-unknown"]):  # alone, or beside a known lead
        with pytest.raises(UserInputError, match="L-unknown"):
            features_by_id.fn(FEATURE_REPO, pd.DataFrame({"lead_id": ids}), "crm_lead_scoring", "lead_id", at)


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


# Materialisation. Each test has a project home of its own: the registry's materialisation intervals and the
# online store start empty whatever ran before, in whatever order.


@pytest.fixture
def online_home(store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectHome:
    home = ProjectHome(tmp_path / "home")
    for key, value in home_variables(home).items():
        monkeypatch.setenv(key, value)
    return home


def _materialize_config(path: Path, source: Path) -> Path:
    """The shipped config reading ``source``, its suite and repository by absolute path."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["feature_store"].update(
        repo=str(FEATURE_REPO),
        source=str(source),
        expectations=str(CONFIG.with_name(raw["feature_store"]["expectations"])),
    )
    path.write_text(yaml.safe_dump(raw))
    return path


def _online(leads: list[str], at: datetime) -> pd.DataFrame:
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(FEATURE_REPO))
    rows = [{"lead_id": lead, "as_of": at} for lead in leads]
    service = store.get_feature_service("crm_lead_scoring")
    frame = store.get_online_features(features=service, entity_rows=rows).to_df()
    return frame.set_index("lead_id").sort_index(axis=1)


def _historical(leads: list[str], at: datetime) -> pd.DataFrame:
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(FEATURE_REPO))
    entities = pd.DataFrame({"lead_id": leads, EVENT_TIMESTAMP: at, "as_of": at})
    service = store.get_feature_service("crm_lead_scoring")
    frame = store.get_historical_features(entity_df=entities, features=service).to_df()
    return frame.drop(columns=[EVENT_TIMESTAMP, "as_of"]).set_index("lead_id").sort_index(axis=1)


def _assert_online_equals_historical(leads: list[str], at: datetime) -> None:
    online, historical = _online(leads, at), _historical(leads, at).loc[leads]
    assert online.notna().all().all(), online[online.isna().any(axis=1)]
    # The historical frame also carries the on-demand view's inputs (created_at, last_touch_at).
    assert set(online.columns) <= set(historical.columns), set(online.columns) - set(historical.columns)
    pd.testing.assert_frame_equal(online, historical[online.columns], check_dtype=False, rtol=1e-9)


def _assert_the_service_lookup_reads_the_same(leads: list[str], at: datetime) -> None:
    """The service's own lookup (`serving.features`, what scoring by id reads) equals the historical frame,
    flags nothing at ``at``, flags the daily view stale three days later (refused under the refuse policy), and
    refuses an unknown lead with a 404 naming its row."""
    from serving.features import LookupRefused, OnlineFeatures, stale_rows
    from tasks.feature_store import feature_lookup

    lookup = OnlineFeatures.load(feature_lookup(FEATURE_REPO, "crm_lead_scoring", "lead_id"))
    completed = lookup.complete([{"lead_id": lead} for lead in leads], at)
    served = pd.DataFrame(completed.rows).set_index("lead_id").sort_index(axis=1)
    assert set(served.columns) == lookup.features
    historical = _historical(leads, at).loc[leads]
    pd.testing.assert_frame_equal(served, historical[served.columns], check_dtype=False, rtol=1e-9)
    assert completed.flags == [[] for _ in leads] and stale_rows(completed, "lead_id") is None
    assert all(set(ages) == {"lead_activity", "lead_attributes"} for ages in completed.ages)

    later = lookup.complete(
        [{"lead_id": leads[0]}, {"lead_id": leads[1], "touches_7d": 99}], at + timedelta(days=3)
    )
    assert later.flags == [["stale:lead_activity"], ["stale:lead_activity"]]
    assert later.rows[1]["touches_7d"] == 99  # what a row carries wins over the store
    refusal = stale_rows(later, "lead_id")
    assert refusal is not None and refusal.status == 422
    assert [d["loc"] for d in refusal.body()["detail"]] == [["rows", 0, "lead_id"], ["rows", 1, "lead_id"]]

    with pytest.raises(LookupRefused) as unknown:
        lookup.complete([{"lead_id": leads[0]}, {"lead_id": "L-unknown"}], at)
    assert unknown.value.status == 404
    assert unknown.value.body()["detail"] == [
        {
            "type": "unknown_entity",
            "loc": ["rows", 1, "lead_id"],
            "msg": "no features for lead_id 'L-unknown' in any view of crm_lead_scoring",
        }
    ]


def _intervals(view: str) -> list[tuple[datetime, datetime]]:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(FEATURE_REPO)).get_feature_view(view).materialization_intervals


def _leads_in(table: Path, column: str, start: datetime, end: datetime) -> int:
    """Independently of the flow: the leads with a row in [start, end]."""
    frame = pd.read_parquet(table)
    times = pd.to_datetime(frame[column], utc=True)
    return frame.loc[(times >= start) & (times <= end), "lead_id"].nunique()


def test_materialize_writes_what_history_reads_then_only_the_new_interval(
    store, online_home, tmp_path
) -> None:
    config = _materialize_config(tmp_path / "crm.yaml", store["root"] / "crm")
    end = store["source"].end.to_pydatetime()
    backfill = end - timedelta(days=10)
    leads: pd.DataFrame = store["source"].leads
    sample = leads.loc[leads["created_at"] < backfill - timedelta(days=2), "lead_id"].iloc[::40].tolist()
    tables = online_home.features / "crm"

    first: Materialization = materialize_features(str(config), backfill)
    # A view's first run reaches back its ttl from the end (Feast's own first start, now - ttl, is 2026 here).
    assert {v: (w.start, w.end) for v, w in first.record.views.items()} == {
        view: (backfill - ttl, backfill) for view, ttl in TTL.items()
    }
    assert first.record.views["lead_attributes"].rows == (leads["created_at"] <= backfill).sum()
    activity_rows = _leads_in(
        tables / "lead_activity.parquet", EVENT_TIMESTAMP, backfill - TTL["lead_activity"], backfill
    )
    assert first.record.views["lead_activity"].rows == activity_rows > 0
    assert first.record_path == online_home.materializations("mlops_crm")
    assert read_records(first.record_path) == [first.record]
    assert first.journal_mode == "wal"
    with sqlite3.connect(tables / "online.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    _assert_online_equals_historical(sample, backfill)

    second: Materialization = materialize_features(str(config), end)
    window = second.record.views["lead_activity"]
    assert (window.start, window.end) == (backfill, end)  # from where the first run ended, not from the ttl
    assert window.rows == _leads_in(tables / "lead_activity.parquet", EVENT_TIMESTAMP, backfill, end)
    attributes = second.record.views["lead_attributes"]
    assert attributes.rows == leads["created_at"].between(backfill, end).sum()
    assert _intervals("lead_activity") == [(backfill - TTL["lead_activity"], backfill), (backfill, end)]
    records = read_records(second.record_path)
    assert [r.flow_run_id for r in records] == [first.record.flow_run_id, second.record.flow_run_id]
    last = last_materialization(second.record_path)
    assert {view: (m.end, m.rows) for view, m in last.items()} == {
        "lead_activity": (end, window.rows),
        "lead_attributes": (end, attributes.rows),
    }
    _assert_online_equals_historical(sample, end)
    _assert_the_service_lookup_reads_the_same(sample, end)

    # Materialised up to the end already: a run to that end (or before it) writes nothing and says so.
    again: Materialization = materialize_features(str(config), end)
    assert again.record.views == {} and again.current == sorted(TTL)


def test_cli_materializes_and_refuses_a_batch_failing_the_suite(store, online_home, tmp_path) -> None:
    """`mlops features materialize` as typed: a first run, then a batch holding a region the suite does not
    know is refused (exit 1, naming the expectation and column) and nothing of it reaches the online store."""
    source: pd.DataFrame = store["source"]
    end = source.end.to_pydatetime()
    backfill = end - timedelta(days=10)
    crm = tmp_path / "crm"
    crm.mkdir()
    new_lead = source.leads.iloc[[0]].assign(
        lead_id="L999999", region="atlantis", created_at=end - timedelta(days=1)
    )
    pd.concat([source.leads, new_lead]).to_parquet(crm / "leads.parquet")
    source.activities.to_parquet(crm / "activities.parquet")
    source.outcomes.to_parquet(crm / "outcomes.parquet")
    config = str(_materialize_config(tmp_path / "crm.yaml", crm))
    env = {"MLOPS_HOME": str(online_home.root)}

    first = mlops_in_process(
        env, "features", "materialize", "--config", config, "--end", backfill.isoformat()
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert "lead_activity" in first.stdout and "lead_attributes" in first.stdout
    assert str(online_home.materializations("mlops_crm")) in first.stdout.replace("\n", "")
    leads = [*source.leads["lead_id"].iloc[::100], "L999999"]
    before = _online(leads, end)
    intervals = {view: _intervals(view) for view in TTL}

    refused = mlops_in_process(env, "features", "materialize", "--config", config, "--end", end.isoformat())
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert "expect_column_values_to_be_in_set" in said and "region" in said and "atlantis" in said
    assert "the online store is unchanged" in said
    after = _online(leads, end)
    pd.testing.assert_frame_equal(after, before)  # nothing of either view was written
    assert after.loc["L999999"].drop(["days_since_last_touch", "lead_age_days"]).isna().all()
    assert {view: _intervals(view) for view in TTL} == intervals
    assert len(read_records(online_home.materializations("mlops_crm"))) == 1


def test_cli_says_what_is_wrong_with_the_input(store, online_home, tmp_path) -> None:
    env = {"MLOPS_HOME": str(online_home.root)}
    config = str(_materialize_config(tmp_path / "crm.yaml", store["root"] / "crm"))
    no_store = mlops_in_process(
        env, "features", "materialize", "--config", str(REPO / "configs" / "crm_leads.yaml")
    )
    assert no_store.returncode == 2 and "no feature_store section" in no_store.stderr
    not_a_time = mlops_in_process(env, "features", "materialize", "--config", config, "--end", "last tuesday")
    assert not_a_time.returncode == 2 and "not an ISO 8601 time" in not_a_time.stderr
    future = (datetime.now().astimezone() + timedelta(hours=1)).isoformat()
    ahead = mlops_in_process(env, "features", "materialize", "--config", config, "--end", future)
    assert ahead.returncode == 2 and "in the future" in ahead.stderr
    missing = mlops_in_process(
        env,
        "features",
        "materialize",
        "--config",
        str(_materialize_config(tmp_path / "x.yaml", tmp_path / "none")),
    )
    assert missing.returncode == 2 and "mlops data generate --crm" in missing.stderr
