"""Reading and writing tabular files (CSV or Parquet, chosen by extension).

Kept free of Prefect so that the CLI, tasks, batch scoring and tests share one reader: the
same delimiter sniffing and missing-value tokens apply everywhere a file is read.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.errors import DataFileError

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
SNIFF_BYTES = 64 * 1024
CANDIDATE_DELIMITERS = ",;\t|"


def file_format(path: Path) -> str:
    """Return ``"csv"`` or ``"parquet"`` from the file's extension."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise DataFileError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv or .parquet")


def check_data_file(path: Path) -> None:
    """Fail fast, before any heavy work, if ``path`` cannot possibly be read."""
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    if not path.is_file():
        raise DataFileError(f"{path}: not a file")
    file_format(path)
    if path.stat().st_size == 0:
        raise DataFileError(f"{path}: file is empty")


def sniff_delimiter(path: Path) -> str:
    """Guess a CSV delimiter from the first bytes; ``,`` and ``;`` files both exist in the wild."""
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        sample = handle.read(SNIFF_BYTES)
    header = sample.splitlines()[0] if sample else ""
    try:
        return csv.Sniffer().sniff(sample, delimiters=CANDIDATE_DELIMITERS).delimiter
    except csv.Error:
        # One-column files or odd quoting defeat the sniffer: fall back to the header's most
        # frequent candidate, else a comma.
        counts = {d: header.count(d) for d in CANDIDATE_DELIMITERS}
        best = max(counts, key=counts.__getitem__)
        return best if counts[best] else ","


def read_table(
    path: Path,
    *,
    delimiter: str | None = None,
    na_values: Sequence[str] = (),
    parse_dates: Sequence[str] = (),
) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame, or raise ``DataFileError`` saying why not.

    ``na_values`` adds missing-value tokens (e.g. a single blank, a form's "Select") on top of pandas'
    defaults; in a Parquet file they apply to its text columns (its other columns are typed already);
    ``parse_dates`` names columns read as datetimes (unparseable values become NaT, which the
    validation suite's null checks then report).
    """
    check_data_file(path)
    if file_format(path) == "parquet":
        try:
            df = pq.read_table(path).to_pandas()
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataFileError(f"{path}: unreadable Parquet file ({exc})") from exc
        tokens = list(na_values)
        for column in df.columns if tokens else ():
            dtype = df[column].dtype
            if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
                df[column] = df[column].mask(df[column].isin(tokens))
    else:
        sep = delimiter or sniff_delimiter(path)
        try:
            df = pd.read_csv(path, sep=sep, na_values=list(na_values) or None, low_memory=False)
        except pd.errors.EmptyDataError as exc:
            raise DataFileError(f"{path}: file has no header or data") from exc
        except pd.errors.ParserError as exc:
            reason = str(exc).strip().splitlines()[-1]
            raise DataFileError(f"{path}: malformed CSV ({reason})") from exc
        except UnicodeDecodeError as exc:
            raise DataFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    if df.empty:
        raise DataFileError(f"{path}: no data rows (only a header)")
    for column in parse_dates:
        if column in df.columns and not pd.api.types.is_datetime64_any_dtype(df[column]):
            df[column] = pd.to_datetime(df[column], errors="coerce", format="mixed")
    return df


def write_table(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` as CSV or Parquet (by extension), creating the parent folder.

    Written to a temporary sibling first and renamed, so a crash never leaves a half file.
    """
    fmt = file_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)
    else:
        # pandas rather than Arrow: a CSV column may legitimately mix types (e.g. blanks in numbers).
        df.to_csv(tmp, index=False, date_format="%Y-%m-%d %H:%M:%S")
    tmp.replace(path)
    return path


def data_fingerprint(df: pd.DataFrame) -> str:
    """Content hash of a frame (values, column names and order), for lineage tags."""
    import hashlib

    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, df.columns)).encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]
