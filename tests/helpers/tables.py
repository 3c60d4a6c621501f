"""Generated tables with the flaws of a real CRM export planted in them, for the profile's and the evaluation's
data checks: a tag written after the outcome, a shuffled record number, constant columns and a web form's
"Select" placeholder, beside honest features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.data.config import LeakageConfig
from models.data.leakage import LeakageReport, importance_shares, leakage_report, single_feature_auc


@dataclass(frozen=True)
class Planted:
    """Column names of ``planted_table``, by what was planted in them."""

    target: str = "converted"
    id_column: str = "lead_id"  # an id-like name, unique: becomes data.id_column
    record_number: str = (
        "record_no"  # a shuffled integer, distinct in every row: an identifier, not a feature
    )
    leak: str = "sales_tag"  # written by the sales team once the outcome is known
    constants: tuple[str, ...] = ("magazine", "country")  # one value in every row
    near_constant: str = "do_not_call"  # "Yes" in 3 rows of 2,000
    placeholder: str = "Select"  # a web form's unchosen default
    placeholder_columns: tuple[str, ...] = ("specialization", "city", "heard_from")
    numeric: tuple[str, ...] = ("engagement", "web_visits", "company_size")  # honest features
    categorical: tuple[str, ...] = ("region", "specialization", "city", "heard_from")  # honest too


PLANTED = Planted()
WON_TAGS = ("closed - won", "will revert after reading the email")
LOST_TAGS = ("lost to competitor", "not interested", "ringing")


def planted_table(rows: int = 2_000, seed: int = 0, leak_noise: float = 0.05) -> pd.DataFrame:
    """A lead table whose label depends on the honest features (the strongest alone: ROC AUC about 0.78), plus
    the planted columns. The tag matches the outcome except in ``leak_noise`` of rows (alone about 0.95)."""
    rng = np.random.default_rng(seed)
    engagement = rng.beta(2.0, 2.0, rows) * 100
    company_size = np.round(rng.lognormal(4.0, 1.2, rows)).astype(np.int64) + 1
    region = rng.choice(["north", "south", "east", "west"], rows)
    logit = -0.8 + 1.2 * (engagement - 50) / 22 + 0.3 * (np.log(company_size) - 4) + 0.4 * (region == "north")
    converted = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)

    def with_placeholder(values: list[str], share: float) -> np.ndarray:
        column = rng.choice(values, rows).astype(object)
        column[rng.random(rows) < share] = PLANTED.placeholder
        return column

    honest_tag = np.where(rng.random(rows) < leak_noise, 1 - converted, converted)
    tag = np.where(honest_tag == 1, rng.choice(WON_TAGS, rows), rng.choice(LOST_TAGS, rows))
    do_not_call = np.full(rows, "No", dtype=object)
    do_not_call[rng.choice(rows, 3, replace=False)] = "Yes"
    return pd.DataFrame(
        {
            PLANTED.id_column: [f"L{i:06d}" for i in range(rows)],
            PLANTED.record_number: 600_000 + rng.permutation(rows),
            "engagement": engagement.round(1),
            "web_visits": rng.poisson(1 + engagement / 25),
            "company_size": company_size,
            "region": region,
            "specialization": with_placeholder(["finance", "it", "marketing", "operations", "sales"], 0.35),
            "city": with_placeholder(["mumbai", "pune", "delhi", "chennai"], 0.15),
            "heard_from": with_placeholder(["search", "referral", "ads", "event"], 0.1),
            PLANTED.leak: tag,
            "magazine": "No",
            "country": "India",
            PLANTED.near_constant: do_not_call,
            PLANTED.target: converted,
        }
    )


def planted_leakage(config: LeakageConfig, *, rows: int = 2_000, seed: int = 0) -> LeakageReport:
    """The evaluation's leakage report for a model trained on ``planted_table``: one-feature AUCs measured on
    the table, importance shares of a model that leans on the tag (as a model fitted on it does)."""
    frame = planted_table(rows, seed)
    aucs, checked = single_feature_auc(
        frame,
        frame[PLANTED.target].to_numpy(),
        numeric=PLANTED.numeric,
        categorical=[*PLANTED.categorical, PLANTED.leak],
        folds=config.folds,
        max_rows=config.max_rows,
        seed=seed,
    )
    importance = {PLANTED.leak: 0.30, "engagement": 0.05, "web_visits": 0.01, "region": 0.004}
    shares = importance_shares({name: importance.get(name, 0.0) for name in aucs})
    return leakage_report(aucs, config, target=PLANTED.target, rows=checked, shares=shares)
