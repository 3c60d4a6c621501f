"""The data-validation flow: load the data, check it against its suite, record the result."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow

from flows.config import PipelineConfig
from flows.features import training_frame
from models.data.validation import ValidationReport
from tasks.data import publish_validation, validate_data


def docs_dir_for_run(docs_root: Path) -> Path:
    """A fresh Data Docs folder per run, so a failed run never overwrites an earlier report."""
    return docs_root / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


@flow(name="data-validation")
def data_validation(config: PipelineConfig, docs_root: Path) -> ValidationReport:
    """Validate ``config.data`` (with a feature store: the retrieved frame) against ``config.data.expectations``."""
    df = training_frame(config).data
    report = validate_data(df, config.data.expectations, docs_dir_for_run(docs_root))
    publish_validation(report, config.data.path)
    return report
