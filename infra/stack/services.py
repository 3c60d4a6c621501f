"""The registry of the local stack's servers: one entry per server, in start order.

An entry (``Service``) holds what is fixed about a server (name, default port, health path,
its Postgres database, the variables its clients set) and a launch function that builds the
command running it for one home: the command of its docker-compose service, bound to
127.0.0.1 (``tests/unit/test_compose.py`` holds the two to each other). ``mlops up`` starts
every entry; ``--<name>-port`` picks its port. Most servers speak HTTP; Redis (the feature
store's online store) speaks its own protocol, and its health check is a PING (``health.py``).

Three servers start only when ``up`` is given the model to watch (``WatchedModel``, from a pipeline config:
``mlops up --config``): the Bento that serves that model's champion (following the registry), and the
Prometheus and Alertmanager that scrape it, evaluate its rules and route its alerts.

Adding a server (a Ray head) is one launch function and one more ``Service`` in ``SERVICES``, plus a
docker-compose service of the same name.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from infra.home import TELEMETRY_OFF, ProjectHome
from infra.stack.errors import StackError

# Loopback only; the Prefect and MLflow APIs, the Evidently UI's writes and Redis also need the home's secrets
# (secrets.py). The Feast UI has no authentication at all: loopback is its only guard.
HOST = "127.0.0.1"

REPO = Path(__file__).resolve().parents[2]
# The feature repository the stack's Feast UI shows: the CRM repository shipped with the project.
CRM_REPOSITORY = REPO / "feature_repo" / "crm"

# What the stack's clients set to use its feature stores: the names models.features.store reads (REDIS_VARIABLE,
# REDIS_PASSWORD_VARIABLE, REGISTRY_VARIABLE; a unit test holds them equal). Written out here because importing
# that module costs every `mlops` command a second (pandas, pydantic) just to find the stack.
FEAST_REDIS = "MLOPS_FEAST_REDIS"
FEAST_REDIS_PASSWORD = "MLOPS_FEAST_REDIS_PASSWORD"
FEAST_REGISTRY = "MLOPS_FEAST_REGISTRY"
# What the stack's Bento is started with: the names serving.settings reads (WAIT_ENV, ENTITY_ENV), and the
# bearer token's variable, the default of serving.token_env, which the stack's Bento is built to read (a unit
# test holds them equal; importing serving would import BentoML).
SERVING_CHAMPION_OF = "MLOPS_SERVING_CHAMPION_OF"
SERVING_ENTITY_COLUMN = "MLOPS_SERVING_ENTITY_COLUMN"
SERVING_TOKEN = "MLOPS_SERVING_TOKEN"
# The service the stack's Bento serves from the project's source (as the compose file's `bento` does).
SERVING_SERVICE = "serving.service:TabularModelService"


def url_of(port: int, scheme: str = "http") -> str:
    """The URL of a server of the stack listening on ``port``."""
    return f"{scheme}://{HOST}:{port}"


def client_value(template: str, url: str) -> str:
    """A client variable's value (``Service.client_env``) for the server at ``url``: ``{url}`` is the URL,
    ``{address}`` its ``host:port``."""
    return template.format(url=url, address=urlsplit(url).netloc)


@dataclass(frozen=True)
class PostgresDatabase:
    """A server's own database on the Postgres server that ``--database-url`` names.

    Each server has its own: Prefect and MLflow both keep their migration state in a table
    called ``alembic_version``, so they cannot share one.
    """

    name: str  # created by infra/postgres-init.sql (or the compose file's POSTGRES_DB)
    scheme: str  # the SQLAlchemy URL scheme, which picks the driver
    driver: str  # the driver's module, checked before anything starts
    package: str  # what to pip install for it


@dataclass(frozen=True)
class Secret:
    """A secret a server takes, generated per home by ``up`` into ``secrets/<file>`` (``infra.stack.secrets``).

    It reaches the server through variables set by ``up`` (never a command line or the state file) and its
    clients through ``endpoints``. Each variable takes one part of it: ``secret`` (the whole file), or for an
    HTTP basic-auth credential (``user`` set: the file holds ``<user>:<token>``) ``user`` or ``password``.
    """

    file: str
    server_env: Mapping[str, str]  # variable -> part
    client_env: Mapping[str, str] = field(default_factory=dict)  # variable -> part
    user: str | None = None

    def values(self, secret: str, variables: Mapping[str, str]) -> dict[str, str]:
        """``variables`` (server_env or client_env) set from ``secret``, the file's content."""
        user, _, password = secret.partition(":") if self.user else ("", "", secret)
        parts = {"secret": secret, "user": user, "password": password}
        return {variable: parts[part] for variable, part in variables.items()}


