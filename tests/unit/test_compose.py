"""docker-compose.yml cannot be started here (no Docker engine); check what can be checked.

Its servers are the local stack's registry (``infra.stack.SERVICES``) in containers. For every
registry server, the compose service of the same name must run what ``mlops up`` runs. The
registry's spec is built with the default ports and the compose file's own Postgres (user,
password and host of its ``postgres`` service); the compose file is read with every
``${VAR:-default}`` replaced by its default. The rule:

- command: the same program (the basename of the local executable; ``python -m <module>`` for a
  module of the project), the same words before the first ``--flag`` and the same flags with the
  same values, except that
  - the address flag (``--host``, Redis's ``--bind``) is 0.0.0.0 in the container (where the local
    process binds 127.0.0.1): the container's port is published on the host's loopback instead,
  - a value the local process takes from the project home (a path, a SQLite URL under it) may
    be a container path, and a path in the project's checkout is that path in the image's WORKDIR,
  - compose may add only the flags in ``COMPOSE_ONLY_FLAGS``, each with its reason;
  a server that reads its secret config on stdin (Redis) runs as ``sh -c 'exec <command> <<EOF'``
  with the same config in the here-document, from its environment;
- environment: every variable the spec sets for its server has the same value, except
  home-dependent values, which compose may set otherwise or leave out, and another server's
  address (``127.0.0.1:<port>``), which is ``<service>:<port>`` on the compose network; every
  variable its secrets reach it in is set;
- port: the registry's port, published as ``127.0.0.1:<port>:<port>``;
- healthcheck: it requests ``http://127.0.0.1:<port><health path>`` inside the container (Redis:
  ``redis-cli -p <port> ping``);
- version: the image (or its Dockerfile's base image) is tagged with the installed version of
  the program's package (the tag without a leading ``v``, up to the first ``-``): for a system
  program, the version it prints; for a module run by this Python, Python's ``major.minor``;
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
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from flows.cli.stack import DEFAULT_CONFIG, watched_model
from infra.home import ProjectHome
from infra.stack import HOST, SERVICES, ServiceSpec, build_specs, ray_nodes
from infra.stack.services import (
    FEAST_REDIS,
    FEAST_REDIS_PASSWORD,
    FEAST_REGISTRY,
    always_started,
    client_value,
)

from helpers.redis import redis_server_program
from helpers.system import system_tool

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
    "watch-files": "a one-shot rendering the files `mlops up --config` writes into the home "
    "(`mlops alerts routing ... --target --bento-arguments`, tests/integration/test_stack.py runs it)",
    "grafana": "not packaged in Debian: the dashboard's queries are evaluated against a real Prometheus "
    "(tests/integration/test_serving.py)",
}
# Debian's name of a program whose image calls it otherwise.
DEBIAN_PROGRAMS = {"prometheus-alertmanager": "alertmanager"}
# The services that run pipelines, and so talk to every server: the worker and its registration job.
RUNNERS = ("deployments", "worker")
# The services that read or write the feature store (runs materialise and train, the Bento scores by id).
FEATURE_STORE_CLIENTS = ("bento", "deployments", "worker")
# Where the platform image (infra/Dockerfile) has the project's checkout.
IMAGE_WORKDIR = re.search(
    r"^WORKDIR\s+(\S+)", (REPO / "infra" / "Dockerfile").read_text(), re.MULTILINE
).group(1)


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
    return build_specs(LOCAL_HOME, ports, database_url, model=watched_model(DEFAULT_CONFIG, LOCAL_HOME))


def _words(value: object) -> list[str]:
    if value is None:
        return []
    return [str(word) for word in value] if isinstance(value, list) else shlex.split(str(value))


def _argv(service: dict) -> list[str]:
    """The command a compose service runs: its command, after its entrypoint where it sets one; for a shell
    that ``exec``s the server (to feed it a config on stdin), the server's command."""
    argv = [*_words(service.get("entrypoint")), *_words(service.get("command"))]
    if argv[:2] in (["sh", "-c"], ["/bin/sh", "-c"]):
        return _shell_exec(argv[2])[0]
    return argv


def _shell_exec(script: str) -> tuple[list[str], str]:
    """``exec <command> <<EOF`` then the here-document: the command and its stdin (``$$`` is compose's ``$``)."""
    first, *lines = script.replace("$$", "$").splitlines()
    words = shlex.split(first)
    assert words[0] == "exec" and words[-1] == "<<EOF", f"not `exec <command> <<EOF`: {first!r}"
    assert lines[-1] == "EOF", f"the here-document does not end with EOF: {lines!r}"
    return words[1:-1], "".join(f"{line}\n" for line in lines[:-1])


