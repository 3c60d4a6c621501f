"""The approver's journey in a browser: `mlops run` pauses at the promotion gate and prints where to
approve, a person opens that link in a browser that has not signed in to the Prefect UI, signs in, lands on
the run, reads the evidence in the resume form, approves, and the model becomes champion.

Drives Debian's Chromium (not a Playwright-downloaded browser) through Playwright's sync API.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from infra.home import ProjectHome
from models.data.io import write_table
from models.data.synthetic import generate_leads

from helpers.browser import ARTIFACTS, CHROMIUM_ARGS
from helpers.configs import small_pipeline_config
from helpers.flow_runs import find_paused_run
from helpers.processes import stop_process, wait_until

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MLOPS = str(Path(sys.executable).parent / "mlops")
MODEL = "crm-leads-e2e"
APPROVER = "Ada Approver"
COMMENT = "Evidence reviewed in the UI: ship it."
PAUSE_TIMEOUT_S = 240  # generate, train, sweep and evaluate the shrunken pipeline up to the gate
FINISH_TIMEOUT_S = 180  # champion alias and Bento build after the resume
UI_TIMEOUT_MS = 30_000


@pytest.fixture
def gated_config(tmp_path: Path) -> tuple[ProjectHome, Path]:
    """A fresh project home and the shrunken pipeline config with a human promotion gate."""
    home = ProjectHome(tmp_path / "home")
    data = write_table(generate_leads(4000, seed=5), tmp_path / "leads.parquet")
    # The policy's verdict on tiny data does not matter: the person decides.
    config_path = small_pipeline_config(
        tmp_path / "pipeline.yaml",
        data,
        model_name=MODEL,
        trials=1,
        approval={"promotion": {"mode": "human"}, "timeout_seconds": 900},
    )
    return home, config_path


class PipelineProcess:
    """`mlops run` as a user starts it: its own process group, output to a log file."""

    def __init__(self, config_path: Path, home: ProjectHome, api_url: str, log: Path) -> None:
        self.config_path = config_path.resolve()
        self.home = home
        self.log = log
        env = {
            **os.environ,
            "MLOPS_HOME": str(home.root),
            "MLFLOW_TRACKING_URI": home.tracking_uri,
            "BENTOML_HOME": str(home.bentoml),
            "PREFECT_API_URL": api_url,
        }
        with log.open("w") as handle:
            self.proc = subprocess.Popen(
                [MLOPS, "run", "--config", str(self.config_path)],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=home.root.parent,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_until_paused(self, timeout: float) -> FlowRun:
        """This process's training flow run once it waits at a gate."""
        return find_paused_run(
            flow_name="training-pipeline",
            parameters={"config_path": str(self.config_path)},
            process=self.proc,
            timeout=timeout,
            what="a paused training run",
            describe=lambda: f"`mlops run` output:\n{self.output()}",
        )

    def approval_link(self) -> str:
        """The link the gate's "approve at" line hands the person running `mlops run`."""

        def printed() -> str | None:
            found = re.search(r"gate waits for a person: approve at (\S+)", self.output())
            return found[1] if found else None

        return wait_until(printed, 30, "the gate's 'approve at' line", describe=self.output)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`mlops run` did not finish within {timeout} s after the resume:\n{self.output()}")


@pytest.fixture
def pipeline(
    gated_config: tuple[ProjectHome, Path], prefect_server: str, tmp_path: Path
) -> Iterator[PipelineProcess]:
    home, config_path = gated_config
    process = PipelineProcess(config_path, home, prefect_server, tmp_path / "mlops-run.log")
    try:
        yield process
    finally:
        stop_process(process.proc)


def _route_offline(page, base: str) -> None:
    """Keep the browser on the loopback server: the V2 UI's analytics calls are aborted."""
    page.route(lambda url: not url.startswith(base), lambda route: route.abort())