@dataclass(frozen=True)
class WatchedModel:
    """The registered model the stack serves and watches (``mlops up --config``, built from a pipeline config by
    the CLI): what its Bento, Prometheus and Alertmanager start with. Plain data: the config's sections as JSON
    and the rules already rendered (``monitoring.alerting``)."""

    name: str  # the registered model whose `champion` alias the Bento serves and follows
    job: str  # the `job` label of the Bento's scrape target, which the rules select (ServedModelRules.job)
    entity_column: str | None  # the request field the Bento logs as the entity id (data.id_column)
    serving: Mapping[str, Any]  # the config's `serving` section: the Bento's argument
    rules: str  # the Prometheus recording and alert rules of its SLOs
    routing: Mapping[str, Any]  # the config's `monitoring.alert_routing`: intervals and grouping
    webhook_url: str | None  # monitoring.alert_webhook_url, where Alertmanager posts; None: nowhere


@dataclass(frozen=True)
class LaunchContext:
    """What a launch function may build its server's command from, for one call of ``up``."""

    home: ProjectHome
    name: str
    # Every server's port, not only this one's: a server may need another's URL.
    ports: Mapping[str, int]
    # Its own Postgres database URL; None keeps its default store (SQLite in the home).
    database: str | None
    # Where servers that store artifacts put them (``--artifacts``): an s3:// URI or a folder;
    # None keeps them in the home.
    artifacts: str | None = None
    # Every server's own Postgres database URL (by name), for a server that is a client of another's database.
    databases: Mapping[str, str] = field(default_factory=dict)
    # The model the stack serves and watches; set for the servers that need one (Service.watches).
    model: WatchedModel | None = None

    @property
    def watched(self) -> WatchedModel:
        if self.model is None:
            raise StackError(f"the {self.name} server needs the model to watch (mlops up --config)")
        return self.model

    @property
    def port(self) -> int:
        return self.ports[self.name]

    @property
    def url(self) -> str:
        return url_of(self.port)

    def address_of(self, name: str) -> str:
        """``host:port`` of the stack's server ``name`` (for a server that is the client of another)."""
        return f"{HOST}:{self.ports[name]}"


@dataclass(frozen=True)
class Launch:
    """What a launch function returns: the process to start and what it needs around it."""

    command: list[str]
    # Only the server's own settings: the rest of its environment is inherited (ServiceSpec.process_env).
    env: dict[str, str] = field(default_factory=dict)
    # Created before it starts (servers do not create their parents).
    folders: tuple[Path, ...] = ()
    # Files it reads at start (its config), written by ``up`` with mode 0600: path -> content.
    files: Mapping[Path, str] = field(default_factory=dict)
    # Config it reads on its standard input, built from the environment it starts with (where ``up`` put its
    # secrets): for a server that takes its password from neither a variable nor a command line.
    stdin: Callable[[Mapping[str, str]], str] | None = None
    # How to install its program, for the error when it is missing (a system package, not a pip one).
    install: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    """One server as ``up`` starts it for one home: its process, its log, how to check it."""

    name: str
    command: list[str]  # argv; the program is the one installed next to this Python
    port: int
    health_path: str
    log: Path
    env: dict[str, str]
    port_option: str  # the CLI option that picks ``port``, named when the port is busy
    postgres: PostgresDatabase | None  # set when it runs on Postgres (``--database-url``)
    folders: tuple[Path, ...]
    secrets: tuple[Secret, ...] = ()  # see Service.secrets
    files: Mapping[Path, str] = field(default_factory=dict)  # see Launch.files
    stdin: Callable[[Mapping[str, str]], str] | None = None  # see Launch.stdin
    install: str | None = None  # see Launch.install
    scheme: str = "http"  # see Service.scheme
    # Its own database's URL (credentials in it) when on Postgres, and the variable its clients take it in
    # (Service.database_env): never in the state file.
    database: str | None = None
    database_env: str | None = None

    @property
    def url(self) -> str:
        return url_of(self.port, self.scheme)

    @property
    def health_url(self) -> str:
        return self.url + self.health_path

    def process_env(self, inherited: Mapping[str, str]) -> dict[str, str]:
        """The environment the server starts with: ``inherited`` (the caller's), telemetry off,
        then its own settings.

        The client variables of the stack's servers are dropped: a ``PREFECT_API_URL`` that
        points at a server elsewhere means nothing to a server starting here.
        """
        clients = {key for service in SERVICES.values() for key in service.client_variables}
        return {**{k: v for k, v in inherited.items() if k not in clients}, **TELEMETRY_OFF, **self.env}


