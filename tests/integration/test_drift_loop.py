"""The monitoring loop as an operator runs it, against a real Prefect server with both deployments served:

1. `mlops run` makes a champion (with its drift reference); `mlops deploy` serves training and the monitor
   and sets up the alert automations towards a webhook receiver the test runs.
2. An undrifted batch: `mlops monitor` exits 0 and emits no event.
3. A drifted batch: `mlops monitor` exits 1, emits `mlops.drift.detected` (the receiver is notified), and
   the training deployment's trigger starts a run by itself on the labelled source the event names; the run
   suspends at the promotion gate (the receiver is notified again, with the run's link).
4. A second drift inside the cooldown starts no second run.
5. The approver's journey, as a person does it: the notification's link opened in a browser (Debian's
   Chromium through Playwright's sync API) that has not signed in to the Prefect UI; a wrong credential is
   refused, the right one lands on the run; the resume form shows the gate's evidence; the person approves
   with a name and a comment. The run completes: the new version is champion with the person's decision on
   it, and the sweep was not run twice (the resumed run replays persisted task results).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterId,
)

from infra.home import ProjectHome
from models.data.io import write_table
from models.data.synthetic import generate_leads

from helpers.browser import ARTIFACTS, CHROMIUM_ARGS
from helpers.cli import mlops_in_process
from helpers.configs import small_pipeline_config
from helpers.processes import stop_process, wait_until
from helpers.webhook import Receiver

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MLOPS = str(Path(sys.executable).parent / "mlops")
MODEL = "crm-drift-loop"
NAME = "drift-loop"
TRIGGER_WAIT_S = 90  # the runner polls every second; the trigger acts within seconds of the event
APPROVER = "Ada Approver"
COMMENT = "Drift retrain: evidence reviewed in the UI, ship it."
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, prefect_server: str, receiver: Receiver) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("drift-loop")
    home = ProjectHome(root / "home")
    data = write_table(generate_leads(3000, seed=31), root / "leads.parquet")
    monitoring = {"retrain_cooldown_minutes": 60, "alert_webhook_url": receiver.url}
    # The deployment's runs wait for a person at the promotion gate; the first, local run does not.
    config = small_pipeline_config(
        root / f"{NAME}.yaml",
        data,
        model_name=MODEL,
        trials=1,
        name=NAME,
        schedule={"cron": None},
        monitoring=monitoring,
        approval={"promotion": {"mode": "human"}, "timeout_seconds": 900},
    )
    first_config = small_pipeline_config(
        root / f"{NAME}-first.yaml",
        data,
        model_name=MODEL,
        trials=1,
        name=NAME,
        schedule={"cron": None},
        monitoring=monitoring,
    )
    env = {
        **os.environ,
        "MLOPS_HOME": str(home.root),
        "MLFLOW_TRACKING_URI": home.tracking_uri,
        "BENTOML_HOME": str(home.bentoml),
        "PREFECT_API_URL": prefect_server,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    first = subprocess.run(
        [MLOPS, "run", "--config", str(first_config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0 and "champion: v1" in first.stdout, (
        first.stdout[-2000:] + first.stderr[-2000:]
    )
    log = root / "runner.log"
    with log.open("w") as handle:
        runner = subprocess.Popen(
            [MLOPS, "deploy", "--config", str(config)],
            cwd=REPO,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        cli_env = {key: env[key] for key in ("MLOPS_HOME", "MLFLOW_TRACKING_URI", "BENTOML_HOME")}
        yield {
            "root": root,
            "env": env,
            "cli_env": cli_env,
            "config": config,
            "log": log,
            "deployment": _deployment_id(NAME, log),
        }
    finally:
        stop_process(runner)


def _deployment_id(name: str, log: Path, timeout: float = 120):
    with get_client(sync_client=True) as client:

        def training_deployment():
            found = client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
            )
            flows = {client.read_flow(d.flow_id).name for d in found}
            if {"training-pipeline", "drift-monitor"} <= flows:
                return next(d.id for d in found if client.read_flow(d.flow_id).name == "training-pipeline")
            return None

        return wait_until(
            training_deployment,
            timeout,
            f"deployments {name} registered",
            interval=1,
            describe=lambda: log.read_text()[-3000:],
        )


def _monitor(loop: dict, batch: Path | None = None) -> subprocess.CompletedProcess:
    """`mlops monitor` as typed, in this process (the CLI start-up is most of a check's time)."""
    data = [] if batch is None else ["--data", str(batch)]
    return mlops_in_process(loop["cli_env"], "monitor", "--config", str(loop["config"]), *data)


def _training_runs(deployment_id) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [deployment_id]}))


