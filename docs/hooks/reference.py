"""MkDocs hook: the configuration and CLI reference pages, rendered from the code at build time.

A page holding ``<!-- reference: config -->`` gets every field of ``PipelineConfig``, recursively, with its
dotted path, type, default and description; a page holding ``<!-- reference: cli -->`` gets every ``mlops``
command and sub-command with its usage and each option's and argument's help. Both read the objects the
platform itself uses, so the pages cannot drift from the code. A field without a description (and no section
docstring to stand in) or a command without help is a warning, which ``mkdocs build --strict`` turns into a
failed build.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

log = logging.getLogger("mkdocs.hooks.reference")

CONFIG_MARKER = "<!-- reference: config -->"
CLI_MARKER = "<!-- reference: cli -->"
# A mapping's key in a dotted path: `sweep.search_space.<name>.low`.
KEY = "<name>"


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str:
    """Replace each reference marker on a page with the reference it names."""
    repo = Path(config.config_file_path).resolve().parent
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, config_reference(repo))
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return markdown


# --- markdown helpers ---------------------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)


def text(value: str) -> str:
    """Plain text for a markdown table cell: code spans kept, markup characters outside them escaped, one line."""
    out: list[str] = []
    last = 0
    for match in _CODE_SPAN.finditer(value):
        out.append(_escape(value[last : match.start()]))
        out.append(match.group(0))  # Python-Markdown's tables leave a pipe inside a code span alone
        last = match.end()
    out.append(_escape(value[last:]))
    return " ".join("".join(out).split())


def _escape(value: str) -> str:
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for char in "\\*_[]|":
        value = value.replace(char, "\\" + char)
    return value


def code(value: str) -> str:
    """A code span (a pipe in it does not end a table cell)."""
    return f"`{value}`"


def paragraphs(value: str) -> str:
    """Help text as markdown paragraphs: hard-wrapped lines joined, blank lines kept."""
    return "\n\n".join(
        text(block) for block in re.split(r"\n\s*\n", inspect.cleandoc(value)) if block.strip()
    )


# --- configuration reference -------------------------------------------------------------------------------


@dataclass
class Row:
    path: str
    type: str
    default: str
    description: str


def config_reference(repo: Path) -> str:
    """Every section and field of the pipeline config, in the order of ``PipelineConfig``."""
    from flows.config import PipelineConfig

    scalars: list[Row] = []
    sections: list[str] = []
    for name, field in PipelineConfig.model_fields.items():
        rows = _rows(name, field, _default_of(field))
        section = _models_of(field.annotation)
        if not section:
            scalars.extend(rows)
            continue
        head, nested = rows[0], rows[1:]
        where = ", ".join(
            f"`{Path(inspect.getsourcefile(m)).resolve().relative_to(repo)}` (`{m.__name__}`)"
            for m in section
        )
        if field.is_required():
            presence = "Required section"
        elif field.get_default(call_default_factory=True) is None:
            presence = "Optional section, off (`null`) unless given"
        else:
            presence = "Optional section: a field left out keeps the default shown"
        sections.append(
            f"## `{name}`\n\n{head.description}\n\n{presence}; defined in {where}.\n\n{_table(nested)}"
        )
    top = f"## Top level\n\n{_table(scalars)}"
    return "\n\n".join([top, *sections]) + "\n"


def _table(rows: list[Row]) -> str:
    lines = ["| Field | Type | Default | Description |", "|---|---|---|---|"]
    lines += [f"| {code(r.path)} | {r.type} | {r.default} | {r.description} |" for r in rows]
    return "\n".join(lines)


def _rows(path: str, field: FieldInfo, default: Any) -> list[Row]:
    """The row of ``field`` at ``path`` and those of every field nested in it."""
    models = _models_of(field.annotation)
    description = field.description or _docstring(models)
    if not description:
        log.warning("config reference: %s has no description (add description= to its Field)", path)
    rows = [Row(path, _type_cell(field), _value(default), text(description or ""))]
    if not models:
        return rows
    prefix = path + (f".{KEY}" if _is_mapping(field.annotation) else "")
    merged: dict[str, Row] = {}
    for model in models:
        instance = default if isinstance(default, model) else None
        for name, child in model.model_fields.items():
            child_default = getattr(instance, name) if instance is not None else _default_of(child)
            for row in _rows(f"{prefix}.{name}", child, child_default):
                _merge(merged, row)
    return rows + list(merged.values())


def _merge(rows: dict[str, Row], row: Row) -> None:
    """Fields of the same path in several variants of a union (a search-space distribution) share one row."""
    seen = rows.get(row.path)
    if seen is None:
        rows[row.path] = row
        return
    for attr, sep in (("type", " \\| "), ("default", " \\| "), ("description", "<br>")):
        parts = getattr(seen, attr).split(sep)
        if getattr(row, attr) not in parts:
            setattr(seen, attr, sep.join([*parts, getattr(row, attr)]))


def _default_of(field: FieldInfo) -> Any:
    if field.is_required():
        return _REQUIRED
    return field.get_default(call_default_factory=True)


class _Required:
    pass


_REQUIRED = _Required()


def _value(value: Any) -> str:
    if value is _REQUIRED:
        return "*required*"
    if isinstance(value, BaseModel):
        return "*see its fields*"
    if isinstance(value, Path):
        value = str(value)
    return code(json.dumps(value, default=str))


def _docstring(models: list[type[BaseModel]]) -> str:
    """A section's description when its field has none: the first paragraph of its model's docstring."""
    for model in models:
        if model.__doc__:
            return inspect.cleandoc(model.__doc__).split("\n\n")[0]
    return ""


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's values are made of (through Optional, unions, Annotated and mappings)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (dict, typing.Mapping):
        args = args[1:]
    found: list[type[BaseModel]] = []
    for arg in args:
        found += [m for m in _models_of(arg) if m not in found]
    return found


def _is_mapping(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (dict, typing.Mapping):
        return True
    return any(_is_mapping(arg) for arg in typing.get_args(annotation) if arg is not type(None))


def _type_cell(field: FieldInfo) -> str:
    cell = code(_type_name(field.annotation))
    constraints = _constraints(field.metadata)
    return f"{cell} ({', '.join(constraints)})" if constraints else cell


def _type_name(annotation: Any) -> str:
    """A type as a YAML user reads it: null for None, quoted literals, `mapping` for a nested section."""
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "mapping"
        return {Path: "path"}.get(annotation, annotation.__name__)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args]
        if all(n == "mapping" for n in names):
            return "mapping"
        return " | ".join(dict.fromkeys(names))
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return str(annotation)


def _constraints(metadata: list[Any]) -> list[str]:
    symbols = {
        "gt": ">",
        "ge": "≥",
        "lt": "<",
        "le": "≤",
        "min_length": "min length",
        "max_length": "max length",
    }
    out: list[str] = []
    for item in metadata:
        for attr, symbol in symbols.items():
            if getattr(item, attr, None) is not None:
                out.append(f"{symbol} {getattr(item, attr)}")
        if getattr(item, "pattern", None):
            out.append(f"pattern {code(item.pattern)}")
    return out


# --- CLI reference -----------------------------------------------------------------------------------------


def cli_reference() -> str:
    """Every ``mlops`` command and sub-command: its help, usage, and each argument and option."""
    import typer

    from flows.cli import app

    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="mlops")
    blocks = [_command_block(root, ctx, level=2)]
    overview = ["| Command | What it does |", "|---|---|"]
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        sub_ctx = typer.Context(command, info_name=name, parent=ctx)
        overview.append(
            f"| [{code('mlops ' + name)}](#{_anchor(sub_ctx)}) | {text(command.get_short_help_str(300))} |"
        )
        blocks.append(_command_block(command, sub_ctx, level=2))
        for sub_name in getattr(command, "list_commands", lambda _ctx: [])(sub_ctx):
            sub = command.get_command(sub_ctx, sub_name)
            blocks.append(
                _command_block(sub, typer.Context(sub, info_name=sub_name, parent=sub_ctx), level=3)
            )
    return "\n\n".join(["\n".join(overview), *blocks]) + "\n"


def _command_path(ctx: Any) -> str:
    names: list[str] = []
    while ctx is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(names))


def _anchor(ctx: Any) -> str:
    return _command_path(ctx).replace(" ", "-")


def _command_block(command: Any, ctx: Any, level: int) -> str:
    path = _command_path(ctx)
    if command.hidden:
        return ""
    if not command.help:
        log.warning("CLI reference: `%s` has no help text", path)
    parts = [f"{'#' * level} {path}", paragraphs(command.help or "")]
    parts.append(f"```text\n{command.get_usage(ctx)}\n```")
    rows = []
    for param in command.params:
        record = None if param.hidden else param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        if not help_text:
            log.warning("CLI reference: %s %s has no help text", path, names)
        rows.append(f"| {code(names)} | {text(help_text)} |")
    if rows:
        parts.append("\n".join(["| Argument or option | Help |", "|---|---|", *rows]))
    if hasattr(command, "list_commands"):
        subs = [f"`{path} {name}`" for name in command.list_commands(ctx)]
        parts.append("Commands: " + ", ".join(subs) + ".")
    return "\n\n".join(p for p in parts if p)