@dataclass(frozen=True)
class Service:
    """A server the stack runs: what is fixed about it, and how to build its spec for a home."""

    name: str  # in `mlops status`, in its log's name, and the name of its docker-compose service
    default_port: int
    # HTTP: answers with a status below 400 once the server is ready. Another scheme: empty, its health
    # check speaks the server's protocol (health.py).
    health_path: str
    port_help: str  # help of its --<name>-port option
    launch: Callable[[LaunchContext], Launch]
    # None: it has no database, or keeps its SQLite store in the home even with --database-url.
    postgres: PostgresDatabase | None = None
    # What a client sets to use this server: variable -> its value, from the server's ``{url}`` or ``{address}``
    # (``client_value``).
    client_env: Mapping[str, str] = field(default_factory=dict)
    # Its secrets (credentials, signing keys): set by ``up``, sent by ``mlops`` commands (``endpoints``).
    secrets: tuple[Secret, ...] = ()
    scheme: str = "http"  # of its URL: "redis" for Redis, whose health check is then a PING
    # The secret a non-HTTP health check signs in with (its file), since Redis answers no PING without it.
    health_secret: str | None = None
    # With --database-url, the variable its clients take its own database's URL in: for a server whose clients
    # open its database themselves (Feast's SQL registry), not only through the server.
    database_env: str | None = None
    # Started only with a model to watch (the Bento, Prometheus, Alertmanager); the others always.
    watches: bool = False

    @property
    def client_variables(self) -> tuple[str, ...]:
        """Every variable a client of this server sets: its URL's, then its credentials' (its database's URL
        included)."""
        database = (self.database_env,) if self.database_env else ()
        return (*self.client_env, *(v for secret in self.secrets for v in secret.client_env), *database)

    @property
    def port_option(self) -> str:
        return f"--{self.name}-port"

    @property
    def port_parameter(self) -> str:
        """The keyword argument of ``up`` (and of the ``mlops up`` command) that picks the port."""
        return f"{self.name.replace('-', '_')}_port"

    def spec(
        self,
        home: ProjectHome,
        ports: Mapping[str, int],
        database: str | None,
        artifacts: str | None = None,
        *,
        databases: Mapping[str, str] | None = None,
        model: WatchedModel | None = None,
    ) -> ServiceSpec:
        """This server for ``home`` on ``ports[name]``, on its Postgres ``database`` if given, its
        artifacts (if it keeps any) under ``artifacts`` if given; ``databases`` are every server's, ``model``
        the one the stack watches."""
        launch = self.launch(
            LaunchContext(
                home=home,
                name=self.name,
                ports=ports,
                database=database,
                artifacts=artifacts,
                databases=databases or {},
                model=model,
            )
        )
        return ServiceSpec(
            name=self.name,
            command=launch.command,
            port=ports[self.name],
            health_path=self.health_path,
            log=home.runtime / f"{self.name}.log",
            env=launch.env,
            port_option=self.port_option,
            postgres=self.postgres if database is not None else None,
            folders=launch.folders,
            secrets=self.secrets,
            files=launch.files,
            stdin=launch.stdin,
            install=launch.install,
            scheme=self.scheme,
            database=database,
            database_env=self.database_env,
        )


def _program(name: str) -> str:
    """A server program installed with this Python (the project's venv), not one on PATH."""
    return str(Path(sys.executable).parent / name)


def _prefect(ctx: LaunchContext) -> Launch:
    env = {
        "PREFECT_HOME": str(ctx.home.prefect),
        # The UI asks the server where its API is; without this it assumes port 4200.
        "PREFECT_SERVER_UI_API_URL": f"{ctx.url}/api",
    }
    if ctx.database is not None:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = ctx.database
    return Launch(
        command=[_program("prefect"), "server", "start", "--host", HOST, "--port", str(ctx.port)],
        env=env,
        folders=(ctx.home.prefect,),
    )


