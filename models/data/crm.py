"""A synthetic CRM source: a leads table, an activity log and outcomes, as a CRM exports them.

Unlike the flat table of ``synthetic.py``, nothing here is a model feature yet: features are aggregates
of the activity log over time windows (``models/features/activity.py``), taken as of a moment. The
dynamics give point-in-time correctness something to protect:

- each lead has a latent intent (from its attributes plus noise); activity rises with intent and decays
  with the time since the lead was created;
- leads that convert show a burst of calls, meetings and visits in the three weeks before conversion;
- activity continues AFTER the decision, as in a real CRM: onboarding calls, meetings and deal updates
  after a conversion, then a customer's steady stream of them; the odd newsletter opened after a loss. A join that takes each lead's latest
  values sees this future and scores far better offline than any model can in production.

Everything is vectorised over a (lead, day) grid: 20,000 leads over six months take a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from models.data.synthetic import (
    COMPANY_SIZE_BOUNDS,
    DEAL_SIZE_BOUNDS,
    INDUSTRIES,
    LEAD_SOURCES,
    PLAN_DEAL_MULT,
    PLAN_LOGIT,
    PLAN_P,
    PLANS,
    REGION_P,
    REGIONS,
    SOURCE_P,
)

ACTIVITY_TYPES = ("email_open", "site_visit", "call", "meeting", "form_fill", "deal_update")
# Share of each activity type in the three phases of a lead's life (rows follow ACTIVITY_TYPES).
NURTURE_MIX = np.array([0.45, 0.30, 0.12, 0.05, 0.05, 0.03])
BURST_MIX = np.array([0.10, 0.30, 0.25, 0.25, 0.05, 0.05])
ONBOARDING_MIX = np.array([0.15, 0.0, 0.35, 0.30, 0.0, 0.20])

# What `mlops data generate --crm` produces when not told otherwise: about 600k activities.
DEFAULT_CRM_LEADS = 20_000
DEFAULT_CRM_MONTHS = 6
# Label horizon of the spine: the prediction made at as_of is "will this lead convert in the next 30 days".
DEFAULT_HORIZON_DAYS = 30
CRM_START = pd.Timestamp("2025-01-01", tz="UTC")
DAYS_PER_MONTH = 30

NURTURE_RATE = 0.35  # activities a day of a lead of average intent on its first day
NURTURE_DECAY_DAYS = 30.0
BURST_DAYS = 21  # converting leads' engagement rises over the three weeks before the deal closes
BURST_RATE = 1.2  # extra activities a day on the day before conversion
ONBOARDING_DAYS = 45  # the onboarding burst; a customer's steady activity goes on after it
ONBOARDING_RATE = 0.6
ONBOARDING_DECAY_DAYS = 15.0
CUSTOMER_RATE = 0.15  # a customer's steady calls, meetings and deal updates (upsells) once onboarded
AFTER_LOSS_RATE = 0.02  # newsletters still opened by lost leads

SECONDS_PER_DAY = 86_400
SOURCE_TABLES = ("leads", "activities", "outcomes")
TABLES = (*SOURCE_TABLES, "spine")


@dataclass(frozen=True)
class CrmSource:
    """The three tables of a CRM export and the moment it was taken (``end``: nothing happens after it)."""

    leads: pd.DataFrame  # lead_id, created_at, region, lead_source, plan, industry, company_size, deal_size
    activities: pd.DataFrame  # lead_id, timestamp, type, value; sorted by time
    outcomes: pd.DataFrame  # lead_id, converted (0/1), decided_at (null while the lead is still open)
    end: pd.Timestamp


def _choice(rng: np.random.Generator, values: tuple[str, ...], p: np.ndarray, n: int) -> np.ndarray:
    return np.asarray(values)[rng.choice(len(values), size=n, p=p / p.sum())]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def start_ending_at(end: datetime, months: int = DEFAULT_CRM_MONTHS) -> pd.Timestamp:
    """The ``start`` of `generate_crm` whose export ends at ``end`` (naive: UTC), like a CRM's export of now."""
    moment = pd.Timestamp(end)
    moment = moment.tz_localize("UTC") if moment.tz is None else moment.tz_convert("UTC")
    return moment - pd.Timedelta(days=months * DAYS_PER_MONTH)