def _program(argv: list[str]) -> str:
    """The program's basename; every Python is ``python`` (the venv's locally, the image's in compose)."""
    name = re.sub(r"^python[\d.]*$", "python", Path(argv[0]).name)
    return DEBIAN_PROGRAMS.get(name, name)


def _invocation(argv: list[str]) -> Invocation:
    """Program basename, the words before the first ``--flag`` (subcommands, ``-m module``, Redis's ``-``),
    then ``--flag [value]`` pairs (a flag followed by another flag, or by nothing, is a switch)."""
    words = []
    rest = argv[1:]
    while rest and not rest[0].startswith("--"):
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
    return Invocation(_program(argv), tuple(words), flags)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _from_home(value: str | None) -> bool:
    return value is not None and str(LOCAL_HOME.root) in value


def _image_path(value: str | None) -> str | None:
    """A path in the project's checkout as the platform image has it; any other value as it is."""
    if value is not None and Path(value).is_absolute() and Path(value).is_relative_to(REPO):
        return str(Path(IMAGE_WORKDIR) / Path(value).relative_to(REPO))
    return value


def _on_compose_network(name: str, value: str, specs: dict[str, ServiceSpec]) -> str:
    """``value`` with every other server's local address (127.0.0.1:<port>) as compose names it."""
    for other, spec in specs.items():
        if other != name:
            value = value.replace(f"{HOST}:{spec.port}", f"{other}:{spec.port}")
    return value


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_server_runs_the_local_stack_command(name: str, services: dict, specs: dict) -> None:
    assert name in services, f"docker-compose.yml has no service '{name}' for the registry's {name} server"
    local = _invocation(specs[name].command)
    compose = _invocation(_argv(services[name]))
    assert (compose.program, compose.subcommand) == (local.program, local.subcommand)
    allowed = COMPOSE_ONLY_FLAGS.get(name, {})
    assert set(local.flags) - set(compose.flags) == set(), f"{name}: compose lacks flags of `mlops up`"
    assert set(compose.flags) - set(local.flags) - set(allowed) == set(), f"{name}: compose-only flags"
    # The address: the host alone, or host:port (Prometheus, Alertmanager).
    [address] = [flag for flag, value in local.flags.items() if value and value.split(":")[0] == HOST]
    expected = local.flags[address].replace(HOST, "0.0.0.0")
    assert compose.flags[address] == expected, f"{name}: {address} {compose.flags[address]}"
    for flag, value in local.flags.items():
        if flag != address and not _from_home(value):
            assert compose.flags[flag] == _image_path(value), (
                f"{name}: {flag} is {compose.flags[flag]!r}, locally {value!r}"
            )


@pytest.mark.parametrize("name", list(SERVICES))
def test_a_server_that_reads_its_config_on_stdin_gets_the_same_in_compose(
    name: str, services: dict, specs: dict
) -> None:
    spec = specs[name]
    argv = [*_words(services[name].get("entrypoint")), *_words(services[name].get("command"))]
    shell = argv[:2] in (["sh", "-c"], ["/bin/sh", "-c"])
    assert shell == (spec.stdin is not None), f"{name}: config on stdin locally {spec.stdin is not None}"
    if shell:
        # The here-document expands the container's variables where `up` puts the values of the same ones.
        env = {variable: f"${variable}" for secret in spec.secrets for variable in secret.server_env}
        assert _shell_exec(argv[2])[1] == spec.stdin(env)


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_server_has_the_local_environment(name: str, services: dict, specs: dict) -> None:
    compose = _environment(services[name])
    for key, value in specs[name].env.items():
        if not _from_home(value):
            expected = _on_compose_network(name, value, specs)
            assert compose.get(key) == expected, f"{name}: {key} is {compose.get(key)!r}, not {expected!r}"
    # Its secrets: `up` sets these from the home's secrets, compose from .env.
    for secret in specs[name].secrets:
        for variable in secret.server_env:
            assert compose.get(variable), f"{name}: compose does not set {variable}"


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_server_publishes_its_port_and_checks_its_health_path(
    name: str, services: dict, specs: dict
) -> None:
    spec = specs[name]
    assert f"127.0.0.1:{spec.port}:{spec.port}" in [str(port) for port in services[name].get("ports", [])]
    probe = " ".join(str(word) for word in services[name]["healthcheck"]["test"])
    if spec.scheme == "redis":
        # A PING signed in (redis-cli reads REDISCLI_AUTH), answered PONG.
        assert re.search(rf"redis-cli -p {spec.port} ping\b.*PONG", probe), f"{name}: healthcheck {probe!r}"
        assert "REDISCLI_AUTH" in _environment(services[name])
        return
    url = f"http://127.0.0.1:{spec.port}{spec.health_path}"
    assert re.search(rf"{re.escape(url)}(?![\w/.-])", probe), f"{name}: healthcheck {probe!r} is not on {url}"


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_server_image_runs_the_installed_version(name: str, services: dict, specs: dict) -> None:
    service = services[name]
    image = service.get("image")
    if image is None:
        dockerfile = (REPO / service["build"]["context"] / service["build"]["dockerfile"]).read_text()
        image = re.search(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE).group(1)
    tag = image.rsplit(":", 1)[1].removeprefix("v").split("-")[0]
    program = Path(specs[name].command[0]).name
    if service.get("build", {}).get("dockerfile") == "infra/Dockerfile" and _pip_program(program):
        # A pip package's program in the platform image, which installs the project (`pip install -e .`):
        # Python's version is its base image's, and the project's requirement admits the installed version.
        assert tag == f"{sys.version_info.major}.{sys.version_info.minor}", f"{name}: {image}"
        [required] = [r for r in map(Requirement, requires("mlops-crm") or []) if r.name == program]
        assert required.specifier.contains(version(program)), (
            f"{name}: {program} {version(program)} {required}"
        )
        return
    installed = _installed_version(specs[name].command)
    assert tag == installed, f"{name}: {image} vs {installed}"