def _mlflow(ctx: LaunchContext) -> Launch:
    # One worker: the default starts 15 processes and 2.4 GB for a single local user.
    destination = ctx.artifacts or str(ctx.home.mlflow_artifacts)
    command = [
        _program("mlflow"),
        "server",
        "--host",
        HOST,
        "--port",
        str(ctx.port),
        "--workers",
        "1",
        "--backend-store-uri",
        ctx.database or ctx.home.tracking_uri,
        # Served through the tracking server (mlflow-artifacts:/ URIs): clients need no S3 credentials.
        "--artifacts-destination",
        destination,
        "--serve-artifacts",
        "--app-name",
        "basic-auth",
    ]
    # The auth app reads its config from MLFLOW_AUTH_CONFIG_PATH (by default a file whose user store is
    # written into the working directory): here a config in the home, its user store SQLite beside it, with
    # or without --database-url. The admin and password come from the variables `up` sets
    # (Service.secrets); the admin is created with them the first time, on an empty user store.
    auth = ctx.home.mlflow_auth
    config = auth / "basic_auth.ini"
    return Launch(
        command=command,
        env={
            # Its background job runner (on by default) is not needed for tracking, so it stays off.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
        },
        folders=(auth,) if destination.startswith("s3://") else (Path(destination), auth),
        files={config: _mlflow_auth_config(f"sqlite:///{auth / 'users.db'}")},
    )


def _mlflow_auth_config(database_uri: str) -> str:
    """MLflow's basic-auth config: signed-in users may read (MLflow's default) and the admin may do all."""
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # A verified credential is remembered for a minute: without it every request pays the password
        # hash check (scrypt, about 0.1 s here), about 0.3 s per call in all.
        "auth_cache_ttl_seconds = 60\n"
    )


def _evidently(ctx: LaunchContext) -> Launch:
    # The dashboard of the drift monitor's checks (monitoring.workspace). Its write API needs the secret
    # (EVIDENTLY_SECRET, set by `up`); telemetry is off through DO_NOT_TRACK, like every server's.
    workspace = ctx.home.evidently_workspace
    command = [
        _program("evidently"),
        "ui",
        "--host",
        HOST,
        "--port",
        str(ctx.port),
        "--workspace",
        str(workspace),
    ]
    return Launch(command=command, folders=(workspace,))


def _redis(ctx: LaunchContext) -> Launch:
    # The feature store's online store. Debian's redis-server (not a pip package), found on PATH. Its data is
    # kept in the home in an append-only file (synced every second): the materialisation record says what was
    # written, and incremental runs do not write it again, so a restart must not lose it. No RDB snapshots.
    data = ctx.home.redis
    command = [
        shutil.which("redis-server") or "redis-server",
        "-",  # read its config on stdin first (the password: _redis_config), then these options
        "--bind",
        HOST,
        "--port",
        str(ctx.port),
        # By default Redis rewrites its process title ("redis-server 127.0.0.1:6379"), and `up` tells its
        # process from a reused pid by the command line it recorded.
        "--set-proc-title",
        "no",
        "--dir",
        str(data),
        "--appendonly",
        "yes",
        "--save",
        "",
    ]
    return Launch(
        command=command,
        folders=(data,),
        stdin=_redis_config,
        install="apt-get install redis-server",
    )


def _redis_config(env: Mapping[str, str]) -> str:
    """Redis's config on its standard input: the password `up` put in its environment for redis-cli
    (REDISCLI_AUTH), so that it is in no command line (`ps` shows those to every user) and no file."""
    return f"requirepass {env['REDISCLI_AUTH']}\n"


def _feast_ui(ctx: LaunchContext) -> Launch:
    # Feast's UI over the CRM repository, its config built as every client of the stack builds it
    # (infra.stack.feast_ui): the registry in the home's file, or in its Postgres database with --database-url.
    env = {"MLOPS_HOME": str(ctx.home.root), FEAST_REDIS: ctx.address_of("redis")}
    if ctx.database is not None:
        env[FEAST_REGISTRY] = ctx.database
    command = [
        sys.executable,
        "-m",
        "infra.stack.feast_ui",
        "--host",
        HOST,
        "--port",
        str(ctx.port),
        "--repo",
        str(CRM_REPOSITORY),
    ]
    return Launch(command=command, env=env)