def generate_crm(
    leads: int, seed: int, months: int = DEFAULT_CRM_MONTHS, start: pd.Timestamp = CRM_START
) -> CrmSource:
    """Return a CRM export of ``leads`` leads created over ``months`` months from ``start`` (UTC), identical
    for the same arguments."""
    if leads < 1:
        raise ValueError(f"leads must be at least 1, got {leads}")
    if months < 2:
        raise ValueError(f"months must be at least 2 (the label horizon is 30 days), got {months}")
    rng = np.random.default_rng(seed)
    n, span_days = leads, months * DAYS_PER_MONTH
    end = start + pd.Timedelta(days=span_days)

    region = _choice(rng, REGIONS, REGION_P[0], n)
    source = _choice(rng, LEAD_SOURCES, SOURCE_P[0], n)
    plan_idx = rng.choice(len(PLANS), size=n, p=PLAN_P)
    industry = _choice(rng, INDUSTRIES, np.ones(len(INDUSTRIES)), n)
    company_size = np.clip(np.round(rng.lognormal(4.0, 1.3, n)), *COMPANY_SIZE_BOUNDS).astype(np.int64)
    deal_size = np.clip(rng.lognormal(8.5, 0.9, n) * PLAN_DEAL_MULT[plan_idx], *DEAL_SIZE_BOUNDS).round(2)
    # Seconds since the start; leads arrive evenly over the whole span.
    created_s = rng.integers(0, span_days * SECONDS_PER_DAY, size=n)

    # Latent intent in (0, 1): attributes explain part of it, the rest shows only in behaviour.
    intent_logit = (
        PLAN_LOGIT[plan_idx]
        + 0.8 * (source == "referral")
        - 0.4 * (source == "paid_ads")
        + 0.25 * (np.log(company_size) - 4.0)
        + 0.3 * (region == "north_america")
        + rng.normal(0.0, 1.0, n)
    )
    intent = _sigmoid(intent_logit)
    will_convert = rng.random(n) < _sigmoid(4.0 * (intent - 0.62))
    # Keen leads decide sooner; every decision comes at least two days after creation.
    convert_days = 2.0 + rng.gamma(2.0, 8.0 + 25.0 * (1.0 - intent))
    lose_days = 2.0 + rng.gamma(2.0, 25.0, n)
    decide_days = np.where(will_convert, convert_days, lose_days)
    decided_s = created_s + np.round(decide_days * SECONDS_PER_DAY).astype(np.int64)
    decided = decided_s < span_days * SECONDS_PER_DAY  # else still open when the export was taken

    activities = _activities(rng, created_s, decide_days, will_convert, intent, deal_size, span_days, start)
    ids = "L" + pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(6)
    activities.insert(0, "lead_id", ids.to_numpy()[activities.pop("lead")])
    leads_df = pd.DataFrame(
        {
            "lead_id": ids,
            "created_at": start + pd.to_timedelta(created_s, unit="s"),
            "region": region,
            "lead_source": source,
            "plan": np.asarray(PLANS)[plan_idx],
            "industry": industry,
            "company_size": company_size,
            "deal_size": deal_size,
        }
    )
    decided_at = (start + pd.to_timedelta(decided_s, unit="s")).where(decided)
    outcomes = pd.DataFrame(
        {"lead_id": ids, "converted": (will_convert & decided).astype(np.int64), "decided_at": decided_at}
    )
    return CrmSource(leads_df, activities, outcomes, end)


