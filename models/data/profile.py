"""Infer column roles and types from a sample of the user's data, and catch what would not hold in production.

The result seeds a runnable pipeline config and a starter expectation suite. Whatever cannot be typed
cleanly is reported, never silently guessed: a user edits both files afterwards. Beyond types, the
profile leaves out what is not a feature (identifiers, free text, constant and near-constant columns),
proposes the placeholders a web form writes for "no answer" as missing values, and (``check_leakage``)
flags features that predict the label too well to be known when the prediction is made.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from models.data.config import LeakageConfig
from models.data.leakage import LeakageReport, leakage_report, single_feature_auc
from models.errors import UserInputError

Role = Literal["id", "target", "numeric", "categorical", "datetime", "ignored"]

MAX_CATEGORIES = 50
# What exports and web forms write for "no value" (compared lower-case, trimmed). Inside an otherwise numeric
# column any of them is read as missing; in a text column "none" or "unknown" can be a real answer, so there
# a token is only proposed when frequent (see PLACEHOLDER_MIN_SHARE).
PLACEHOLDER_TOKENS = {
    "",
    "na",
    "n/a",
    "nan",
    "null",
    "none",
    "-",
    "?",
    "missing",
    "select",
    "please select",
    "select one",
    "choose",
    "choose one",
    "unknown",
    "not known",
    "not specified",
    "unspecified",
    "not provided",
    "not available",
    "no answer",
    "blank",
    "empty",
    "undefined",
    "nil",
    "#n/a",
    "--",
}
# A placeholder counts in a column from 1% of its values: found so in two columns, or the commonest value
# of one and at least a tenth of it, it is proposed as a missing value.
PLACEHOLDER_MIN_SHARE = 0.01
PLACEHOLDER_MIN_COLUMNS = 2
PLACEHOLDER_DOMINANT_SHARE = 0.1
# A text column whose values parse as numbers at least this often is a numeric column with a few tokens.
NUMERIC_TEXT_SHARE = 0.95
# One value (missing counted as a value) in this share of rows: the column says nothing about 199 rows
# of 200 and is left out.
NEAR_CONSTANT_SHARE = 0.995
# A column whose values are distinct in this share of rows is an identifier (or free text), not a feature.
IDENTIFIER_DISTINCT_SHARE = 0.99
# An integer column without an id-like name is an identifier only when its values also span at most this
# many times the row count: a measurement drawn from such a range repeats a value in about 5% of rows by
# chance (n draws from 10 n values leave 95% distinct), a record number never does.
IDENTIFIER_MAX_SPAN = 10
POSITIVE_WORDS = {"1", "yes", "y", "true", "t", "positive", "converted", "churn", "churned", "won"}
ID_NAME = re.compile(r"(^id$|_id$|id$|^uuid$|_key$)", re.IGNORECASE)
LEFT_OUT = "left out (features.exclude)"


class ProfileError(UserInputError):
    """The data cannot seed a pipeline (e.g. the target is missing or not binary)."""


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    role: Role
    dtype: str
    null_rate: float
    n_unique: int
    note: str = ""  # the full sentence, printed below the table and written as a comment in the config
    flag: str = ""  # a word or two for the table's narrow column: "identifier", "constant", "leakage?"


@dataclass(frozen=True)
class Placeholder:
    """A token that stands for "no answer", with the columns it fills (name -> share of their values)."""

    token: str  # as it is spelled in the data (data.na_values matches exactly)
    columns: dict[str, float]
    dominant_in: list[str]  # columns where it is the commonest value

    def describe(self) -> str:
        shares = ", ".join(f"{name} ({share:.0%})" for name, share in self.columns.items())
        commonest = f"; the commonest value of {', '.join(self.dominant_in)}" if self.dominant_in else ""
        return f"{self.token!r} stands for no answer in {len(self.columns)} column(s): {shares}{commonest}"


@dataclass(frozen=True)
class DataProfile:
    """Column roles plus everything a human should check before training on this data."""

    rows: int
    target: str
    positive_class: str | int | bool
    columns: list[ColumnProfile]
    na_values: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    id_column: str | None = None  # the identifier that becomes data.id_column: unique, never missing
    placeholders: list[Placeholder] = field(default_factory=list)  # proposed as data.na_values
    leakage: LeakageReport | None = None  # filled by check_leakage

    def names(self, role: Role) -> list[str]:
        return [c.name for c in self.columns if c.role == role]

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)

    @property
    def excluded(self) -> list[str]:
        """Columns left out of the model on purpose (identifiers but the id column, free text, constants)."""
        return [c.name for c in self.columns if c.role in ("id", "ignored") and c.name != self.id_column]

    @property
    def features(self) -> list[str]:
        return [c.name for c in self.columns if c.role in ("numeric", "categorical")]


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
    counts = series.dropna().astype(str).value_counts()  # each distinct value parsed once
    if counts.empty:
        return 0.0, []
    parsed = pd.to_numeric(pd.Series(counts.index), errors="coerce").notna().to_numpy()
    bad = counts[~parsed]
    return 1.0 - bad.sum() / counts.sum(), sorted(bad.index.tolist())[:10]


def _looks_like_dates(series: pd.Series) -> bool:
    sample = series.dropna().astype(str).head(500)
    if sample.empty or not sample.str.contains(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}").all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().all())


def _is_text(series: pd.Series) -> bool:
    return not (
        pd.api.types.is_bool_dtype(series)
        or pd.api.types.is_numeric_dtype(series)
        or pd.api.types.is_datetime64_any_dtype(series)
    )


def is_placeholder(value: str) -> bool:
    """Whether a text value is one of the ways forms and exports write "no answer" ("-- Select --", "N/A")."""
    norm = value.strip().lower()
    core = norm.strip(" -_[]()<>*.:")
    return norm in PLACEHOLDER_TOKENS or (bool(core) and core in PLACEHOLDER_TOKENS)


def find_placeholders(
    df: pd.DataFrame, *, exclude: Collection[str] = (), keep: Collection[str] = ()
) -> list[Placeholder]:
    """Placeholder tokens frequent enough to be missing values in disguise, most widespread first.

    A token counts in a text column from ``PLACEHOLDER_MIN_SHARE`` of its values; it is proposed when it
    counts in ``PLACEHOLDER_MIN_COLUMNS`` columns or is the commonest value of one (from
    ``PLACEHOLDER_DOMINANT_SHARE``). ``keep`` lists tokens a person said are real answers; ``exclude``
    columns are not searched (the target). Numbers stored as text are left to the numeric typing, which
    reads their tokens as missing already.
    """
    found: dict[str, dict[str, float]] = {}
    dominant: dict[str, list[str]] = {}
    for name in df.columns:
        series = df[name]
        if name in exclude or not _is_text(series):
            continue
        counts = series.dropna().astype(str).value_counts()
        if counts.empty:
            continue
        total = counts.sum()
        frequent = counts[counts >= PLACEHOLDER_MIN_SHARE * total]
        tokens = [v for v in frequent.index if v not in keep and is_placeholder(v)]
        if not tokens or _non_numeric_tokens(series)[0] >= NUMERIC_TEXT_SHARE:
            continue
        for value in tokens:
            share = frequent[value] / total
            found.setdefault(value, {})[str(name)] = float(share)
            if value == counts.index[0] and share >= PLACEHOLDER_DOMINANT_SHARE:
                dominant.setdefault(value, []).append(str(name))
    proposed = [
        Placeholder(token, columns, dominant.get(token, []))
        for token, columns in found.items()
        if len(columns) >= PLACEHOLDER_MIN_COLUMNS or token in dominant
    ]
    return sorted(proposed, key=lambda p: (-len(p.columns), p.token))


def _constant(series: pd.Series, n: int) -> str | None:
    """A note when one value (missing counted as one) fills the column or all but a sliver of it."""
    counts = series.value_counts(dropna=False)
    if counts.empty:
        return "empty column"
    top, share = counts.index[0], counts.iloc[0] / n
    value = "missing" if pd.isna(top) else repr(top.item() if hasattr(top, "item") else top)
    if len(counts) == 1:
        return f"constant: {value} in every row"
    if share >= NEAR_CONSTANT_SHARE:
        return f"near-constant: {value} in {share:.1%} of rows ({n - counts.iloc[0]:,} rows differ)"
    return None


def _identifier(series: pd.Series, name: str, n: int, n_unique: int) -> str | None:
    """A note when a column holds a distinct value in (nearly) every row: an id-like name, an integer
    record number, or a text key; free text (values with spaces) is told apart."""
    if n_unique < IDENTIFIER_DISTINCT_SHARE * n or n_unique < 2 or pd.api.types.is_float_dtype(series):
        return None  # fractional numbers are measurements, whatever the name ("amount_paid" ends in "id")
    if ID_NAME.search(name):
        return f"identifier: a distinct value in {n_unique / n:.1%} of rows"
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
        return None
    if pd.api.types.is_integer_dtype(series):
        present = series.dropna()
        span = int(present.max()) - int(present.min()) + 1
        if span <= IDENTIFIER_MAX_SPAN * n_unique:
            return f"identifier: a distinct number in {n_unique / n:.1%} of rows, not a measurement"
        return None
    if not _is_text(series):
        return None
    if series.dropna().astype(str).head(1000).str.contains(r"\s").mean() > 0.5:
        return "free text: distinct in (nearly) every row"
    return f"identifier: a distinct value in {n_unique / n:.1%} of rows"


def _mask(df: pd.DataFrame, tokens: Collection[str], exclude: str) -> tuple[pd.DataFrame, set[str]]:
    """``df`` with the placeholder tokens read as missing in its text columns, as the pipeline will read it,
    and the columns that held one."""
    if not tokens:
        return df, set()
    out, masked = df.copy(), set()
    for name in out.columns:
        if name != exclude and _is_text(out[name]):
            hit = out[name].astype(object).isin(list(tokens))
            if hit.any():
                out[name] = out[name].mask(hit)
                masked.add(str(name))
    return out, masked


def profile_frame(
    df: pd.DataFrame, target: str, *, max_categories: int = MAX_CATEGORIES, not_missing: Collection[str] = ()
) -> DataProfile:
    """Assign each column a role; collect every doubt as an issue string.

    ``not_missing`` lists tokens a person said are real answers: never proposed as missing values.
    """
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
    placeholders = find_placeholders(df, exclude={target}, keep=set(not_missing))
    na_values: list[str] = [p.token for p in placeholders]
    for p in placeholders:
        issues.append(
            f"{p.describe()}: proposed as data.na_values (read as missing). If it is a real answer here, "
            f"run the profile again with --not-missing {p.token!r}"
        )
    df_raw = df
    df, masked = _mask(df, na_values, target)
    columns: list[ColumnProfile] = []
    n = len(df)
    for name in df.columns:
        s = df[name]
        null_rate = float(s.isna().mean())
        n_unique = int(s.nunique(dropna=True))
        dtype = str(s.dtype)
        role: Role
        note = flag = ""
        constant = None if name == target else _constant(s, n)
        identifier = None if name == target or constant else _identifier(s, str(name), n, n_unique)
        text = _is_text(s)
        named_id = bool(identifier) and bool(ID_NAME.search(str(name)))
        # Parsing every value as a number is the slowest step: skipped where the role is known already.
        typed = name == target or constant or named_id
        share, tokens = _non_numeric_tokens(s) if text and not typed else (0.0, [])
        if name == target:
            role = "target"
        elif constant:
            role, note, flag = "ignored", f"{constant}: {LEFT_OUT}", constant.split(":")[0]
        elif identifier and (
            named_id or not (text and (share >= NUMERIC_TEXT_SHARE or _looks_like_dates(s)))
        ):
            # Unnamed numbers or dates stored as text are distinct per row for other reasons: typed below.
            role = "ignored" if identifier.startswith("free text") else "id"
            note, flag = identifier, identifier.split(":")[0]
            note = note if role == "id" else f"{note}: {LEFT_OUT}"
        elif pd.api.types.is_bool_dtype(s):
            role = "categorical"
        elif pd.api.types.is_numeric_dtype(s):
            role = "numeric"
        elif pd.api.types.is_datetime64_any_dtype(s):
            role = "datetime"
        elif share >= NUMERIC_TEXT_SHARE and (tokens or name in masked):
            if all(is_placeholder(t) for t in tokens):
                role, flag = "numeric", "blanks"
                na_values.extend(t for t in tokens if t not in na_values)
                found = tokens or [t for t in na_values if (df_raw[name].astype(object) == t).any()]
                note = f"numeric except blank/missing tokens {found}: read as missing (data.na_values)"
            else:
                role, flag = "ignored", "not numbers"
                note = f"mostly numeric but holds non-numbers {tokens}: fix the data or set a role by hand"
        elif _looks_like_dates(s):
            role = "datetime"
        elif n_unique <= max_categories:
            role = "categorical"
        else:
            role, flag = "ignored", "many values"
            note = f"{n_unique} distinct text values (> {max_categories}): {LEFT_OUT}"
        columns.append(ColumnProfile(str(name), role, dtype, null_rate, n_unique, note, flag))
    keys = [c for c in columns if c.role == "id" and c.n_unique == n and c.null_rate == 0.0]
    # An id-like name wins (a lead_id over a record number); else the first unique identifier.
    keys.sort(key=lambda c: not ID_NAME.search(c.name))
    id_column = keys[0].name if keys else None
    columns = [
        replace(c, note=f"{c.note}: " + ("data.id_column" if c.name == id_column else LEFT_OUT))
        if c.role == "id"
        else c
        for c in columns
    ]
    issues += [f"column {c.name!r}: {c.note}" for c in columns if c.note]
    profile = DataProfile(n, target, positive, columns, na_values, issues, id_column, placeholders)
    if not profile.features:
        raise ProfileError("no usable feature columns found (every column is an id, the target or ignored)")
    return profile


def check_leakage(profile: DataProfile, df: pd.DataFrame, config: LeakageConfig, *, seed: int) -> DataProfile:
    """The profile with each feature's one-feature ROC AUC, and a note on every feature above the limit.

    ``df`` is the table as the pipeline reads it (placeholders and blanks missing). The features are the
    profile's numeric and categorical columns; ``seed`` draws the folds (and the sample of a large table).
    """
    y = (df[profile.target] == profile.positive_class).to_numpy(dtype=np.float64)
    aucs, rows = single_feature_auc(
        df,
        y,
        numeric=profile.names("numeric"),
        categorical=profile.names("categorical"),
        folds=config.folds,
        max_rows=config.max_rows,
        seed=seed,
    )
    report = leakage_report(aucs, config, target=profile.target, rows=rows)
    columns, issues = [], list(profile.issues)
    for c in profile.columns:
        finding = report.of(c.name)
        if finding is not None and finding.flagged:
            note = finding.sentence()
            c = replace(c, note=f"{c.note}; {note}" if c.note else note, flag="leakage?")
            issues.append(f"column {c.name!r}: {note}")
        columns.append(c)
    return replace(profile, columns=columns, issues=issues, leakage=report)