def _bento(ctx: LaunchContext) -> Launch:
    # The champion's online scoring, as the compose file's `bento`: the service from the project's source,
    # alive (/livez) before any champion exists and ready once the registry has one, following its every move.
    # Its argument is the config's serving section, read with the stack's token variable (its secret); its
    # prediction log goes to the home, where the drift monitor reads it.
    model = ctx.watched
    arguments = ctx.home.runtime / "bento-arguments.yaml"
    env = {
        SERVING_CHAMPION_OF: model.name,
        "MLOPS_HOME": str(ctx.home.root),
        "BENTOML_HOME": str(ctx.home.bentoml),
        "MLFLOW_TRACKING_URI": url_of(ctx.ports["mlflow"]),
        FEAST_REDIS: ctx.address_of("redis"),
    }
    if model.entity_column:
        env[SERVING_ENTITY_COLUMN] = model.entity_column
    if "feast-ui" in ctx.databases:  # Feast's registry on Postgres (--database-url)
        env[FEAST_REGISTRY] = ctx.databases["feast-ui"]
    command = [
        _program("bentoml"),
        "serve",
        SERVING_SERVICE,
        "--working-dir",
        str(REPO),
        "--host",
        HOST,
        "--port",
        str(ctx.port),
        "--arg-file",
        str(arguments),
    ]
    return Launch(
        command=command,
        env=env,
        folders=(ctx.home.runtime, ctx.home.prediction_logs),
        files={arguments: bento_arguments(model.serving)},
    )


def bento_arguments(serving: Mapping[str, Any]) -> str:
    """The argument file (``bentoml serve --arg-file``) of a Bento served from source with the pipeline config's
    ``serving`` section (JSON), its bearer token read from ``MLOPS_SERVING_TOKEN`` (the stack's secret). JSON,
    which is YAML."""
    return json.dumps({"serving_config": {**serving, "token_env": SERVING_TOKEN}}, indent=2) + "\n"


def _prometheus(ctx: LaunchContext) -> Launch:
    # Scrapes the Bento and the two monitoring servers (the others export no Prometheus metrics) through
    # file-based target lists: a file written into targets/ later (another Bento) is scraped without a reload.
    from monitoring.alert_routing import AlertRoutingConfig, prometheus_config, scrape_targets

    model = ctx.watched
    folder = ctx.home.prometheus
    targets = folder / "targets"
    rules = folder / "rules.yml"
    config = prometheus_config(
        rule_files=[rules],
        targets_dir=targets,
        alertmanager=ctx.address_of("alertmanager"),
        routing=AlertRoutingConfig.model_validate(model.routing),
    )
    scraped = {"bento": model.job, "prometheus": "prometheus", "alertmanager": "alertmanager"}
    files = {
        folder / "prometheus.yml": _yaml(config),
        rules: model.rules,
        **{
            targets / f"{name}.json": json.dumps(scrape_targets(job, [ctx.address_of(name)]), indent=2)
            for name, job in scraped.items()
        },
    }
    command = [
        shutil.which("prometheus") or "prometheus",
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={ctx.address_of(ctx.name)}",
    ]
    return Launch(
        command=command,
        folders=(folder, targets),
        files=files,
        install="apt-get install prometheus, or start the stack without it: mlops up --no-serve",
    )


def _alertmanager(ctx: LaunchContext) -> Launch:
    # Groups the alerts and posts one Slack-compatible message per group to the config's webhook (its URL is a
    # credential: the file is the user's only). No cluster: one instance, no gossip port.
    from monitoring.alert_routing import AlertRoutingConfig, alertmanager_config

    model = ctx.watched
    folder = ctx.home.alertmanager
    config = alertmanager_config(model.webhook_url, AlertRoutingConfig.model_validate(model.routing))
    command = [
        shutil.which("prometheus-alertmanager") or "prometheus-alertmanager",
        f"--config.file={folder / 'alertmanager.yml'}",
        f"--storage.path={folder / 'data'}",
        f"--web.listen-address={ctx.address_of(ctx.name)}",
        "--cluster.listen-address=",
    ]
    return Launch(
        command=command,
        folders=(folder,),
        files={folder / "alertmanager.yml": _yaml(config)},
        install="apt-get install prometheus-alertmanager, or start the stack without it: mlops up --no-serve",
    )


def _yaml(data: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(data), sort_keys=False)


