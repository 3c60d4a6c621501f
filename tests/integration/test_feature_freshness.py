"""Feature freshness as the drift monitor checks it: the shipped CRM repository applied under a temporary project
home, materialised with Feast directly, each view's age read from Feast's registry against its ttl or
configured limit, and a stale view's event delivered to the alert webhook by the automation `mlops deploy` sets
up beside the drift alert. The flow's freshness part is called directly: `mlops monitor` also needs a champion,
and this test trains none."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from prefect import flow

from flows.alerts import ensure_alerts
from flows.config import PipelineConfig, load_config
from flows.features import crm_features
from flows.monitor import MonitorSummary, feature_freshness
from infra.home import ProjectHome
from models.data.crm import generate_crm, label_spine, write_crm
from models.features.materialization import MaterializationRecord, ViewWindow, append_record
from monitoring.freshness import FreshnessReport

from helpers.cli import home_variables
from helpers.webhook import Receiver

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "crm_feature_store.yaml"
FEATURE_REPO = REPO / "feature_repo" / "crm"
MODEL = "crm-feature-store"  # the shipped config's registry.model_name
ONLINE_VIEWS = ["lead_attributes", "lead_activity"]  # the service's views; lead_recency is on demand


@pytest.fixture(scope="module")
def crm(tmp_path_factory: pytest.TempPathFactory, prefect_server: str, receiver: Receiver) -> Iterator[dict]:
    """A small generated CRM (200 leads over 2 months), its tables built and the repository applied; alerts set
    up towards ``receiver``. Nothing materialised yet."""
    root = tmp_path_factory.mktemp("freshness")
    home = ProjectHome(root / "home")
    with pytest.MonkeyPatch.context() as environment:
        for key, value in home_variables(home).items():
            environment.setenv(key, value)
        source = generate_crm(200, seed=5, months=2)
        write_crm(source, label_spine(source, seed=5), root / "crm")
        overrides = {
            "data.path": str(root / "crm" / "spine.parquet"),
            "feature_store.source": str(root / "crm"),
            "monitoring.alert_webhook_url": receiver.url,
        }
        config = load_config(CONFIG, home=home.root, overrides=overrides)
        crm_features(str(FEATURE_REPO), str(root / "crm"))
        alerts = ensure_alerts(config)
        end = pd.Timestamp(source.activities["timestamp"].max()).ceil("D").to_pydatetime()
        yield {"home": home, "config": config, "end": end, "alerts": alerts}


def _freshness(crm: dict, at: datetime, config: PipelineConfig | None = None) -> FreshnessReport:
    """The drift monitor's freshness part at ``at``, inside a flow run as drift-monitor runs it."""

    @flow(name="feature-freshness-check")
    def check() -> FreshnessReport | None:
        return feature_freshness(config or crm["config"], crm["home"], MODEL, {}, at)

    report = check()
    assert report is not None  # the config has a feature store
    return report


def test_freshness_from_the_registry_with_its_alert(crm: dict, receiver: Receiver) -> None:
    home, config, end = crm["home"], crm["config"], crm["end"]
    assert f"mlops-stale-features-alert-{MODEL}" in crm["alerts"]

    never = _freshness(crm, end)
    assert [(v.view, v.reason) for v in never.stale] == [(v, "never materialised") for v in ONLINE_VIEWS]

    from feast import FeatureStore

    with contextlib.redirect_stdout(io.StringIO()):  # Feast's progress bars
        FeatureStore(repo_path=str(FEATURE_REPO)).materialize(
            start_date=end - timedelta(days=90), end_date=end, feature_views=ONLINE_VIEWS
        )
    # The flow's record of that run, as materialize-features writes it: it says when the view's run finished.
    ran = end + timedelta(minutes=3)
    window = ViewWindow(200, end - timedelta(days=90), end)
    append_record(
        home.materializations("mlops_crm"), MaterializationRecord(ran, None, {"lead_activity": window})
    )

    fresh = _freshness(crm, end + timedelta(hours=1))
    assert fresh.stale == []
    attributes, activity = fresh.views
    assert [attributes.view, activity.view] == ONLINE_VIEWS
    assert attributes.last_end == activity.last_end == end and attributes.age_seconds == 3600
    assert activity.ran_at == ran and attributes.ran_at is None  # no record of the attributes' run
    assert (activity.limit_from, activity.limit_seconds) == ("ttl", 2 * 86_400)

    store = config.feature_store.model_copy(update={"max_age_minutes": {"lead_attributes": 30.0}})
    limited = config.model_copy(update={"feature_store": store})
    [over_limit] = _freshness(crm, end + timedelta(hours=1), limited).stale
    assert over_limit.view == "lead_attributes" and over_limit.limit_from == "max_age_minutes"

    late = _freshness(crm, end + timedelta(days=3))
    assert [v.view for v in late.stale] == ["lead_activity"]  # the attributes' ttl is ten years
    assert (
        "| lead_activity |" in late.markdown()
        and "**STALE**: 3.0 d old, over its ttl of 2.0 d" in late.markdown()
    )

    # `mlops monitor` exits 1 on a stale view as on drift, also when the log held nothing to check for drift.
    assert MonitorSummary(None, [], "log", False, freshness=late).findings
    assert not MonitorSummary(None, [], "log", False, freshness=fresh).findings

    alert = receiver.wait_for(
        "lead_activity of service crm_lead_scoring is stale: 3.0 d old, over its ttl of 2.0 d"
    )
    assert alert["text"].startswith(f"Stale features in {MODEL}")
    assert "materialize-features/crm-feature-store" in alert["text"]
    # The session's server has auth on: the link goes through the UI's login page.
    assert (
        "up to date: http://127.0.0.1:" in alert["text"]
        and "/v2/login?redirectTo=/deployments" in alert["text"]
    )
    receiver.wait_for(
        "lead_attributes of service crm_lead_scoring is stale: never materialised (last materialised up to never)"
    )