def _pip_program(program: str) -> bool:
    try:
        version(program)
    except PackageNotFoundError:
        return False
    return True


def _installed_version(command: list[str]) -> str:
    """The version of what ``command`` runs: a module of this Python (Python's major.minor), a pip package's
    program, or a system program (the version it prints, e.g. ``Redis server v=7.0.15``)."""
    if command[1:2] == ["-m"]:
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    program = Path(command[0]).name
    try:
        return version(program)
    except PackageNotFoundError:
        pass
    if program == "redis-server":
        redis_server_program()  # skips without it, fails under CI=true
    else:
        system_tool(
            program, program
        )  # prometheus, prometheus-alertmanager: skips without, fails under CI=true
    done = subprocess.run([command[0], "--version"], capture_output=True, text=True, timeout=30)
    # `Redis server v=7.0.15 ...`; `prometheus, version 2.42.0+ds (...)` (Alertmanager's on stderr).
    return re.search(r"(?:v=|version )(\d[\d.]*)", done.stdout + done.stderr).group(1)


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
        for variable, template in service.client_env.items():
            host = "127.0.0.1" if variable in BROWSER_LINKS else name
            assert env[variable] == client_value(
                template, f"{service.scheme}://{host}:{service.default_port}"
            )
    # Every Prefect client sends the credential the server requires.
    assert (
        env["PREFECT_API_AUTH_STRING"] == _environment(services["prefect"])["PREFECT_SERVER_API_AUTH_STRING"]
    )
    assert env["RAY_ADDRESS"] == f"ray-head:{ray_nodes.DEFAULT_PORT}"


@pytest.mark.parametrize("client", FEATURE_STORE_CLIENTS)
def test_feature_store_clients_use_the_stacks_redis_and_registry(
    client: str, services: dict, specs: dict
) -> None:
    """What `mlops up` hands its clients (the stack's Redis and, on Postgres, the registry's database), here by
    service name: the same variables, the registry's URL the one the feast-ui server gets."""
    env = _environment(services[client])
    assert env[FEAST_REDIS] == f"redis:{SERVICES['redis'].default_port}"
    assert env[FEAST_REDIS_PASSWORD] == _environment(services["redis"])["REDISCLI_AUTH"]
    assert (
        env[FEAST_REGISTRY]
        == specs["feast-ui"].database
        == _environment(services["feast-ui"])[FEAST_REGISTRY]
    )
    if client == "deployments":
        return  # the one-shot that registers the deployments reads no features: it waits for Prefect only
    assert services[client]["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_the_feast_ui_is_the_crm_repository_of_the_image(services: dict) -> None:
    """The repository the Feast UI shows is in the platform image, and its database is the one Feast's clients
    use."""
    dockerfile = (REPO / "infra" / "Dockerfile").read_text().splitlines()
    assert "COPY feature_repo feature_repo" in dockerfile
    assert services["feast-ui"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


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
    # Every server the pipelines use (not the Bento and its watchers, which no run needs).
    for name in (*always_started(), "ray-head"):
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
    tool = system_tool("docker-compose", "docker-compose")
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
    """The Bento runs what `mlops up --config` runs (the stack test serves its first champion), signed in to MLflow by
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