SERVICES: Mapping[str, Service] = MappingProxyType(
    {
        service.name: service
        for service in (
            Service(
                name="prefect",
                default_port=4200,
                health_path="/api/health",
                port_help="Port of the Prefect server (UI and API).",
                launch=_prefect,
                # Prefect's server is async and needs the asyncpg driver.
                postgres=PostgresDatabase("prefect", "postgresql+asyncpg", "asyncpg", "asyncpg"),
                client_env={"PREFECT_API_URL": "{url}/api"},
                # Every API call (the UI's included: it asks for the password) needs the credential;
                # /api/health and /api/ready stay open, so the health check needs none.
                secrets=(
                    Secret(
                        "prefect",
                        user="mlops",
                        server_env={"PREFECT_SERVER_API_AUTH_STRING": "secret"},
                        client_env={"PREFECT_API_AUTH_STRING": "secret"},
                    ),
                ),
            ),
            Service(
                name="mlflow",
                default_port=5000,
                health_path="/health",
                port_help="Port of the MLflow tracking server.",
                launch=_mlflow,
                # Explicit driver: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3.
                postgres=PostgresDatabase("mlflow", "postgresql+psycopg2", "psycopg2", "psycopg2-binary"),
                client_env={"MLFLOW_TRACKING_URI": "{url}"},
                # Its basic-auth app: every call but /health needs the admin's (or a user's) password.
                secrets=(
                    Secret(
                        "mlflow",
                        user="admin",
                        server_env={
                            "MLFLOW_AUTH_ADMIN_USERNAME": "user",
                            "MLFLOW_AUTH_ADMIN_PASSWORD": "password",
                        },
                        client_env={
                            "MLFLOW_TRACKING_USERNAME": "user",
                            "MLFLOW_TRACKING_PASSWORD": "password",
                        },
                    ),
                    # Signs the auth app's sessions and CSRF tokens (its user-management forms).
                    Secret("mlflow-session", server_env={"MLFLOW_FLASK_SERVER_SECRET_KEY": "secret"}),
                ),
            ),
            Service(
                name="evidently",
                default_port=8000,
                health_path="/api/version",
                port_help="Port of the Evidently UI (the drift monitor's dashboard).",
                launch=_evidently,
                # The monitor links its checks' dashboard in its Prefect artifact when this is set.
                client_env={"MLOPS_EVIDENTLY_UI_URL": "{url}"},
                secrets=(Secret("evidently", server_env={"EVIDENTLY_SECRET": "secret"}),),
            ),
            Service(
                name="redis",
                default_port=6379,
                health_path="",
                port_help="Port of Redis, the feature store's online store.",
                launch=_redis,
                scheme="redis",
                client_env={FEAST_REDIS: "{address}"},
                # Every command but AUTH needs the password (requirepass), the health check's PING included.
                secrets=(
                    Secret(
                        "redis",
                        server_env={"REDISCLI_AUTH": "secret"},
                        client_env={FEAST_REDIS_PASSWORD: "secret"},
                    ),
                ),
                health_secret="redis",
            ),
            Service(
                name="feast-ui",
                default_port=8888,
                health_path="/health",
                port_help="Port of the Feast UI (the feature store's registry; no login, so loopback only).",
                launch=_feast_ui,
                # Feast's SQL registry, which its clients (runs, the service) open themselves.
                postgres=PostgresDatabase("feast", "postgresql+psycopg2", "psycopg2", "psycopg2-binary"),
                database_env=FEAST_REGISTRY,
                # It reads the online store as a client does (its REST API can), signed in to Redis.
                secrets=(Secret("redis", server_env={FEAST_REDIS_PASSWORD: "secret"}),),
            ),
            Service(
                name="bento",
                default_port=3000,
                # Alive: ready (/readyz) only once the registry has a champion, which the stack does not need.
                health_path="/livez",
                port_help="Port of the Bento serving the champion of --config's model (with --serve).",
                launch=_bento,
                secrets=(
                    # It follows the registry signed in to MLflow, reads the online store signed in to Redis,
                    # and answers every path but health and metrics only with `Authorization: Bearer <token>`.
                    Secret(
                        "mlflow",
                        user="admin",
                        server_env={
                            "MLFLOW_TRACKING_USERNAME": "user",
                            "MLFLOW_TRACKING_PASSWORD": "password",
                        },
                    ),
                    Secret("redis", server_env={FEAST_REDIS_PASSWORD: "secret"}),
                    Secret("serving", server_env={SERVING_TOKEN: "secret"}),
                ),
                watches=True,
            ),
            Service(
                name="alertmanager",
                default_port=9093,
                health_path="/-/ready",
                port_help="Port of Alertmanager, which routes the served model's alerts (with --serve).",
                launch=_alertmanager,
                watches=True,
            ),
            Service(
                name="prometheus",
                default_port=9090,
                health_path="/-/ready",
                port_help="Port of Prometheus, which scrapes the Bento and evaluates its rules (with --serve).",
                launch=_prometheus,
                watches=True,
            ),
        )
    }
)