def test_approver_resumes_promotion_gate_in_prefect_ui(
    chromium: str, pipeline: PipelineProcess, prefect_server: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient
    from playwright.sync_api import expect, sync_playwright

    run = pipeline.wait_until_paused(PAUSE_TIMEOUT_S)
    run_id = run.id
    base = prefect_server.removesuffix("/api")
    link = pipeline.approval_link()
    # The server's auth is on: the link goes through the UI's login page to the run.
    assert link == f"{base}/v2/login?redirectTo=/runs/flow-run/{run_id}"
    # The run's page opens on a tab of its own choosing (`?tab=Logs` in this version).
    run_page = re.compile(rf"{re.escape(base)}/v2/runs/flow-run/{run_id}(\?.*)?$")
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "approval-form.png"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        # Tall enough that the whole resume form (evidence and fields) fits in one screenshot.
        page = browser.new_page(viewport={"width": 1400, "height": 3000})
        try:
            page.set_default_timeout(UI_TIMEOUT_MS)
            # expect() keeps its own 5 s default, which a loaded machine's first render can exceed.
            expect.set_options(timeout=UI_TIMEOUT_MS)
            _route_offline(page, base)
            # A fresh browser, never signed in, opens the printed link: the UI asks for the credential
            # first, refuses a wrong one, and after the right one shows the run.
            page.goto(link)
            login = page.get_by_placeholder("admin:pass")
            login.fill("mlops:wrong")
            page.get_by_role("button", name="Login").click()
            expect(page.get_by_text("Invalid credentials")).to_be_visible()
            login.fill(os.environ["PREFECT_API_AUTH_STRING"])
            page.get_by_role("button", name="Login").click()
            expect(page).to_have_url(run_page)
            expect(page.get_by_text(run.name).first).to_be_visible()
            page.screenshot(path=ARTIFACTS / "approval-link-after-login.png")
            # Signed in, the same link goes straight to the run (as a second notification would).
            page.goto(link)
            expect(page).to_have_url(run_page)
            # The run page of the V2 UI has the actions behind the "⋮" menu.
            page.get_by_role("button", name="Open menu").click()
            page.get_by_role("menuitem", name="Resume").click()

            form = page.get_by_role("dialog", name="Resume Flow Run")
            # The form carries the gate's evidence: the markdown description, rendered.
            heading = form.get_by_role("heading", name=re.compile(rf"^Promotion gate: {MODEL} v1"))
            expect(heading).to_be_visible()
            expect(form).to_contain_text("ROC AUC")
            approved = form.get_by_role("switch", name="Approved")
            expect(approved).not_to_be_checked()
            approved.click()
            expect(approved).to_be_checked()
            form.get_by_role("textbox", name="Approver").fill(APPROVER)
            form.get_by_role("textbox", name="Comment").fill(COMMENT)
            form.screenshot(path=screenshot)
            shutil.copy(screenshot, tmp_path / screenshot.name)

            form.get_by_role("button", name="Resume", exact=True).click()
            expect(page.get_by_text("Flow run resumed")).to_be_visible()
            expect(form).to_be_hidden()
        except Exception:
            page.screenshot(path=ARTIFACTS / "approval-ui-failure.png", full_page=True)
            raise
        finally:
            browser.close()

    returncode = pipeline.wait(FINISH_TIMEOUT_S)
    output = pipeline.output()
    assert returncode == 0, output
    assert "promoted to champion" in output, output

    client = MlflowClient(pipeline.home.tracking_uri)
    (version,) = client.search_model_versions(f"name='{MODEL}'")
    tags = version.tags
    assert tags["prefect.flow_run_id"] == str(run_id)
    assert tags["approval.promotion.approver"] == APPROVER
    assert tags["approval.promotion.outcome"] == "approved"
    assert tags["approval.promotion.decided_by"] == "human"
    assert tags["approval.promotion.comment"] == COMMENT
    assert client.get_model_version_by_alias(MODEL, "champion").version == version.version
