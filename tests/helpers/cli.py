"""The ``mlops`` CLI run in the tests' own process."""

from __future__ import annotations

import subprocess
from pathlib import Path


def mlops_in_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """An `mlops` command as typed, run in this process: Typer's runner gives the CLI's own parsing, output
    and exit code without another interpreter start-up (imports alone cost several seconds per call).
    ``env`` holds the variables a shell would set (``MLOPS_HOME``, ...); they apply for the call only.
    Not for commands that build or serve Bentos: BentoML fixes its home at its first use in a process."""
    from typer.testing import CliRunner

    from flows.cli import app

    # Every variable the CLI would otherwise set for the rest of this process (ProjectHome.configure_environment).
    from infra.home import ProjectHome

    home = ProjectHome(Path(env["MLOPS_HOME"]))
    env = {"BENTOML_HOME": str(home.bentoml), "MLFLOW_TRACKING_URI": home.tracking_uri, **env}
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["mlops", *args], result.exit_code, result.stdout, result.stderr)