def choose_ports(requested: Mapping[str, int]) -> dict[str, int]:
    """Each server's port, by name: ``requested[<name>_port]`` or the registry's default.

    Raises TypeError for a keyword that names no server (a caller's mistake, as for any other
    unknown keyword) and StackError when two servers would share a port.
    """
    by_parameter = {service.port_parameter: service for service in SERVICES.values()}
    unknown = sorted(set(requested) - set(by_parameter))
    if unknown:
        raise TypeError(
            f"no server of the stack takes {', '.join(unknown)}; ports are {', '.join(by_parameter)}"
        )
    ports = {
        service.name: requested.get(service.port_parameter, service.default_port)
        for service in SERVICES.values()
    }
    owners: dict[int, Service] = {}
    for service in SERVICES.values():
        other = owners.setdefault(ports[service.name], service)
        if other is not service:
            raise StackError(
                f"{other.port_option} and {service.port_option} are both {ports[service.name]}: "
                "give each server its own port"
            )
    return ports


def build_specs(
    home: ProjectHome,
    ports: Mapping[str, int],
    database_url: str | None,
    artifacts: str | None = None,
    model: WatchedModel | None = None,
) -> dict[str, ServiceSpec]:
    """Every server of the registry for ``home``, in start order, on ``ports`` (by name); those that watch a
    model (the Bento, Prometheus, Alertmanager) only with ``model``.

    ``database_url`` (``postgresql://user:pass@host:port``, no database name) puts each server
    that has a Postgres database on it, each in its own; None keeps their stores in the home.
    ``artifacts`` (``s3://bucket/prefix`` or an absolute folder) is where MLflow stores artifacts.
    Nothing is written or started (only the system's servers are looked up on PATH).
    """
    databases = postgres_urls(database_url) if database_url is not None else {}
    destination = artifact_destination(artifacts) if artifacts is not None else None
    return {
        name: service.spec(home, ports, databases.get(name), destination, databases=databases, model=model)
        for name, service in SERVICES.items()
        if model is not None or not service.watches
    }


def always_started() -> tuple[str, ...]:
    """The servers ``up`` starts with or without a model to watch."""
    return tuple(name for name, service in SERVICES.items() if not service.watches)


def artifact_destination(artifacts: str) -> str:
    """``--artifacts`` checked: ``s3://bucket[/prefix]`` (credentials and endpoint from the usual AWS
    variables and ``MLFLOW_S3_ENDPOINT_URL``) or an absolute folder, returned without a trailing slash."""
    parts = urlsplit(artifacts)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StackError(
                f"--artifacts '{artifacts}' names no bucket: give s3://bucket or s3://bucket/prefix"
            )
        return artifacts.rstrip("/")
    if parts.scheme or not Path(artifacts).is_absolute():
        raise StackError(f"--artifacts must be s3://bucket[/prefix] or an absolute folder, got '{artifacts}'")
    return str(Path(artifacts))


def postgres_urls(database_url: str) -> dict[str, str]:
    """Each server's own database URL (with its driver) on the Postgres server ``database_url`` names."""
    parts = urlsplit(database_url)
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres") or not parts.hostname:
        raise StackError(
            f"--database-url must look like postgresql://user:password@host:5432, got '{parts.scheme}://...'"
        )
    databases = {s.name: s.postgres for s in SERVICES.values() if s.postgres is not None}
    named = parts.path.strip("/")
    if named:
        owners = ", ".join(f"{name} uses '{database.name}'" for name, database in databases.items())
        raise StackError(
            f"--database-url names database '{named}': give the server only "
            f"(postgresql://user:password@host:5432); each server uses its own database ({owners}; "
            "created by infra/postgres-init.sql)"
        )
    return {
        name: urlunsplit(parts._replace(scheme=database.scheme, path=f"/{database.name}"))
        for name, database in databases.items()
    }
