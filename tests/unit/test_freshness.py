"""The freshness verdict per feature view: age of the online store against the view's limit, served ages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from models.errors import UserInputError
from models.features.store import FeatureStoreConfig
from monitoring.freshness import (
    ServedAges,
    ViewMaterialization,
    check_freshness,
    duration,
    served_ages,
)
from monitoring.prediction_log import PredictionRecord

NOW = datetime(2025, 4, 1, 12, 0, tzinfo=UTC)
ACTIVITY = "lead_activity"  # ttl 2 d, as in feature_repo/crm
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def _check(*views: ViewMaterialization, limits: dict[str, float] | None = None, served=None):
    return check_freshness(
        list(views), service="crm_lead_scoring", max_age_minutes=limits or {}, served=served or {}, now=NOW
    )


def _view(last_end: datetime | None, ttl: timedelta | None = 2 * DAY, name: str = ACTIVITY):
    return ViewMaterialization(name, ttl, last_end)


def test_a_view_materialised_within_its_ttl_is_fresh() -> None:
    report = _check(_view(NOW - HOUR))
    [view] = report.views
    assert not view.stale and report.stale == []
    assert view.age_seconds == 3600 and view.limit_seconds == 2 * 86_400 and view.limit_from == "ttl"
    assert view.reason == "" and view.served is None


def test_a_configured_limit_overrides_the_ttl() -> None:
    report = _check(_view(NOW - HOUR), limits={ACTIVITY: 30})
    [view] = report.stale
    assert view.limit_seconds == 1800 and view.limit_from == "max_age_minutes"
    assert view.reason == "60 min old, over its max_age_minutes of 30 min"
    # A limit above the age keeps the view fresh, whatever its ttl.
    assert _check(_view(NOW - 3 * DAY), limits={ACTIVITY: 5 * 24 * 60}).stale == []


def test_a_view_older_than_its_ttl_is_stale() -> None:
    report = _check(_view(NOW - 3 * DAY), _view(NOW - 3 * DAY, ttl=3650 * DAY, name="lead_attributes"))
    assert [v.view for v in report.stale] == [ACTIVITY]  # the attributes' ttl is ten years
    assert report.stale[0].reason == "3.0 d old, over its ttl of 2.0 d"
    # Exactly at the limit is still fresh: stale means older than it.
    assert _check(_view(NOW - 2 * DAY)).stale == []


def test_a_view_never_materialised_is_stale_whatever_its_limit() -> None:
    for ttl in (2 * DAY, None):
        [view] = _check(_view(None, ttl=ttl)).stale
        assert view.age_seconds is None and view.last_end is None and view.reason == "never materialised"


def test_a_view_without_ttl_or_limit_never_goes_stale_once_materialised() -> None:
    [view] = _check(_view(NOW - 400 * DAY, ttl=None)).views
    assert not view.stale and view.limit_seconds is None and view.limit_from == "none"


def test_a_limit_for_a_view_the_service_does_not_read_is_refused() -> None:
    with pytest.raises(
        UserInputError, match=r"max_age_minutes names view\(s\) lead_activty .* lead_activity"
    ):
        _check(_view(NOW), limits={"lead_activty": 60})


def test_limits_must_be_positive_minutes() -> None:
    with pytest.raises(ValidationError, match="max_age_minutes.lead_activity"):
        FeatureStoreConfig(repo="r", service="s", source="x", max_age_minutes={ACTIVITY: 0})


def _record(at: datetime, ages: dict[str, float], flags: list[str] | None = None) -> PredictionRecord:
    return PredictionRecord(
        "r", "champion", "1", {}, 0.5, timestamp=at.isoformat(), feature_ages=ages, flags=flags or []
    )


def test_served_ages_are_summarised_per_view() -> None:
    records = [
        _record(NOW, {ACTIVITY: 100.0, "lead_attributes": 50.0}),
        _record(NOW + HOUR, {ACTIVITY: 300.0}, ["out_of_range:deal_size"]),
        _record(NOW, {ACTIVITY: 200_000.0}, [f"stale:{ACTIVITY}"]),
        _record(NOW, {}, [f"missing:{ACTIVITY}"]),  # nothing for the entity: no age
        _record(NOW, {}),  # a row that carried every feature: not read by id
    ]
    served = served_ages(records)
    assert served[ACTIVITY] == ServedAges(
        rows=3,
        median_seconds=300.0,
        max_seconds=200_000.0,
        newest_event=NOW + HOUR - timedelta(seconds=300),  # request time minus age, the latest
        stale_rows=1,
        missing_rows=1,
    )
    assert served["lead_attributes"].rows == 1 and served["lead_attributes"].stale_rows == 0
    assert served_ages([]) == {}


def test_the_table_and_the_event_name_the_view_its_age_and_limit() -> None:
    served = served_ages(
        [_record(NOW, {ACTIVITY: 7200.0}, [f"stale:{ACTIVITY}"]), _record(NOW, {ACTIVITY: 60})]
    )
    ran = NOW - 3 * DAY + timedelta(minutes=2)
    stale = ViewMaterialization(ACTIVITY, 2 * DAY, NOW - 3 * DAY, ran_at=ran)
    never = _view(None, ttl=3650 * DAY, name="lead_attributes")
    report = _check(stale, never, served=served)
    table = report.markdown()
    assert "## Feature freshness: crm_lead_scoring: STALE (lead_activity, lead_attributes)" in table
    assert (
        "| lead_activity | 2025-03-29 12:00 UTC (ran 2025-03-29 12:02 UTC) | 3.0 d | 60 min / 2.0 h | 1 of 2 | "
        "2.0 d (ttl) | **STALE**: 3.0 d old, over its ttl of 2.0 d |"
    ) in table
    assert (
        "| lead_attributes | never | – | no rows read by id | – | 3650.0 d (ttl) | **STALE**: never materialised |"
    ) in table

    payload = report.stale[0].payload("crm", report.service)
    assert payload == {
        "model": "crm",
        "service": "crm_lead_scoring",
        "view": ACTIVITY,
        "last_materialized": "2025-03-29T12:00:00+00:00",
        "materialized_at": ran.isoformat(),
        "age_seconds": 3 * 86_400,
        "limit_seconds": 2 * 86_400,
        "age": "3.0 d",
        "limit": "2.0 d (ttl)",
        "reason": "3.0 d old, over its ttl of 2.0 d",
        "served_stale_rows": 1,
    }
    assert report.stale[1].payload("crm", report.service)["age"] == "never materialised"


@pytest.mark.parametrize(
    ("seconds", "text"), [(45, "45 s"), (720, "12 min"), (5.5 * 3600, "5.5 h"), (3 * 86_400, "3.0 d")]
)
def test_durations_read_in_the_unit_an_operator_uses(seconds: float, text: str) -> None:
    assert duration(seconds) == text
