"""Infer column roles and types from a sample of the user's data.

The result seeds a runnable pipeline config and a starter expectation suite. Whatever cannot
be typed cleanly is reported, never silently guessed: a user edits both files afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from models.errors import UserInputError

Role = Literal["id", "target", "numeric", "categorical", "datetime", "ignored"]

MAX_CATEGORIES = 50
# Tokens that exports use for "no value" inside otherwise numeric columns.
MISSING_TOKENS = {"", "na", "n/a", "nan", "null", "none", "-", "?", "missing"}
POSITIVE_WORDS = {"1", "yes", "y", "true", "t", "positive", "converted", "churn", "churned", "won"}
ID_NAME = re.compile(r"(^id$|_id$|id$|^uuid$|_key$)", re.IGNORECASE)


class ProfileError(UserInputError):
    """The data cannot seed a pipeline (e.g. the target is missing or not binary)."""


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    role: Role
    dtype: str
    null_rate: float
    n_unique: int
    note: str = ""


@dataclass(frozen=True)
class DataProfile:
    """Column roles plus everything a human should check before training on this data."""

    rows: int
    target: str
    positive_class: str | int | bool
    columns: list[ColumnProfile]
    na_values: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)

    def names(self, role: Role) -> list[str]:
        return [c.name for c in self.columns if c.role == role]

    @property
    def id_column(self) -> str | None:
        ids = self.names("id")
        return ids[0] if ids else None


def _positive_class(values: list) -> tuple[str | int | bool, str | None]:
    """Pick the positive label; returns it and an issue when the choice is a guess."""
    if set(values) <= {0, 1} or set(values) <= {True, False}:
        return (True if any(isinstance(v, bool | np.bool_) for v in values) else 1), None
    for value in values:
        if str(value).strip().lower() in POSITIVE_WORDS:
            return value, None
    return values[-1], f"positive class guessed as {values[-1]!r}: set data.positive_class if wrong"


def _non_numeric_tokens(series: pd.Series) -> tuple[float, list[str]]:
    """Share of non-null values that parse as numbers, and the distinct tokens that do not."""
    present = series.dropna()
    if present.empty:
        return 0.0, []
    parsed = pd.to_numeric(present, errors="coerce")
    bad = present[parsed.isna()].astype(str)
    return 1.0 - len(bad) / len(present), sorted(bad.unique().tolist())[:10]


def _looks_like_dates(series: pd.Series) -> bool:
    sample = series.dropna().astype(str).head(500)
    if sample.empty or not sample.str.contains(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}").all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().all())


def profile_frame(df: pd.DataFrame, target: str, *, max_categories: int = MAX_CATEGORIES) -> DataProfile:
    """Assign each column a role; collect every doubt as an issue string."""
    if target not in df.columns:
        raise ProfileError(
            f"target column {target!r} not found; columns are: {', '.join(map(str, df.columns))}"
        )
    labels = df[target].dropna().unique().tolist()
    if len(labels) != 2:
        raise ProfileError(
            f"target column {target!r} must have exactly 2 values, found {len(labels)}: {labels[:10]}"
        )
    if df[target].isna().any():
        raise ProfileError(f"target column {target!r} has {int(df[target].isna().sum())} missing labels")
    positive, guess = _positive_class(sorted(labels, key=str))
    issues = [guess] if guess else []
    na_values: list[str] = []
    columns: list[ColumnProfile] = []
    n = len(df)
    for name in df.columns:
        s = df[name]
        null_rate = float(s.isna().mean())
        n_unique = int(s.nunique(dropna=True))
        dtype = str(s.dtype)
        role: Role
        note = ""
        if name == target:
            role = "target"
        elif ID_NAME.search(str(name)) and n_unique == n and null_rate == 0.0:
            role = "id"
        elif pd.api.types.is_bool_dtype(s):
            role = "categorical"
        elif pd.api.types.is_numeric_dtype(s):
            role = "numeric"
        elif pd.api.types.is_datetime64_any_dtype(s):
            role = "datetime"
        else:
            share, tokens = _non_numeric_tokens(s)
            if share >= 0.95 and tokens:
                if all(t.strip().lower() in MISSING_TOKENS for t in tokens):
                    role = "numeric"
                    na_values.extend(t for t in tokens if t not in na_values)
                    note = f"numeric except blank/missing tokens {tokens}: read as missing (data.na_values)"
                else:
                    role = "ignored"
                    note = (
                        f"mostly numeric but holds non-numbers {tokens}: fix the data or set a role by hand"
                    )
                issues.append(f"column {name!r}: {note}")
            elif _looks_like_dates(s):
                role = "datetime"
            elif n_unique <= max_categories:
                role = "categorical"
            elif n_unique == n:
                role = "ignored"
                note = "unique text per row (an identifier?): not used as a feature"
                issues.append(f"column {name!r}: {note}")
            else:
                role = "ignored"
                note = f"{n_unique} distinct text values (> {max_categories}): not used as a feature"
                issues.append(f"column {name!r}: {note}")
        if role in ("numeric", "categorical") and null_rate == 1.0:
            role, note = "ignored", "all values missing"
            issues.append(f"column {name!r}: {note}")
        columns.append(ColumnProfile(str(name), role, dtype, null_rate, n_unique, note))
    profile = DataProfile(n, target, positive, columns, na_values, issues)
    if not profile.names("numeric") and not profile.names("categorical"):
        raise ProfileError("no usable feature columns found (every column is an id, the target or ignored)")
    return profile
