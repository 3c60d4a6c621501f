"""docker-compose.yml cannot be started here (no Docker engine); check what can be checked.

Its servers are the local stack's registry (``infra.stack.SERVICES``) in containers. For every
registry server, the compose service of the same name must run what ``mlops up`` runs. The
registry's spec is built with the default ports and the compose file's own Postgres (user,
password and host of its ``postgres`` service); the compose file is read with every
``${VAR:-default}`` replaced by its default. The rule:

- command: the same program (the basename of the local executable), the same subcommand words
  and the same flags with the same values, except that
  - ``--host`` is 0.0.0.0 in the container (where the local process binds 127.0.0.1): the
    container's port is published on the host's loopback instead,
  - a value the local process takes from the project home (a path, a SQLite URL under it) may
    be a container path,
  - compose may add only the flags in ``COMPOSE_ONLY_FLAGS``, each with its reason;
- environment: every variable the spec sets for its server has the same value, except
  home-dependent values, which compose may set otherwise or leave out;
- port: the registry's port, published as ``127.0.0.1:<port>:<port>``;
- healthcheck: it requests ``http://127.0.0.1:<port><health path>`` inside the container;
- version: the image (or its Dockerfile's base image) is tagged with the installed version of
  the program's package (the tag without a leading ``v``, up to the first ``-``);
- database: the Postgres database of each server is one the ``postgres`` service creates
  (``POSTGRES_DB`` or a mounted init script).

Every other compose service says in ``NOT_LOCAL`` why ``mlops up`` has no process for it. Beyond
that: ports are published on loopback only, build contexts and mounts exist, the runner talks to
the servers by their service names, and with Debian's ``docker-compose`` installed (CI installs
it) the file is validated by Compose itself.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from infra.home import ProjectHome
from infra.stack import SERVICES, ServiceSpec, build_specs, ray_nodes

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
# Never created: the specs are only built, and a path under it is unmistakably from the home.
LOCAL_HOME = ProjectHome(Path("/local-stack-home"))

COMPOSE_ONLY_FLAGS = {
    "mlflow": {
        "--allowed-hosts": "the runner container addresses MLflow as mlflow:5000, a Host header "
        "MLflow refuses by default (it accepts localhost and private IPs)",
    },
}
# Client variables that are links for a person's browser, not addresses for the runner: the host's port.
BROWSER_LINKS = {
    "MLOPS_EVIDENTLY_UI_URL": "the monitor's Prefect artifact links the dashboard for whoever opens it",
}
NOT_LOCAL = {
    "postgres": "`mlops up` keeps SQLite in the home, or uses the server given with --database-url",
    "minio": "the local stack keeps artifacts in the home, or in the store given with --artifacts s3://...",
    "minio-bucket": "a one-shot that creates the bucket; with --artifacts the bucket must already exist",
    "ray-head": "runs start a local Ray runtime; a cluster is joined through RAY_ADDRESS (infra.stack.ray_nodes)",
    "ray-worker": "joins ray-head; the two-node sweep test runs the same command as processes",
    "deployments": "`mlops deploy` registers the deployments (prefect.yaml for `prefect deploy` with a pool)",
    "worker": "`mlops deploy --detach` runs the deployments' runs locally, and registers it with the stack",
    "bento": "`bentoml serve <bento>` after a run (the command it prints); the same service from source with "
    "MLOPS_SERVING_CHAMPION_OF waits for the first champion (tests/integration/test_registry_following.py)",
}
# The services that run pipelines, and so talk to every server: the worker and its registration job.
RUNNERS = ("deployments", "worker")


@dataclass(frozen=True)
class Invocation:
    """A server's command line, split the way both sides are compared."""

    program: str
    subcommand: tuple[str, ...]
    flags: dict[str, str | None]


