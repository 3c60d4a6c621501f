"""The ``mlops`` CLI run in the tests' own process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from infra.home import ProjectHome


def home_variables(home: ProjectHome) -> dict[str, str]:
    """The variables that point a process at ``home``: the project home, its tracking store, its Bento store."""
    return {
        "MLOPS_HOME": str(home.root),
        "MLFLOW_TRACKING_URI": home.tracking_uri,
        "BENTOML_HOME": str(home.bentoml),
    }


def mlops_in_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """An `mlops` command as typed, run in this process: Typer's runner gives the CLI's own parsing, output
    and exit code without another interpreter start-up (imports alone cost several seconds per call).
    ``env`` holds the variables a shell would set (``MLOPS_HOME``, ...); they apply for the call only.
    Not for commands that build or serve Bentos: BentoML fixes its home at its first use in a process."""
    from typer.testing import CliRunner

    from flows.cli import app

    # Every variable the CLI would otherwise set for the rest of this process (ProjectHome.configure_environment).
    env = {**home_variables(ProjectHome(Path(env["MLOPS_HOME"]))), **env}
    # The CLI's entry point also adds the home's stack endpoints and library settings to os.environ; all of
    # it is put back as it was, so that nothing of this call reaches the rest of the session.
    saved = dict(os.environ)
    try:
        result = CliRunner().invoke(app, list(args), env=env)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["mlops", *args], result.exit_code, result.stdout, result.stderr)


# Variables that point a command at a store or server other than its home's. A user's shell opened for a
# home has none of them; a test passes the Prefect server it shares on purpose (PREFECT_API_URL).
STORE_POINTERS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "BENTOML_HOME",
    "MLOPS_EVIDENTLY_UI_URL",
    "RAY_ADDRESS",
)


def shell_env(home: Path) -> dict[str, str]:
    """The environment of a user's shell for the project home ``home``: this process's, without pointers to
    other stores, with ``MLOPS_HOME``."""
    env = {k: v for k, v in os.environ.items() if k not in STORE_POINTERS}
    return {**env, "MLOPS_HOME": str(home)}
