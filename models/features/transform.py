"""Feature encoding fitted on the training split: numeric standardisation and categorical vocabularies.

The fitted `FeatureTransform` is saved with the model and reused verbatim by batch scoring and serving, so
its statistics round-trip exactly through JSON (Python floats keep every bit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.errors import UserInputError
from models.features.config import FeatureConfig

MISSING_INDEX = 0  # categorical index of a missing value (NaN/None)
UNKNOWN_INDEX = 1  # categorical index of a value not in the training vocabulary
N_RESERVED = 2  # known values start here
_FORMAT_VERSION = 1


class MissingColumnsError(UserInputError):
    """Raised when a frame lacks columns the transform was fitted on; `columns` lists them."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        super().__init__(f"missing feature columns: {', '.join(columns)}")


@dataclass(frozen=True)
class EncodedFeatures:
    """Model-ready arrays: standardised numerics and categorical indices, row-aligned."""

    numeric: np.ndarray  # [n, n_numeric] float32
    categorical: np.ndarray  # [n, n_categorical] int64

    def __post_init__(self) -> None:
        assert self.numeric.dtype == np.float32 and self.numeric.ndim == 2
        assert self.categorical.dtype == np.int64 and self.categorical.ndim == 2
        assert len(self.numeric) == len(self.categorical)

    def __len__(self) -> int:
        return len(self.numeric)


