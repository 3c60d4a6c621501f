"""Synthetic CRM leads: a realistic, learnable stand-in for a company's lead table.

The label depends on thresholds, interactions and a periodic term, so a linear model leaves
signal on the table that trees and networks can find. Everything is vectorised: a million
rows take about a second. ``drift`` moves chosen distributions, category frequencies and the
conversion rate so that monitoring has something to detect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

REGIONS = ("north_america", "emea", "apac", "latam")
LEAD_SOURCES = ("web", "referral", "event", "partner", "outbound", "paid_ads")
PLANS = ("free", "starter", "pro", "enterprise")
INDUSTRIES = (
    "software",
    "retail",
    "finance",
    "healthcare",
    "manufacturing",
    "education",
    "media",
    "logistics",
)

# Category frequencies before and after full drift (drift=1 uses the second row).
REGION_P = (np.array([0.40, 0.30, 0.20, 0.10]), np.array([0.20, 0.25, 0.40, 0.15]))
SOURCE_P = (np.array([0.30, 0.15, 0.15, 0.10, 0.20, 0.10]), np.array([0.20, 0.10, 0.10, 0.10, 0.20, 0.30]))
PLAN_P = np.array([0.35, 0.30, 0.25, 0.10])
PLAN_LOGIT = np.array([-0.6, 0.0, 0.4, 0.7])
PLAN_DEAL_MULT = np.array([0.3, 1.0, 2.5, 8.0])

# Hard bounds keep values inside the ranges a data contract can state.
DEAL_SIZE_BOUNDS = (100.0, 2_000_000.0)
COMPANY_SIZE_BOUNDS = (1, 100_000)
CONTACT_DAYS_MAX = 365
START_DATE = np.datetime64("2025-01-01")
DATE_SPAN_DAYS = 365


@dataclass(frozen=True)
class LeadSchema:
    """Column names of the generated table, shared with the default config and its tests."""

    id_column: str = "lead_id"
    target: str = "converted"
    time_column: str = "created_at"
    numeric: tuple[str, ...] = (
        "company_size",
        "deal_size",
        "engagement_score",
        "email_opens",
        "web_visits",
        "days_since_last_contact",
        "num_meetings",
    )
    categorical: tuple[str, ...] = ("region", "lead_source", "plan", "industry")


def _choice(rng: np.random.Generator, values: tuple[str, ...], p: np.ndarray, n: int) -> pd.Categorical:
    codes = rng.choice(len(values), size=n, p=p / p.sum())
    return pd.Categorical.from_codes(codes, categories=list(values))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# What `mlops data generate` and `make run` produce when not told otherwise.
DEFAULT_ROWS = 200_000
DEFAULT_SEED = 42


def generate_leads(rows: int, seed: int, drift: float = 0.0) -> pd.DataFrame:
    """Return ``rows`` synthetic leads, identical for the same ``(rows, seed, drift)``.

    ``drift`` in [0, 1]: 0 is the reference population; 1 shifts engagement down, deal sizes
    up, the region and lead-source mix, and raises the base conversion rate.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be between 0 and 1, got {drift}")
    rng = np.random.default_rng(seed)
    n = rows

    region = _choice(rng, REGIONS, (1 - drift) * REGION_P[0] + drift * REGION_P[1], n)
    source = _choice(rng, LEAD_SOURCES, (1 - drift) * SOURCE_P[0] + drift * SOURCE_P[1], n)
    plan = _choice(rng, PLANS, PLAN_P, n)
    industry = _choice(rng, INDUSTRIES, np.ones(len(INDUSTRIES)), n)
    plan_idx = plan.codes.astype(np.int64)

    company_size = np.clip(np.round(rng.lognormal(mean=4.0, sigma=1.3, size=n)), *COMPANY_SIZE_BOUNDS).astype(
        np.int64
    )
    deal_size = np.clip(
        rng.lognormal(mean=8.5, sigma=0.9, size=n) * PLAN_DEAL_MULT[plan_idx] * (1.0 + drift),
        *DEAL_SIZE_BOUNDS,
    ).round(2)
    engagement = np.clip(rng.beta(2.2, 2.0, size=n) * 100.0 - 20.0 * drift, 0.0, 100.0).round(1)
    email_opens = rng.poisson(engagement / 8.0)
    web_visits = rng.poisson(2.0 + engagement / 15.0)
    days_since_contact = np.minimum(np.floor(rng.exponential(scale=25.0, size=n)), CONTACT_DAYS_MAX)
    num_meetings = rng.poisson(0.8 + 0.5 * plan_idx)

    # Smooth thresholds and interactions: nonlinear enough that a linear model misses them,
    # smooth enough that a network can fit them as well as trees do.
    hot = _sigmoid((engagement - 60.0) / 6.0)
    recent = _sigmoid((20.0 - np.nan_to_num(days_since_contact, nan=30.0)) / 6.0)
    big_deal = _sigmoid((np.log(deal_size) - 9.5) / 0.4)
    is_referral = np.asarray(source == "referral")
    contact_days = np.nan_to_num(days_since_contact, nan=25.0)
    oblique = (
        (engagement - 50.0) / 20.0 + (np.log(company_size) - 4.0) / 1.3 - (contact_days - 25.0) / 25.0
    ) / 1.2
    apac_enterprise = np.asarray(region == "apac") & (plan_idx == 3)
    logit = (
        -2.0
        + 1.2 * hot
        + 2.0 * hot * recent
        - 1.6 * (1.0 - hot) * recent
        + 1.5 * is_referral * big_deal
        - 0.5 * is_referral
        + 1.1 * np.sin(np.log(company_size) * 1.6)
        # A bump along an oblique direction of three features: invisible to a linear model and
        # only approximated in steps by axis-aligned tree splits; a network fits it directly.
        + 2.2 * np.exp(-(oblique**2))
        - 1.1
        + PLAN_LOGIT[plan_idx]
        + 0.9 * apac_enterprise
        + 0.45 * np.minimum(num_meetings, 3)
        - 0.3 * np.maximum(num_meetings - 3, 0)
        + 1.5 * drift
    )
    converted = (rng.random(n) < _sigmoid(1.6 * logit)).astype(np.int64)

    # Missing values as a CRM export has them: unknown deal sizes and contact dates.
    deal_size[rng.random(n) < 0.04] = np.nan
    days_since_contact[rng.random(n) < 0.03] = np.nan

    schema = LeadSchema()
    created = START_DATE + rng.integers(0, DATE_SPAN_DAYS, size=n).astype("timedelta64[D]")
    ids = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(8)
    return pd.DataFrame(
        {
            schema.id_column: "L" + ids,
            schema.time_column: pd.to_datetime(created),
            "region": region.astype(str),
            "lead_source": source.astype(str),
            "plan": plan.astype(str),
            "industry": industry.astype(str),
            "company_size": company_size,
            "deal_size": deal_size,
            "engagement_score": engagement,
            "email_opens": email_opens.astype(np.int64),
            "web_visits": web_visits.astype(np.int64),
            "days_since_last_contact": days_since_contact,
            "num_meetings": num_meetings.astype(np.int64),
            schema.target: converted,
        }
    )
