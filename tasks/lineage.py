"""Lineage facts recorded with every model version."""

from __future__ import annotations

import hashlib
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
from prefect import task

from models.data.io import data_fingerprint
from tasks.caching import ONCE_PER_RUN, REPLAYABLE

PACKAGE = "mlops-crm"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


def code_version(repo: Path) -> str:
    """The git commit (with ``-dirty`` when the tree has changes), else the package version."""
    try:
        commit = _git(repo, "rev-parse", "--short=12", "HEAD")
        dirty = _git(repo, "status", "--porcelain", "--untracked-files=no")
        return f"{commit}-dirty" if dirty else commit
    except (OSError, subprocess.SubprocessError):
        try:
            return f"{PACKAGE}=={version(PACKAGE)}"
        except PackageNotFoundError:
            return "unknown"


@task(name="fingerprint-data", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def fingerprint(df: pd.DataFrame) -> str:
    return data_fingerprint(df)


@task(name="fingerprint-file", **REPLAYABLE)
def file_fingerprint(path: Path) -> str:
    """SHA-256 of a file's bytes (first 16 hex digits): which version of a data file an event saw."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
