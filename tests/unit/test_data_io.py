"""Reading and generating tables: formats, sniffing, determinism, clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.data.io import read_table, sniff_delimiter, write_table
from models.data.synthetic import LeadSchema, generate_leads
from models.errors import DataFileError


def test_generator_is_deterministic_and_learnable() -> None:
    a, b = generate_leads(2000, seed=3), generate_leads(2000, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(generate_leads(2000, seed=4))
    schema = LeadSchema()
    assert a[schema.id_column].is_unique
    assert set(a[schema.target].unique()) == {0, 1}
    assert 0.2 < a[schema.target].mean() < 0.5
    assert a["deal_size"].isna().any(), "the data must carry missing values like a real export"


def test_drift_moves_distributions() -> None:
    ref, cur = generate_leads(20000, seed=1), generate_leads(20000, seed=1, drift=1.0)
    assert cur["engagement_score"].mean() < ref["engagement_score"].mean() - 10
    assert (cur["region"] == "apac").mean() > (ref["region"] == "apac").mean() + 0.1
    assert cur["converted"].mean() != pytest.approx(ref["converted"].mean(), abs=0.02)


@pytest.mark.parametrize("bad", [0, -5])
def test_generator_rejects_bad_rows(bad: int) -> None:
    with pytest.raises(ValueError, match="rows"):
        generate_leads(bad, seed=1)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    df = generate_leads(500, seed=2)
    path = write_table(df, tmp_path / f"leads{suffix}")
    back = read_table(path, parse_dates=["created_at"])
    assert list(back.columns) == list(df.columns)
    assert len(back) == 500
    assert pd.api.types.is_datetime64_any_dtype(back["created_at"])
    pd.testing.assert_series_equal(back["deal_size"], df["deal_size"], check_names=False)


def test_semicolon_csv_is_sniffed(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("id;amount;city\n1;3,5;Paris\n2;4,0;Lyon\n")
    assert sniff_delimiter(path) == ";"
    assert list(read_table(path).columns) == ["id", "amount", "city"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ("", "file is empty"),
        ("a,b,c\n", "only a header"),
        ('a,b\n1,"unterminated\n', "malformed CSV"),
        ("a,b\n1,2\n3,4,5,6\n", "malformed CSV"),
    ],
    ids=["missing", "empty", "header-only", "bad-quote", "ragged"],
)
def test_unusable_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "x.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataFileError, match=message) as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    path.write_text("a")
    with pytest.raises(DataFileError, match="unsupported file type"):
        read_table(path)


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataFileError, match="unreadable Parquet"):
        read_table(path)


def test_blank_tokens_read_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_text("id,total\n1,3.5\n2, \n3,4\n")
    assert read_table(path)["total"].dtype == object
    assert read_table(path, na_values=[" "])["total"].isna().sum() == 1


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_placeholders_read_as_missing_in_either_format(tmp_path: Path, suffix: str) -> None:
    """data.na_values applies to a Parquet file's text columns as it does to a CSV's."""
    frame = pd.DataFrame({"city": ["pune", "Select", "delhi"], "visits": [1, 2, 3]})
    frame["source"] = pd.Categorical(["Select", "ads", "ads"])
    path = write_table(frame, tmp_path / f"forms{suffix}")
    read = read_table(path, na_values=["Select"])
    assert read["city"].isna().tolist() == [False, True, False]
    assert read["source"].isna().tolist() == [True, False, False]
    assert read["visits"].tolist() == [1, 2, 3]
    assert (read_table(path)["city"] == "Select").sum() == 1  # only when asked
