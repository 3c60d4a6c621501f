"""Batch scoring I/O: which files to score, and the one path every batch score takes (``mlops batch``, its
scheduled deployment and ``mlops predict``): score, write the output, log every row like live traffic."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from models.artifact.scorer import TabularScorer
from models.data.config import DataConfig
from models.data.io import read_table, write_table
from models.errors import UserInputError
from models.governance.names import Variant
from monitoring.config import PredictionLogConfig
from monitoring.prediction_log import PredictionLog, PredictionRecord

SCORED_SUFFIX = ".scored"  # <name>.scored.<ext>: the output beside each input, never scored again
FORMATS = (".csv", ".parquet")


def batch_inputs(path: Path) -> list[Path]:
    """``path`` itself, or the CSV/Parquet files of a folder that are not outputs and have no output yet."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserInputError(f"{path}: no such file or folder to score")
    return sorted(
        p
        for p in path.iterdir()
        if p.suffix in FORMATS and not p.stem.endswith(SCORED_SUFFIX) and not scored_path(p).exists()
    )


def scored_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}{SCORED_SUFFIX}{path.suffix}")


def _value(v: object) -> object:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def score_table(
    scorer: TabularScorer,
    name: str,
    version: str,
    frame: pd.DataFrame,
    out_path: Path,
    log_dir: Path,
    id_column: str | None = None,
    retention: PredictionLogConfig | None = None,
) -> Path:
    """Score ``frame`` with version ``version`` of model ``name``, write it with a score column to
    ``out_path`` and append every row to the prediction log (variant ``batch``), so the drift monitor sees
    batch use too, rotated and kept within ``retention`` (the serving config's, defaults when None). Returns the
    written path."""
    scored = scorer.score_frame(frame)
    out = write_table(scored, out_path)
    canonical = scorer.transform.canonical_inputs(frame)
    ids = (
        frame[id_column].astype(str).tolist()
        if id_column and id_column in frame.columns
        else [None] * len(frame)
    )
    records = [
        PredictionRecord(
            request_id=uuid.uuid4().hex,
            variant=Variant.BATCH.value,
            model_version=version,
            features={k: _value(v) for k, v in row.items()},
            score=float(score),
            entity_id=entity,
            model_name=name,
        )
        for row, score, entity in zip(canonical.to_dict(orient="records"), scored["score"], ids, strict=True)
    ]
    limits = retention or PredictionLogConfig()
    with PredictionLog(
        log_dir, max_file_bytes=limits.max_file_bytes, max_total_bytes=limits.max_total_bytes
    ) as log:
        for start in range(0, len(records), 10_000):
            log.append(records[start : start + 10_000])
    return out


@task(name="read-batch", cache_policy=NO_CACHE)
def read_batch(path: Path, data: DataConfig) -> pd.DataFrame:
    """A file to score, read as the training data was."""
    return read_table(path, delimiter=data.delimiter, na_values=data.na_values, parse_dates=data.parse_dates)


@task(name="score-file", cache_policy=NO_CACHE)
def score_file(
    scorer: TabularScorer,
    name: str,
    version: str,
    path: Path,
    frame: pd.DataFrame,
    data: DataConfig,
    log_dir: Path,
    retention: PredictionLogConfig | None = None,
) -> tuple[Path, int]:
    """Score ``frame`` (read from ``path``) with the champion into ``<name>.scored.<ext>`` beside ``path``
    (`score_table`); returns the output and its row count."""
    out = score_table(scorer, name, version, frame, scored_path(path), log_dir, data.id_column, retention)
    return out, len(frame)