def test_drift_retrains_once_per_cooldown(
    loop: dict, receiver: Receiver, chromium: str, tmp_path: Path
) -> None:
    calm = write_table(generate_leads(2000, seed=32), loop["root"] / "calm.parquet")
    drifted = write_table(generate_leads(2000, seed=33, drift=1.0), loop["root"] / "drifted.parquet")

    quiet = _monitor(loop, calm)
    assert quiet.returncode == 0, quiet.stdout[-3000:] + quiet.stderr[-3000:]
    assert "no drift" in quiet.stdout and "emitted" not in quiet.stdout
    assert _training_runs(loop["deployment"]) == [], "an undrifted batch must not retrain"

    alarm = _monitor(loop, drifted)
    assert alarm.returncode == 1, alarm.stdout[-3000:] + alarm.stderr[-3000:]
    assert f"emitted mlops.drift.detected for mlops.model.{MODEL}" in alarm.stdout
    assert "drift.html" in alarm.stdout
    alert = receiver.wait_for(f"Drift detected in {MODEL}")
    assert "Last retraining run of training-pipeline/drift-loop: none yet" in alarm.stdout
    assert "drifted columns" in alert["text"] and "drift.html" in alert["text"]

    runs = wait_until(
        lambda: _training_runs(loop["deployment"]),
        TRIGGER_WAIT_S,
        "a training run started by the drift event",
        interval=1,
        describe=lambda: loop["log"].read_text()[-3000:],
    )
    assert len(runs) == 1, f"the drift event started no training run\n{loop['log'].read_text()[-3000:]}"
    [run] = runs
    assert run.parameters["data_path"] == str(Path(loop["config"]).parent / "leads.parquet")

    again = _monitor(loop, drifted)
    assert again.returncode == 1
    # Each check is a run of the model's project in the home's Evidently workspace (the dashboard).
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(ProjectHome(Path(loop["env"]["MLOPS_HOME"])).evidently_workspace))
    (project,) = workspace.search_project(MODEL)
    assert len(workspace.list_runs(project.id)) == 3
    assert f"Dashboard: project {MODEL} ({project.id}) in the Evidently workspace" in again.stdout
    # The operator sees why this drift did not retrain: the run the first one started, inside the cooldown.
    assert f"Last retraining run of training-pipeline/drift-loop: {run.name}" in again.stdout
    deadline = time.monotonic() + 600  # for both waits: up to the gate, then to the end of the run
    with get_client(sync_client=True) as client:

        def paused() -> bool:
            state = client.read_flow_run(run.id).state
            assert not state.is_final(), f"{state.name}: {state.message}\n{loop['log'].read_text()[-3000:]}"
            return state.is_paused()

        wait_until(
            paused,
            deadline - time.monotonic(),
            f"run {run.name} paused at its gate",
            interval=1,
            describe=lambda: loop["log"].read_text()[-3000:],
        )
        gate = receiver.wait_for(f"Approval waiting: {MODEL}")
        # The session's server has auth on: the run's link goes through the UI's login page.
        base = os.environ["PREFECT_API_URL"].removesuffix("/api")
        link = f"{base}/v2/login?redirectTo=/runs/flow-run/{run.id}"
        assert link in gate["text"], gate["text"]
        _approve_in_the_prefect_ui(chromium, link, base, run, tmp_path)

        def ended():
            state = client.read_flow_run(run.id).state
            return state if state.is_final() else None

        state = wait_until(
            ended,
            max(0.0, deadline - time.monotonic()),
            f"the end of run {run.name}",
            interval=2,
            describe=lambda: loop["log"].read_text()[-3000:],
        )
    assert state.is_completed(), f"{state.name}: {state.message}\n{loop['log'].read_text()[-3000:]}"
    # The second drift came inside the 60-minute cooldown: still the one run.
    assert [r.id for r in _training_runs(loop["deployment"])] == [run.id]
    _assert_approved_without_retraining(loop, run.id)


