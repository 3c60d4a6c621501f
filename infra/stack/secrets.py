"""Per-home secrets of the local stack's servers: generated once, kept private to the user.

``home.runtime/secrets/<file>`` holds each secret of the registry's servers (``Service.secrets``),
created by ``mlops up`` with mode 0600 in a 0700 folder and reused on every later start, so clients of
the same home (``mlops`` commands, tests) read the same value. Never in a command line or the state file.

MLflow's auth app creates its admin with the password only on an empty user store: a deleted ``mlflow``
file is generated anew but no longer matches; delete ``mlflow-auth/users.db`` with it (the admin is
created again; other users are lost).

A server whose clients open its Postgres database themselves (Feast's SQL registry) has that database's URL,
password included, in ``<database>-database`` beside them: written by ``up`` when it starts the server with
``--database-url``, removed when it starts it without one, so that it always describes the running server.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from infra.home import ProjectHome
from infra.stack.errors import StackError


def secrets_dir(home: ProjectHome) -> Path:
    return home.runtime / "secrets"


def secret_path(home: ProjectHome, name: str) -> Path:
    return secrets_dir(home) / name


def ensure_secret(home: ProjectHome, name: str, user: str | None = None) -> str:
    """The secret of server ``name`` for ``home``, generated (URL-safe, 256 bits) the first time.

    With ``user``, an HTTP basic-auth credential: ``<user>:<token>`` (the token has no ``:``).
    """
    path = secret_path(home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    try:
        # O_EXCL: two concurrent `mlops up` calls cannot both write one.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_secret(home, name)
    with os.fdopen(fd, "w") as handle:
        token = secrets.token_urlsafe(32)
        handle.write(f"{user}:{token}" if user else token)
    return read_secret(home, name)


def database_secret(database: str) -> str:
    """The secrets file that holds the URL of the stack's Postgres database ``database`` for its clients."""
    return f"{database}-database"


def write_secret(home: ProjectHome, name: str, value: str) -> None:
    """Replace secret ``name`` of ``home`` with ``value`` (mode 0600, folder 0700): one that is given, not
    generated."""
    path = secret_path(home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    os.replace(tmp, path)


def remove_secret(home: ProjectHome, name: str) -> None:
    secret_path(home, name).unlink(missing_ok=True)


def read_secret(home: ProjectHome, name: str) -> str:
    """The secret ``mlops up`` generated for server ``name``; a clear error before it ever ran."""
    path = secret_path(home, name)
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        raise StackError(f"no secret for the {name} server at {path}: `mlops up` generates it") from None
    if not value:
        raise StackError(f"{path} is empty: delete it and run `mlops up` to generate a new secret")
    return value