def _with_defaults(text: str) -> str:
    """Compose's ``${VAR:-default}`` (and ``${VAR-default}``) as its default."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", text)


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(_with_defaults(COMPOSE.read_text()))["services"]


@pytest.fixture(scope="module")
def specs(services: dict) -> dict[str, ServiceSpec]:
    postgres = services["postgres"]["environment"]
    database_url = f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432"
    ports = {name: service.default_port for name, service in SERVICES.items()}
    return build_specs(LOCAL_HOME, ports, database_url)


def _argv(service: dict) -> list[str]:
    command = service.get("command", [])
    return [str(word) for word in command] if isinstance(command, list) else shlex.split(command)


def _invocation(argv: list[str]) -> Invocation:
    """Program basename, the words before the first flag, then ``--flag [value]`` pairs (a flag
    followed by another flag, or by nothing, is a switch)."""
    words = []
    rest = argv[1:]
    while rest and not rest[0].startswith("-"):
        words.append(rest.pop(0))
    flags: dict[str, str | None] = {}
    while rest:
        flag = rest.pop(0)
        assert flag.startswith("--"), f"{argv}: {flag!r} after the flags"
        if "=" in flag:
            flag, value = flag.split("=", 1)
        else:
            value = rest.pop(0) if rest and not rest[0].startswith("-") else None
        flags[flag] = value
    return Invocation(Path(argv[0]).name, tuple(words), flags)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _from_home(value: str | None) -> bool:
    return value is not None and str(LOCAL_HOME.root) in value


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_server_runs_the_local_stack_command(name: str, services: dict, specs: dict) -> None:
    assert name in services, f"docker-compose.yml has no service '{name}' for the registry's {name} server"
    local = _invocation(specs[name].command)
    compose = _invocation(_argv(services[name]))
    assert (compose.program, compose.subcommand) == (local.program, local.subcommand)
    allowed = COMPOSE_ONLY_FLAGS.get(name, {})
    assert set(local.flags) - set(compose.flags) == set(), f"{name}: compose lacks flags of `mlops up`"
    assert set(compose.flags) - set(local.flags) - set(allowed) == set(), f"{name}: compose-only flags"
    assert local.flags["--host"] == "127.0.0.1" and compose.flags["--host"] == "0.0.0.0"
    for flag, value in local.flags.items():
        if flag != "--host" and not _from_home(value):
            assert compose.flags[flag] == value, (
                f"{name}: {flag} is {compose.flags[flag]!r}, locally {value!r}"
            )


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_server_has_the_local_environment(name: str, services: dict, specs: dict) -> None:
    compose = _environment(services[name])
    for key, value in specs[name].env.items():
        if not _from_home(value):
            assert compose.get(key) == value, f"{name}: {key} is {compose.get(key)!r}, locally {value!r}"


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_server_publishes_its_port_and_checks_its_health_path(
    name: str, services: dict, specs: dict
) -> None:
    spec = specs[name]
    assert f"127.0.0.1:{spec.port}:{spec.port}" in [str(port) for port in services[name].get("ports", [])]
    probe = " ".join(str(word) for word in services[name]["healthcheck"]["test"])
    url = f"http://127.0.0.1:{spec.port}{spec.health_path}"
    assert re.search(rf"{re.escape(url)}(?![\w/.-])", probe), f"{name}: healthcheck {probe!r} is not on {url}"


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_server_image_runs_the_installed_version(name: str, services: dict, specs: dict) -> None:
    service = services[name]
    image = service.get("image")
    if image is None:
        dockerfile = (REPO / service["build"]["context"] / service["build"]["dockerfile"]).read_text()
        image = re.search(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE).group(1)
    program = Path(specs[name].command[0]).name
    tag = image.rsplit(":", 1)[1]
    assert tag.removeprefix("v").split("-")[0] == version(program), (
        f"{name}: {image} vs {program} {version(program)}"
    )


@pytest.mark.parametrize("name", [name for name, service in SERVICES.items() if service.postgres is not None])
def test_every_server_database_is_created(name: str, services: dict, specs: dict) -> None:
    postgres = services["postgres"]
    created = {postgres["environment"].get("POSTGRES_DB", postgres["environment"]["POSTGRES_USER"])}
    for volume in postgres.get("volumes", []):
        source, target = volume.split(":")[:2]
        if target.startswith("/docker-entrypoint-initdb.d/") and source.endswith(".sql"):
            created |= set(re.findall(r"CREATE DATABASE (\w+)", (REPO / source).read_text(), re.IGNORECASE))
    assert specs[name].postgres.name in created


def test_every_other_service_says_why_it_has_no_local_process(services: dict) -> None:
    assert set(services) - set(SERVICES) == set(NOT_LOCAL)


@pytest.mark.parametrize("runner", RUNNERS)
def test_runners_talk_to_the_servers_by_service_name(runner: str, services: dict) -> None:
    env = _environment(services[runner])
    for name, service in SERVICES.items():
        for variable, suffix in service.client_env.items():
            host = "127.0.0.1" if variable in BROWSER_LINKS else name
            assert env[variable] == f"http://{host}:{service.default_port}{suffix}"
    # Every Prefect client sends the credential the server requires.
    assert (
        env["PREFECT_API_AUTH_STRING"] == _environment(services["prefect"])["PREFECT_SERVER_API_AUTH_STRING"]
    )
    assert env["RAY_ADDRESS"] == f"ray-head:{ray_nodes.DEFAULT_PORT}"


def test_worker_executes_the_deployments_of_prefect_yaml_on_its_pool(services: dict) -> None:
    pools = {
        d["work_pool"]["name"] for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    }
    worker = services["worker"]
    assert [worker["entrypoint"], *worker["command"]] == [
        ["prefect"],
        "worker",
        "start",
        "--pool",
        *pools,
        "--type",
        "process",
    ]
    assert services["deployments"]["command"] == ["--no-prompt", "deploy", "--all"]
    assert worker["depends_on"]["deployments"] == {"condition": "service_completed_successfully"}
    for name in (*SERVICES, "ray-head"):
        assert worker["depends_on"][name] == {"condition": "service_healthy"}


def test_ray_nodes_run_the_commands_the_two_node_test_runs(services: dict) -> None:
    head, worker = services["ray-head"], services["ray-worker"]
    port = ray_nodes.DEFAULT_PORT
    assert [*head["entrypoint"], *head["command"]] == [*ray_nodes.head_command(port), "--block"]
    assert [*worker["entrypoint"], *worker["command"]] == [
        *ray_nodes.worker_command(f"ray-head:{port}"),
        "--block",
    ]
    assert worker["depends_on"]["ray-head"] == {"condition": "service_healthy"}
    assert str(port) in " ".join(head["healthcheck"]["test"])


def test_mlflow_artifacts_go_to_the_bucket_the_one_shot_creates(services: dict) -> None:
    argv = _argv(services["mlflow"])
    bucket = _environment(services["minio-bucket"])["MLOPS_BUCKET"]
    assert argv[argv.index("--artifacts-destination") + 1] == f"s3://{bucket}/mlflow"
    assert _environment(services["mlflow"])["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert services["mlflow"]["depends_on"]["minio-bucket"] == {"condition": "service_completed_successfully"}


def test_every_image_is_pinned(services: dict) -> None:
    for name, service in services.items():
        image = service.get("image")
        if image is not None:
            assert ":" in image and not image.endswith(":latest"), f"{name}: image {image} is not pinned"


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
    # The secrets .env would hold (see .env.example); without them Compose refuses the file, as it should.
    secrets = {name: "from-.env" for name in _required_variables()}
    result = subprocess.run(
        [tool, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **secrets},
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    # Each secret left unset on its own: Compose refuses the file and names it.
    for missing in sorted(secrets):
        env = {**{k: v for k, v in os.environ.items() if k not in secrets}, **secrets}
        del env[missing]
        refused = subprocess.run(
            [tool, "-f", str(COMPOSE), "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=REPO,
        )
        assert refused.returncode != 0 and missing in refused.stderr, (missing, refused.stderr)


def _required_variables() -> set[str]:
    """Variables the compose file requires (``${VAR:?message}``)."""
    return set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))


def test_env_example_lists_every_variable_the_compose_file_reads() -> None:
    example = REPO / ".env.example"
    listed = set(re.findall(r"^(\w+)=", example.read_text(), re.MULTILINE))
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    assert used <= listed, f".env.example lacks {sorted(used - listed)}"
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_platform_image_copies_every_package() -> None:
    """The platform image installs the project: every package pyproject ships must be copied in."""
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    dockerfile = (REPO / "infra" / "Dockerfile").read_text().splitlines()
    missing = [p for p in packages if f"COPY {p} {p}" not in dockerfile]
    assert not missing, f"infra/Dockerfile does not copy {missing}"


def test_bento_waits_for_the_first_champion_and_nothing_waits_on_it(services: dict) -> None:
    """The Bento runs what the waiting-for-a-champion test runs (test_registry_following), signed in to MLflow by
    service name, checked for liveness (not readiness: that needs a champion), with no service depending on it."""
    from serving.settings import ENTITY_ENV, WAIT_ENV

    bento = services["bento"]
    assert bento["entrypoint"] == ["bentoml"]
    assert bento["command"][:2] == ["serve", "serving.service:TabularModelService"]
    env = bento["environment"]
    assert env[WAIT_ENV] and env[ENTITY_ENV] and env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert (
        env["MLFLOW_TRACKING_USERNAME"] and "MLFLOW_TRACKING_PASSWORD" in env and "MLOPS_SERVING_TOKEN" in env
    )
    assert "/livez" in " ".join(bento["healthcheck"]["test"])
    assert [name for name, service in services.items() if "bento" in (service.get("depends_on") or {})] == []
