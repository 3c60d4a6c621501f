"""docker-compose.yml cannot be started here (no Docker engine); check what can be checked.

Its servers must run the same programs `mlops up` starts as local processes, publish only on
loopback, and build from contexts that exist. With Debian's `docker-compose` installed (CI installs
it) the file is also validated by Compose itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _command(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else " ".join(command.split())


def test_servers_run_the_local_stack_commands(services: dict) -> None:
    assert _command(services["prefect-server"]).startswith("prefect server start")
    assert _command(services["mlflow"]).startswith("mlflow server")
    assert "--workers 1" in _command(services["mlflow"]), "one worker: the default forks 15 processes"
    assert services["trainer"]["command"][:1] == ["deploy"]


def test_ports_are_published_on_loopback_only(services: dict) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_build_contexts_and_mounts_exist(services: dict) -> None:
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = REPO / build["context"]
            assert context.is_dir(), f"{name}: build context {context} missing"
            assert (context / build["dockerfile"]).is_file() or (REPO / build["dockerfile"]).is_file()
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: mounted {source} missing"


def test_compose_validates_the_file() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is not installed (CI installs Debian's package in .ci/run)")
        pytest.skip("docker-compose not installed: apt-get install --no-install-recommends docker-compose")
    result = subprocess.run(
        [tool, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