def _approve_in_the_prefect_ui(chromium: str, link: str, base: str, run, tmp_path: Path) -> None:
    """A browser that has never signed in opens the notification's link, signs in (a wrong credential first),
    lands on the run, opens the resume form from the run's menu, reads the evidence, approves, resumes."""
    from playwright.sync_api import expect, sync_playwright

    # The run's page opens on a tab of its own choosing (`?tab=Logs` in this version).
    run_page = re.compile(rf"{re.escape(base)}/v2/runs/flow-run/{run.id}(\?.*)?$")
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
            # Kept on the loopback server: the V2 UI's analytics calls are aborted.
            page.route(lambda url: not url.startswith(base), lambda route: route.abort())
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
            heading = form.get_by_role("heading", name=re.compile(rf"^Promotion gate: {MODEL} v2"))
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


def _assert_approved_without_retraining(loop: dict, run_id) -> None:
    """The resumed deployment run moved `champion` with the person's decision on the version, and replayed
    the sweep from its persisted result instead of running it again (one sweep, one MLflow parent run)."""
    client = MlflowClient(loop["env"]["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "2", "the retrained version is the champion"
    tags = champion.tags
    assert (tags["approval.promotion.outcome"], tags["approval.promotion.approver"]) == ("approved", APPROVER)
    assert (tags["approval.promotion.decided_by"], tags["approval.promotion.comment"]) == ("human", COMMENT)
    assert tags["prefect.flow_run_id"] == str(run_id)
    with get_client(sync_client=True) as prefect:
        task_runs = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    sweeps = [t.state.name for t in task_runs if t.name.startswith("hyperparameter-sweep")]
    assert sweeps.count("Completed") == 1 and set(sweeps) <= {"Completed", "Cached"}, sweeps
    experiment = client.get_experiment_by_name(MODEL)
    parents = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`prefect.flow_run_id` = '{run_id}'"
    )
    assert len(parents) == 1


def test_unusable_batches_exit_2_and_an_empty_log_has_nothing_to_check(loop: dict) -> None:
    root, before = loop["root"], [r.id for r in _training_runs(loop["deployment"])]
    frame = generate_leads(200, seed=34)
    # Each kind of unusable batch is unit-tested (test_monitor_check.py); here the one a user most often
    # sends, through the CLI as typed, and the header-only file the reader rejects.
    cases = {
        "wrong-type": (frame.assign(deal_size="lots"), "'deal_size' has non-numeric dtype"),
        "empty": (frame.iloc[:0], "no data rows"),
    }
    for name, (batch, message) in cases.items():
        path = root / f"{name}.csv"
        batch.to_csv(path, index=False)
        result = _monitor(loop, path)
        assert result.returncode == 2, (name, result.stdout[-2000:], result.stderr[-2000:])
        assert message in result.stderr and "Traceback" not in result.stderr, (name, result.stderr[-2000:])
        assert "emitted" not in result.stdout
    # No --data: the champion's prediction log, empty in this home (nothing served yet).
    empty_log = _monitor(loop)
    assert empty_log.returncode == 0 and "nothing to check" in empty_log.stdout, empty_log.stderr[-2000:]
    assert [r.id for r in _training_runs(loop["deployment"])] == before  # no event, no run
