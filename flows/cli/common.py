"""What every ``mlops`` command shares: consoles, exit codes, options, config loading."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from infra.home import ProjectHome
from models.errors import UserInputError

# Tables wider than 80 columns stay readable when output is piped or captured.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

EXIT_INVALID_DATA = 1
EXIT_USER_ERROR = 2

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Pipeline config YAML (see configs/crm_leads.yaml).")
]
DataOption = Annotated[
    Path | None, typer.Option("--data", "-d", help="Data file to use instead of the config's data.path.")
]


class _HideUserErrorTracebacks(logging.Filter):
    """Prefect logs task failures with a traceback; for input errors the one-line reason is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserInputError):
            record.exc_info = None
            record.exc_text = None
        return True


_TRACEBACK_FILTER = _HideUserErrorTracebacks()


def quiet_logging(verbose: bool) -> None:
    """Console shows warnings and errors unless --verbose; set before Prefect is imported."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        # The pipeline logs its model deliberately as a Python object; the advice is noise here.
        logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    os.environ.setdefault(
        "PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL",
        os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO"),
    )


def install_traceback_filter() -> None:
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()

    names = [n for n in list(logging.root.manager.loggerDict) if n.startswith("prefect")]
    for logger in (logging.getLogger("prefect"), *map(logging.getLogger, names)):
        for handler in logger.handlers:
            if _TRACEBACK_FILTER not in handler.filters:
                handler.addFilter(_TRACEBACK_FILTER)


def fail(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def say(message: str) -> None:
    """One line for the user, never re-wrapped: commands in it stay copy-pasteable."""
    out.print(message, highlight=False, soft_wrap=True)


def home_of(ctx: typer.Context) -> ProjectHome:
    return ctx.obj if isinstance(ctx.obj, ProjectHome) else ProjectHome.from_env()


def load(config_path: Path, data: Path | None, home: ProjectHome):
    from flows.config import load_config

    overrides = {"data.path": str(data.resolve())} if data else None
    return load_config(config_path, home=home.root, overrides=overrides)


def _how_to_get(path: Path, config: Path, home: ProjectHome) -> str:
    """What to do about a missing data file: generate the synthetic table where the default config
    expects it, otherwise point the config at the user's own file."""
    if path.resolve().is_relative_to(home.data):
        return (
            f"generate the synthetic CRM table with `mlops data generate --out {path}` "
            "(or run `make run`, which generates it and then runs the pipeline)"
        )
    return f"set data.path in {config} to your data file, or pass --data PATH"


def check_crm_source(source: Path, home: ProjectHome) -> None:
    """The feature store's tables come from a CRM source folder: when it is missing, say how to make it."""
    from models.data.crm import SOURCE_TABLES

    missing = [name for name in SOURCE_TABLES if not (source / f"{name}.parquet").is_file()]
    if missing:
        raise UserInputError(
            f"{source}: CRM source not found (no {', '.join(f'{m}.parquet' for m in missing)}); "
            f"generate it with `mlops data generate --crm{_out_option(source, home)}`"
        )


def _out_option(source: Path, home: ProjectHome) -> str:
    return "" if source.resolve() == home.crm_source.resolve() else f" --out {source}"


def _check_crm_source(source: Path, spine: Path, home: ProjectHome) -> None:
    """The feature store's tables come from a CRM source folder and its rows from a label spine: when
    either is missing, say how to make them."""
    check_crm_source(source, home)
    out_option = _out_option(source, home)
    if not spine.exists():
        raise UserInputError(
            f"{spine}: label spine not found; write one (entity id, as-of time, label) there, "
            f"or generate a source with its spine: `mlops data generate --crm{out_option}`"
        )


def preflight(config: Path, data: Path | None, home: ProjectHome):
    """Config, data file and suite checked in a second, before Prefect starts: a user error costs
    no server start-up and shows no traceback."""
    try:
        cfg = load(config, data, home)
        from models.data.io import check_data_file
        from models.data.suite import load_suite

        if cfg.feature_store is not None:
            _check_crm_source(cfg.feature_store.source, cfg.data.path, home)
        if not cfg.data.path.exists():
            raise UserInputError(
                f"{cfg.data.path}: file not found; {_how_to_get(cfg.data.path, config, home)}"
            )
        check_data_file(cfg.data.path)
        load_suite(cfg.data.expectations)
    except UserInputError as exc:
        raise fail(str(exc)) from None
    install_traceback_filter()
    return cfg