def _numeric_block(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Columns as a float64 [n, k] array with NaN for missing (and non-finite) values."""
    for column in columns:
        dtype = df[column].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            raise UserInputError(f"numeric column {column!r} has non-numeric dtype {dtype}")
    if not columns:
        return np.empty((len(df), 0), dtype=np.float64)
    block = df[columns].to_numpy(dtype=np.float64, na_value=np.nan)  # [n, k]
    block[~np.isfinite(block)] = np.nan  # inf is as uninformative as a missing value
    return block


SKEW_THRESHOLD = 2.0
STANDARDISED_LIMIT = 1e4  # |standardised numeric| is clipped here


def _skewed_non_negative(block: np.ndarray) -> np.ndarray:
    """Columns to log-scale: never negative and strongly right-skewed (amounts, counts, sizes).

    Standardising a heavy tail squeezes most rows into a sliver of the input range; trees do not
    care, a network does.
    """
    flags = np.zeros(block.shape[1], dtype=bool)
    for j in range(block.shape[1]):
        x = block[:, j][~np.isnan(block[:, j])]
        if len(x) < 3 or x.min() < 0 or x.std() == 0:
            continue
        skew = float(np.mean(((x - x.mean()) / x.std()) ** 3))
        flags[j] = skew > SKEW_THRESHOLD
    return flags


def _log_scale(block: np.ndarray, flags: np.ndarray) -> np.ndarray:
    if not flags.any():
        return block
    out = block.copy()
    out[:, flags] = np.log1p(np.maximum(out[:, flags], 0.0))  # NaN stays NaN
    return out


def _category_str(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def _factorize_as_str(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes into the distinct values cast to str (-1 = missing) without casting every row.

    Hashing the raw values first and casting only the distinct ones keeps 1M rows well under a second.
    Integral floats are written as ints: an int code column turns float as soon as a batch holds a NaN,
    and 3.0 must still find the vocabulary entry "3".
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)  # codes [n] int64, -1 for NaN/None
    values = np.asarray(uniques)
    if values.dtype.kind in "iub":
        return codes, values.astype(str)
    if values.dtype.kind == "f":
        as_str = values.astype(str).astype(object)
        integral = (np.mod(values, 1) == 0) & (np.abs(values) < 2**53)
        as_str[integral] = values[integral].astype(np.int64).astype(str)
        return codes, as_str
    return codes, np.array([_category_str(v) for v in values], dtype=object)


class FeatureTransform:
    """Encodes a frame into `EncodedFeatures` with statistics fitted on the training split only.

    Numeric: missing (NaN, None, inf) -> training median, then (x - mean) / std with the training mean/std (std 0 -> 1).
    Categorical: values cast to str; index 0 = missing, 1 = unknown/rare, 2.. = training vocabulary.
    """

    def __init__(
        self,
        spec: FeatureConfig,
        medians: list[float],
        means: list[float],
        stds: list[float],
        vocabularies: list[list[str]],
        log_scaled: list[bool] | None = None,
        ranges: list[list[float]] | None = None,
    ) -> None:
        assert len(medians) == len(means) == len(stds) == len(spec.numeric)
        self.log_scaled = [bool(v) for v in (log_scaled or [False] * len(spec.numeric))]
        assert len(self.log_scaled) == len(spec.numeric)
        assert len(vocabularies) == len(spec.categorical)
        self.spec = spec
        self.medians = [float(v) for v in medians]
        self.means = [float(v) for v in means]
        self.stds = [float(v) for v in stds]
        self.vocabularies = [list(v) for v in vocabularies]
        # Raw [min, max] of each numeric column's observed training values ([nan, nan] if none); None in
        # transforms saved before ranges were kept, which then flag nothing.
        self.ranges = (
            None
            if ranges is None
            else [
                [np.nan if lo is None else float(lo), np.nan if hi is None else float(hi)]
                for lo, hi in ranges
            ]
        )
        assert self.ranges is None or len(self.ranges) == len(spec.numeric)
        # Built once here, not per transform call.
        self._lookups = [
            {value: i + N_RESERVED for i, value in enumerate(vocab)} for vocab in self.vocabularies
        ]
        self._medians = np.asarray(self.medians, dtype=np.float64)
        self._means = np.asarray(self.means, dtype=np.float64)
        self._stds = np.asarray(self.stds, dtype=np.float64)
        self._log = np.asarray(self.log_scaled, dtype=bool)

    @classmethod
    def fit(cls, df: pd.DataFrame, spec: FeatureConfig) -> FeatureTransform:
        """Fit on the training split only, so validation/test rows never leak into the statistics."""
        _check_columns(df, spec.numeric + spec.categorical)
        block = _numeric_block(df, spec.numeric)  # [n, k] float64 with NaN
        observed_any = ~np.isnan(block).all(axis=0) if len(block) else np.zeros(block.shape[1], bool)
        ranges = np.full((block.shape[1], 2), np.nan)
        if observed_any.any():
            ranges[observed_any, 0] = np.nanmin(block[:, observed_any], axis=0)
            ranges[observed_any, 1] = np.nanmax(block[:, observed_any], axis=0)
        log_scaled = (
            _skewed_non_negative(block) if spec.log_transform_skewed else np.zeros(block.shape[1], bool)
        )
        block = _log_scale(block, log_scaled)
        medians = np.zeros(block.shape[1])
        observed = ~np.isnan(block).all(axis=0)
        medians[observed] = np.nanmedian(block[:, observed], axis=0)  # all-missing column -> 0
        imputed = np.where(np.isnan(block), medians, block)
        means = imputed.mean(axis=0) if len(imputed) else np.zeros(block.shape[1])
        stds = imputed.std(axis=0) if len(imputed) else np.ones(block.shape[1])
        stds = np.where(stds > 0, stds, 1.0)

        vocabularies = []
        for column in spec.categorical:
            codes, uniques = _factorize_as_str(df[column])
            counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
            # Distinct raw values can share a str form (1 and "1"): count by str form.
            by_value = pd.Series(counts).groupby(uniques).sum()
            kept = by_value[by_value >= spec.min_category_count].index
            vocabularies.append(sorted(str(v) for v in kept))  # sorted: independent of row order

        return cls(
            spec=spec,
            medians=medians.tolist(),
            means=means.tolist(),
            stds=stds.tolist(),
            vocabularies=vocabularies,
            log_scaled=log_scaled.tolist(),
            ranges=ranges.tolist(),
        )

    def out_of_range(self, block: np.ndarray, margin: float) -> np.ndarray:
        """[n, n_numeric] bool: raw values (``block``, NaN = missing) beyond the training range by more than
        ``margin`` times its width (a constant column: by more than ``margin``). Missing values and columns
        never observed in training are not flagged; all False for transforms saved without ranges."""
        flagged = np.zeros(block.shape, dtype=bool)
        if self.ranges is None:
            return flagged
        bounds = np.asarray(self.ranges, dtype=np.float64)  # [k, 2]
        width = bounds[:, 1] - bounds[:, 0]
        slack = margin * np.where(width > 0, width, 1.0)
        with np.errstate(invalid="ignore"):
            flagged = (block < bounds[:, 0] - slack) | (block > bounds[:, 1] + slack)
        return flagged & ~np.isnan(block)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table size per categorical column, including the missing and unknown indices."""
        return [len(vocab) + N_RESERVED for vocab in self.vocabularies]

    @property
    def n_numeric(self) -> int:
        return len(self.spec.numeric)

    def check_columns(self, df: pd.DataFrame) -> None:
        """Raise `MissingColumnsError` naming every fitted column absent from `df`."""
        _check_columns(df, self.spec.numeric + self.spec.categorical)

    def canonical_inputs(self, df: pd.DataFrame) -> pd.DataFrame:
        """The feature columns in the one schema every scoring path accepts.

        Numerics as float64 (an int column turns float as soon as a batch holds a missing value),
        categoricals as the strings the vocabulary holds, missing values as NaN/None. Encoding the
        result gives exactly the same arrays as encoding ``df``.
        """
        self.check_columns(df)
        out = pd.DataFrame(index=df.index)
        for column in self.spec.numeric:
            block = _numeric_block(df, [column])[:, 0]  # raises naming a non-numeric column
            out[column] = block
        for column in self.spec.categorical:
            codes, uniques = _factorize_as_str(df[column])
            values = (
                np.asarray(uniques, dtype=object)[np.maximum(codes, 0)]
                if len(uniques)
                else np.full(len(df), None)
            )
            out[column] = np.where(codes >= 0, values, None)
        return out

    def transform(self, df: pd.DataFrame) -> EncodedFeatures:
        """Encode `df` (extra columns are ignored); vectorised, about a second for 1M rows."""
        self.check_columns(df)
        numeric = self._encode_numeric(_numeric_block(df, self.spec.numeric))

        categorical = np.empty((len(df), len(self.spec.categorical)), dtype=np.int64)  # [n, n_cat]
        for j, (column, lookup) in enumerate(zip(self.spec.categorical, self._lookups, strict=True)):
            codes, uniques = _factorize_as_str(df[column])
            # One dict lookup per distinct value, then a vectorised gather over rows.
            index_of_unique = np.fromiter(
                (lookup.get(value, UNKNOWN_INDEX) for value in uniques), dtype=np.int64, count=len(uniques)
            )
            categorical[:, j] = np.where(
                codes >= 0, index_of_unique[np.maximum(codes, 0)] if len(uniques) else 0, MISSING_INDEX
            )
        return EncodedFeatures(numeric=np.ascontiguousarray(numeric), categorical=categorical)

    def encode_rows(self, numeric: np.ndarray, categorical: Sequence[Sequence[Any]]) -> EncodedFeatures:
        """The serving path: encode rows given as arrays, with no DataFrame.

        ``numeric`` is [n, n_numeric] float64 in ``spec.numeric`` order (NaN or ±inf = missing, as in
        `transform`); ``categorical`` holds one sequence of n raw values per ``spec.categorical`` column
        (None or NaN = missing), each cast to str as `transform` casts it (``3`` and ``3.0`` -> ``"3"``) and
        looked up in the vocabulary dict. Gives the same arrays as `transform` of the same rows, except that a
        column mixing values that compare equal across types (``1``, ``1.0`` and ``True`` in one batch) is
        merged by pandas there before the cast and not here.
        """
        block = np.array(numeric, dtype=np.float64, copy=True).reshape(-1, self.n_numeric)  # [n, n_numeric]
        block[~np.isfinite(block)] = np.nan
        n = len(block)
        codes = np.empty((n, len(self.spec.categorical)), dtype=np.int64)  # [n, n_cat]
        for j, (values, lookup) in enumerate(zip(categorical, self._lookups, strict=True)):
            assert len(values) == n, "every categorical column needs one value per row"
            # Strings, the common case, go straight to the dict; everything else is cast as `transform` casts it.
            codes[:, j] = [
                lookup.get(v, UNKNOWN_INDEX)
                if type(v) is str
                else MISSING_INDEX
                if v is None or (isinstance(v, float) and v != v)
                else lookup.get(_category_str(v), UNKNOWN_INDEX)
                for v in values
            ]
        return EncodedFeatures(numeric=self._encode_numeric(block), categorical=codes)

    def _encode_numeric(self, block: np.ndarray) -> np.ndarray:
        """Raw numerics [n, n_numeric] float64 (NaN = missing) -> log-scaled, imputed, standardised float32."""
        block = _log_scale(block, self._log)
        block = np.where(np.isnan(block), self._medians, block)
        with np.errstate(over="ignore"):
            standardised = (block - self._means) / self._stds
        # Bounded so that an absurd input (1e308) stays finite in float32; no real value is this many
        # training standard deviations out.
        return np.ascontiguousarray(
            np.clip(standardised, -STANDARDISED_LIMIT, STANDARDISED_LIMIT).astype(np.float32)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; floats are Python floats so the round-trip is bit-exact."""
        return {
            "format_version": _FORMAT_VERSION,
            "spec": self.spec.model_dump(),
            "medians": list(self.medians),
            "means": list(self.means),
            "stds": list(self.stds),
            "vocabularies": [list(v) for v in self.vocabularies],
            "log_scaled": list(self.log_scaled),
            # null, not NaN, for a column never observed in training: strict JSON, and equal after a round trip
            "ranges": None
            if self.ranges is None
            else [[None if np.isnan(v) else v for v in r] for r in self.ranges],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> FeatureTransform:
        """Inverse of `to_dict`."""
        if state.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"unsupported transform format_version: {state.get('format_version')!r}")
        return cls(
            spec=FeatureConfig.model_validate(state["spec"]),
            medians=state["medians"],
            means=state["means"],
            stds=state["stds"],
            vocabularies=state["vocabularies"],
            log_scaled=state["log_scaled"],
            ranges=state.get("ranges"),  # absent in transforms saved before ranges were kept
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureTransform) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable-looking state: not hashable


def _check_columns(df: pd.DataFrame, columns: list[str]) -> None:
    missing = [column for column in columns if column not in df.columns]
    if missing:
        raise MissingColumnsError(missing)
