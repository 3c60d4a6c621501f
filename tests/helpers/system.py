"""System tools the tests need (Debian packages that .ci/run installs): skipped on a user's machine without
them, a failure under ``CI=true``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def system_tool(name: str, package: str, *elsewhere: Path) -> str:
    """The program ``name`` on PATH (or the first of ``elsewhere`` that exists); without it the test skips, or
    fails when ``CI=true`` (.ci/run installs ``package`` before `make test`)."""
    found = shutil.which(name) or next((str(path) for path in elsewhere if path.exists()), None)
    if found is None:
        reason = f"{name} is not installed: apt-get install --no-install-recommends {package}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; .ci/run installs it before `make test`")
        pytest.skip(reason)
    return found