def _activities(
    rng: np.random.Generator,
    created_s: np.ndarray,
    decide_days: np.ndarray,
    will_convert: np.ndarray,
    intent: np.ndarray,
    deal_size: np.ndarray,
    span_days: int,
    start: pd.Timestamp,
) -> pd.DataFrame:
    """Activity events drawn per (lead, day since creation) from the three phases' Poisson rates."""
    age = np.arange(span_days + 1, dtype=np.float64)[None, :]  # days since creation, shape (1, D)
    decision_day = np.floor(decide_days)[:, None]  # the decision falls within this day, shape (n, 1)
    before = age < decision_day
    nurture = NURTURE_RATE * (0.2 + 2.0 * intent[:, None]) * np.exp(-age / NURTURE_DECAY_DAYS) * before
    to_go = decision_day - age  # days until the decision's day
    converting = will_convert[:, None]
    burst = BURST_RATE * np.clip(1.0 - (to_go - 1.0) / BURST_DAYS, 0.0, 1.0) * before * converting
    since = age - decision_day  # >= 1 strictly after the decision's day
    after = since >= 1
    onboarding = (
        ONBOARDING_RATE
        * np.exp(-(since - 1.0) / ONBOARDING_DECAY_DAYS)
        * (after & (since <= ONBOARDING_DAYS))
        + CUSTOMER_RATE * after
    ) * converting
    after_loss = AFTER_LOSS_RATE * after * ~converting
    # Only days the export has seen: creation + age < the end of the span.
    seen = (created_s[:, None] + age * SECONDS_PER_DAY) < span_days * SECONDS_PER_DAY

    leads_idx, days_idx, types_idx = [], [], []
    for k in range(len(ACTIVITY_TYPES)):
        rate = (nurture * NURTURE_MIX[k] + burst * BURST_MIX[k] + onboarding * ONBOARDING_MIX[k]) * seen
        if k == 0:
            rate = rate + after_loss * seen
        counts = rng.poisson(rate)  # shape (n, D)
        lead, day = np.nonzero(counts)
        reps = counts[lead, day]
        leads_idx.append(np.repeat(lead, reps))
        days_idx.append(np.repeat(day, reps))
        types_idx.append(np.full(reps.sum(), k))
    lead = np.concatenate(leads_idx)
    day = np.concatenate(days_idx)
    kind = np.concatenate(types_idx)
    at_s = created_s[lead] + day * SECONDS_PER_DAY + rng.integers(0, SECONDS_PER_DAY, size=len(lead))
    # The deal closes at the decision: one deal update at that very moment.
    won = np.flatnonzero(
        will_convert & (created_s + decide_days * SECONDS_PER_DAY < span_days * SECONDS_PER_DAY)
    )
    lead = np.concatenate([lead, won])
    kind = np.concatenate([kind, np.full(len(won), ACTIVITY_TYPES.index("deal_update"))])
    at_s = np.concatenate(
        [at_s, created_s[won] + np.round(decide_days[won] * SECONDS_PER_DAY).astype(np.int64)]
    )
    keep = at_s < span_days * SECONDS_PER_DAY
    lead, kind, at_s = lead[keep], kind[keep], at_s[keep]
    is_deal = kind == ACTIVITY_TYPES.index("deal_update")
    # Counts carry 1; a deal update carries the deal's new amount.
    value = np.where(is_deal, deal_size[lead] * rng.lognormal(0.0, 0.15, len(lead)), 1.0).round(2)
    order = np.lexsort((lead, at_s))
    return pd.DataFrame(
        {
            "lead": lead[order],
            "timestamp": start + pd.to_timedelta(at_s[order], unit="s"),
            "type": np.asarray(ACTIVITY_TYPES)[kind[order]],
            "value": value[order],
        }
    ).reset_index(drop=True)


def label_spine(source: CrmSource, seed: int, horizon_days: int = DEFAULT_HORIZON_DAYS) -> pd.DataFrame:
    """The label spine: one row per lead (``lead_id`` stays a unique id), ``as_of`` and ``converted``.

    The prediction made at ``as_of`` is "will this lead convert in the next ``horizon_days`` days":
    ``converted`` is 1 when the lead converted in (as_of, as_of + horizon]. ``as_of`` is drawn uniformly
    between a day after the lead's creation and its decision; it also ends ``horizon_days`` before the
    export's end, so every label's window has been observed. Leads with no such moment (created too
    late) have no row.
    """
    rng = np.random.default_rng(seed)
    frame = source.leads[["lead_id", "created_at"]].merge(source.outcomes, on="lead_id", validate="1:1")
    earliest = frame["created_at"] + pd.Timedelta(days=1)
    observed_until = source.end - pd.Timedelta(days=horizon_days)
    latest = frame["decided_at"].fillna(observed_until).clip(upper=observed_until)
    room = (latest - earliest).dt.total_seconds().to_numpy()
    frame = frame[room > 0]
    room = room[room > 0]
    offset = np.floor(rng.random(len(frame)) * room)  # whole seconds, strictly before `latest`
    as_of = earliest[frame.index] + pd.to_timedelta(offset, unit="s")
    horizon = pd.Timedelta(days=horizon_days)
    converted = (
        (frame["converted"] == 1) & (frame["decided_at"] > as_of) & (frame["decided_at"] <= as_of + horizon)
    )
    return pd.DataFrame(
        {"lead_id": frame["lead_id"], "as_of": as_of, "converted": converted.astype(np.int64)}
    ).reset_index(drop=True)


def write_crm(source: CrmSource, spine: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Write the source's tables and the spine as ``<table>.parquet`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {
        "leads": source.leads,
        "activities": source.activities,
        "outcomes": source.outcomes,
        "spine": spine,
    }
    paths = {name: out_dir / f"{name}.parquet" for name in TABLES}
    for name, frame in frames.items():
        frame.to_parquet(paths[name], index=False)
    return paths
