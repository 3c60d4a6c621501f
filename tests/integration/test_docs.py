"""The documentation site: `mkdocs build --strict` succeeds, the generated references hold every config field
and every `mlops` command, the README stays short, and the pages render in headless Chromium from a loopback
server with no request leaving it.

The site is built once for the module (a second or so); the browser test saves screenshots under
test-artifacts/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from flows.config import PipelineConfig

from helpers.browser import ARTIFACTS, CHROMIUM_ARGS
from helpers.processes import free_port, stop_process, wait_http

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
README_MAX_BYTES = 12_000
BUILD_TIMEOUT_S = 180
UI_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `make docs` builds it (strict: a warning fails), into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


class _Page(HTMLParser):
    """A built page's visible text, the text of its headings and of its code elements."""

    HEADINGS = {"h1", "h2", "h3", "h4"}

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.headings: list[str] = []
        self.codes: set[str] = set()
        self._open: list[tuple[str, list[str]]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        if tag in self.HEADINGS or tag == "code":
            self._open.append((tag, []))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
        if self._open and self._open[-1][0] == tag:
            _, parts = self._open.pop()
            content = " ".join("".join(parts).split()).replace("¶", "").strip()
            (self.codes.add if tag == "code" else self.headings.append)(content)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        for _, parts in self._open:
            parts.append(data)


def read_page(site: Path, name: str) -> _Page:
    page = _Page()
    page.feed((site / name).read_text(encoding="utf-8"))
    return page


def config_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every field's dotted path, recursively; a mapping's key is written `<name>`."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        yield from _nested_paths(field.annotation, path)


def _nested_paths(annotation: Any, path: str) -> Iterator[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from config_paths(annotation, f"{path}.")
    elif typing.get_origin(annotation) is dict:
        yield from _nested_paths(typing.get_args(annotation)[1], f"{path}.<name>")
    else:
        for arg in typing.get_args(annotation):
            yield from _nested_paths(arg, path)


def mlops_commands() -> list[str]:
    """Every command and sub-command of the `mlops` CLI, as typed: `mlops data generate`."""
    import typer

    from flows.cli import app

    def walk(command: Any, ctx: Any) -> Iterator[str]:
        for name in getattr(command, "list_commands", lambda _ctx: [])(ctx):
            sub = command.get_command(ctx, name)
            sub_ctx = typer.Context(sub, info_name=name, parent=ctx)
            yield sub_ctx.command_path
            yield from walk(sub, sub_ctx)

    root = typer.main.get_command(app)
    return list(walk(root, typer.Context(root, info_name="mlops")))


def test_configuration_reference_lists_every_section_and_field(site: Path) -> None:
    page = read_page(site, "reference/configuration.html")
    sections = yaml.safe_load((REPO / "configs/crm_leads.yaml").read_text())
    for key in sections:
        assert key in PipelineConfig.model_fields, key
    # Each section of the shipped config has its own heading (the top-level scalars share one).
    nested = [key for key in sections if not isinstance(sections[key], str | int | float)]
    assert nested and all(key in page.headings for key in nested), (nested, page.headings)
    paths = list(config_paths(PipelineConfig))
    assert "sweep.search_space.<name>.low" in paths and "serving.ab.mode" in paths
    missing = [path for path in paths if path not in page.codes]
    assert not missing, f"not in the configuration reference: {missing}"


def test_cli_reference_lists_every_command_and_option(site: Path) -> None:
    page = read_page(site, "reference/cli.html")
    commands = mlops_commands()
    assert "mlops data generate" in commands and "mlops approvals approve" in commands
    missing = [command for command in commands if command not in page.headings]
    assert not missing, f"not in the CLI reference: {missing}"
    text = " ".join("".join(page.text).split())
    for flag in ("--config", "--drift", "--approver", "--prefect-port", "--to"):
        assert flag in text, flag


def test_readme_is_short_and_its_code_fences_are_balanced() -> None:
    readme = (REPO / "README.md").read_bytes()
    assert len(readme) <= README_MAX_BYTES, f"README.md is {len(readme):,} bytes"
    fences = [line for line in readme.decode().splitlines() if line.lstrip().startswith("```")]
    assert len(fences) % 2 == 0, f"{len(fences)} code fences: one is not closed"
    assert "make docs" in readme.decode()


@pytest.fixture
def served_site(site: Path, tmp_path: Path) -> Iterator[str]:
    """The built site on a loopback port (Python's http.server); yields its base URL and stops the server."""
    port = free_port()
    log = tmp_path / "http.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
            cwd=site,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/index.html", timeout=30, proc=proc, log=log)
        yield base
    finally:
        stop_process(proc)


def test_home_and_configuration_reference_render_in_chromium(chromium: str, served_site: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    elsewhere: list[str] = []

    def refuse(route: Any) -> None:
        elsewhere.append(route.request.url)
        route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(UI_TIMEOUT_MS)
        # expect() keeps its own 5 s default, which a loaded machine's first render can exceed.
        expect.set_options(timeout=UI_TIMEOUT_MS)
        # The site must work offline: a request for anything not on the loopback server is recorded and
        # refused.
        page.route(lambda url: not url.startswith(served_site), refuse)
        try:
            page.goto(f"{served_site}/index.html")
            expect(page).to_have_title("mlops-crm")
            expect(page.get_by_role("heading", name="Where to start")).to_be_visible()
            page.screenshot(path=ARTIFACTS / "docs-home.png")

            page.goto(f"{served_site}/reference/configuration.html")
            expect(page.get_by_role("heading", name="Configuration reference", level=1)).to_be_visible()
            expect(
                page.get_by_role("cell", name="sweep.search_space.<name>.low", exact=True)
            ).to_be_attached()
            page.screenshot(path=ARTIFACTS / "docs-configuration.png")

            # The architecture diagram is an SVG file of the site, drawn with no network.
            page.goto(f"{served_site}/concepts.html")
            diagram = page.locator('img[src$="architecture.svg"]')
            expect(diagram).to_be_visible()
            assert diagram.evaluate("img => img.complete && img.naturalWidth > 0")
            diagram.screenshot(path=ARTIFACTS / "docs-architecture.png")
        except Exception:
            page.screenshot(path=ARTIFACTS / "docs-failure.png", full_page=True)
            raise
        finally:
            browser.close()
    assert not elsewhere, f"requests leaving the site: {elsewhere}"
