"""Feast definitions of the CRM features: entity, views over the tables the ``crm-features`` flow writes,
an on-demand view computed at request time, and one feature service per model.

Feast imports this file at ``feast apply`` (and ``mlops`` applies it in process); the tables live under
``$MLOPS_HOME/features/crm``, the project home Feast's config also reads, so ``MLOPS_HOME`` must be set. On
the server stack on Postgres (``MLOPS_FEAST_REGISTRY`` set: `models.features.store.on_stack`) they are tables
of the stack's Feast database instead, read by Feast's Postgres offline store.
"""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String, UnixTimestamp

# Where the crm-features flow writes the offline tables (see feature_store.yaml for the same home).
TABLES = Path(os.environ.get("MLOPS_HOME", ".mlops")).resolve() / "features" / "crm"
ON_POSTGRES = bool(os.environ.get("MLOPS_FEAST_REGISTRY"))


def _source(name: str, table: str, timestamp_field: str):
    """A view's batch source: the table's Parquet file in the home, or its table in the stack's database."""
    if ON_POSTGRES:
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
            PostgreSQLSource,
        )

        return PostgreSQLSource(name=name, table=f"crm_{table}", timestamp_field=timestamp_field)
    return FileSource(name=name, path=str(TABLES / f"{table}.parquet"), timestamp_field=timestamp_field)


lead = Entity(name="lead", join_keys=["lead_id"], value_type=ValueType.STRING, description="A CRM lead.")

lead_attributes_source = _source("lead_attributes_source", "lead_attributes", "created_at")
lead_attributes = FeatureView(
    name="lead_attributes",
    entities=[lead],
    # Attributes are set when the lead is created and kept: any as-of time after creation sees them.
    ttl=timedelta(days=3650),
    schema=[
        Field(name="region", dtype=String),
        Field(name="lead_source", dtype=String),
        Field(name="plan", dtype=String),
        Field(name="industry", dtype=String),
        Field(name="company_size", dtype=Int64),
        Field(name="deal_size", dtype=Float64),
        Field(name="created_at", dtype=UnixTimestamp),
    ],
    source=lead_attributes_source,
    description="Static attributes of a lead, as of its creation.",
)

lead_activity_source = _source("lead_activity_source", "lead_activity", "event_timestamp")
lead_activity = FeatureView(
    name="lead_activity",
    entities=[lead],
    # One snapshot a day: an as-of time takes the latest snapshot at or before it, at most a day old;
    # two days of ttl tolerate one missed daily run, after which the values read as missing.
    ttl=timedelta(days=2),
    schema=[
        Field(name="touches_7d", dtype=Int64),
        Field(name="touches_30d", dtype=Int64),
        Field(name="touches_90d", dtype=Int64),
        Field(name="site_visits_7d", dtype=Int64),
        Field(name="site_visits_30d", dtype=Int64),
        Field(name="email_opens_30d", dtype=Int64),
        Field(name="calls_30d", dtype=Int64),
        Field(name="meetings_30d", dtype=Int64),
        Field(name="form_fills_90d", dtype=Int64),
        Field(name="deal_updates_30d", dtype=Int64),
        Field(name="last_touch_at", dtype=UnixTimestamp),
    ],
    source=lead_activity_source,
    description="Activity counts over 7, 30 and 90 days and the latest touch, snapshotted daily.",
)

# The moment the prediction is made: the spine's as-of time in training, the request's time in serving.
scoring_request = RequestSource(name="scoring_request", schema=[Field(name="as_of", dtype=UnixTimestamp)])


@on_demand_feature_view(
    sources=[lead_activity, lead_attributes, scoring_request],
    schema=[Field(name="days_since_last_touch", dtype=Float64), Field(name="lead_age_days", dtype=Float64)],
    # Python mode (a dict of lists in and out): the same function serves training's historical frames and
    # one lead at a time in the service, where a pandas frame per request cost about 3 ms.
    mode="python",
    description="Recency computed at request time, exact to the second rather than to the daily snapshot.",
)
def lead_recency(inputs: dict[str, list]) -> dict[str, list]:
    # Feast stores this function's source and runs it apart from this module: names it uses are local.
    from datetime import UTC

    never_touched_days = 365.0  # older than any 90-day window
    day = 86_400.0

    def seconds(moment) -> float | None:  # datetime or pandas Timestamp; naive ones are UTC
        if moment is None or moment != moment:  # None, NaT
            return None
        return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()

    since_touch, age = [], []
    for as_of, touched, created in zip(
        inputs["as_of"], inputs["last_touch_at"], inputs["created_at"], strict=True
    ):
        now, last, start = seconds(as_of), seconds(touched), seconds(created)
        since_touch.append(never_touched_days if last is None else (now - last) / day)
        age.append(None if start is None else (now - start) / day)
    return {"days_since_last_touch": since_touch, "lead_age_days": age}


crm_lead_scoring = FeatureService(
    name="crm_lead_scoring",
    features=[
        lead_attributes[["region", "lead_source", "plan", "industry", "company_size", "deal_size"]],
        lead_activity[
            [
                "touches_7d",
                "touches_30d",
                "touches_90d",
                "site_visits_7d",
                "site_visits_30d",
                "email_opens_30d",
                "calls_30d",
                "meetings_30d",
                "form_fills_90d",
                "deal_updates_30d",
            ]
        ],
        lead_recency,
    ],
    description="The features of the crm-feature-store model (configs/crm_feature_store.yaml).",
)
