"""Approval gates against a real Prefect server: policy decisions, the resume form's validation,
the approver allowlist, timeouts, and the refusal to wait on the ephemeral default."""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.gates import EVENT_DECIDED, GateNeedsServerError, require_server_for, run_gate
from models.governance.approval import GateDecision, GateRequest, GateSummary
from models.governance.config import ApprovalConfig, GatePolicy

from helpers.flow_runs import find_paused_run
from helpers.processes import wait_until

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent

EVIDENCE = "## Promotion gate: demo v1\n\n| metric | value |\n|---|---|\n| ROC AUC | 0.91 |"


@flow(name="gate-under-test")
def gate_flow(
    approval: ApprovalConfig,
    policy_approves: bool = True,
    cost: float = 1.0,
    human_reasons: list[str] | None = None,
) -> GateDecision:
    request = GateRequest(
        gate="promotion",
        evidence=EVIDENCE,
        policy=approval.promotion,
        policy_approves=policy_approves,
        policy_reason="checks passed" if policy_approves else "does not beat the champion",
        cost=cost,
        resource_id="mlops.model.demo.1",
        summary=GateSummary("demo", "1", cost, 1.0, 0.91),
        human_reasons=human_reasons or [],
    )
    return run_gate(request, approval)


class Background:
    """Runs the gate flow in a thread (Prefect context copied, as FACTS notes) and keeps its result."""

    def __init__(self, approval: ApprovalConfig, human_reasons: list[str] | None = None) -> None:
        self.result: object = None
        context = contextvars.copy_context()
        self.thread = threading.Thread(
            target=lambda: context.run(self._run, approval, human_reasons), daemon=True
        )
        self.thread.start()

    def _run(self, approval: ApprovalConfig, human_reasons: list[str] | None) -> None:
        self.result = gate_flow(approval, human_reasons=human_reasons, return_state=True)

    def join(self, timeout: float = 60) -> object:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the gate flow did not finish"
        return self.result


def _paused_run(after: float, timeout: float = 60) -> UUID:
    """The gate flow's run once it is paused (created after ``after``)."""
    run = find_paused_run(
        created_after=after, limit=20, timeout=timeout, interval=0.5, what="a paused gate run"
    )
    return run.id


def _wait_paused_again(run_id: UUID, key_suffix: str, timeout: float = 30) -> None:
    with get_client(sync_client=True) as client:

        def paused_again() -> bool:
            state = client.read_flow_run(run_id).state
            return state.is_paused() and str(state.state_details.pause_key).endswith(key_suffix)

        wait_until(paused_again, timeout, f"run {run_id} paused again")


def test_auto_policy_decides_without_waiting(prefect_server) -> None:
    approval = ApprovalConfig()  # both gates auto
    decision = gate_flow(approval, policy_approves=False)
    assert (decision.approved, decision.decided_by) == (False, "policy")
    assert "does not beat the champion" in decision.reason
    assert decision.tags()["approval.promotion.outcome"] == "rejected"


def test_threshold_policy_asks_a_person_only_above_the_cost(prefect_server) -> None:
    approval = ApprovalConfig(promotion=GatePolicy(mode="threshold", max_cost=5.0))
    assert gate_flow(approval, cost=1.0).decided_by == "policy"


def test_person_decides_after_invalid_input_and_a_refused_approver(prefect_server) -> None:
    approval = ApprovalConfig(promotion=GatePolicy(mode="human"), timeout_seconds=120, allowlist=["alice"])
    started = time.time() - 1
    background = Background(approval)
    run_id = _paused_run(started)

    # The server validates the form against its schema: an empty approver is refused, the run waits on.
    with pytest.raises(Exception, match="approver"):
        resume_flow_run(run_id, run_input={"approved": True, "approver": "", "comment": ""})
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).state.is_paused()

    # Someone outside the allowlist: refused and recorded; the gate waits for someone else.
    resume_flow_run(run_id, run_input={"approved": True, "approver": "mallory", "comment": "ship it"})
    _wait_paused_again(run_id, "-1")
    resume_flow_run(run_id, run_input={"approved": True, "approver": "alice", "comment": "metrics hold up"})

    state = background.join()
    decision = state.result()
    assert decision.approved and decision.decided_by == "human"
    assert decision.approver == "alice" and decision.comment == "metrics hold up"
    assert decision.refused == ["mallory"]
    assert decision.tags()["approval.promotion.refused_approvers"] == "mallory"

    # Events reach the server asynchronously (the client batches them over a websocket).
    payloads: list[dict] = []

    def decided_by_alice() -> bool:
        response = httpx.post(
            f"{prefect_server}/events/filter",
            json={"filter": {"event": {"name": [EVENT_DECIDED]}, "resource": {"id": ["mlops.model.demo.1"]}}},
            auth=tuple(os.environ["PREFECT_API_AUTH_STRING"].split(":", 1)),  # the server requires it
            timeout=10,
        )
        response.raise_for_status()
        payloads[:] = [e["payload"] for e in response.json()["events"]]
        return any(p.get("approver") == "alice" for p in payloads)

    wait_until(
        decided_by_alice, 30, "alice's decision event", interval=1, describe=lambda: f"events: {payloads}"
    )
    assert any(p.get("approver") == "alice" and p.get("approved") for p in payloads), payloads


def test_rejection_by_a_person(prefect_server) -> None:
    approval = ApprovalConfig(promotion=GatePolicy(mode="human"), timeout_seconds=120)
    started = time.time() - 1
    background = Background(approval)
    resume_flow_run(
        _paused_run(started), run_input={"approved": False, "approver": "bob", "comment": "too costly"}
    )
    decision = background.join().result()
    assert not decision.approved and decision.reason == "rejected by bob: too costly"


def test_timeout_rejects(prefect_server) -> None:
    approval = ApprovalConfig(promotion=GatePolicy(mode="human"), timeout_seconds=10)
    decision = gate_flow(approval)
    assert (decision.approved, decision.decided_by) == (False, "timeout")


def test_a_reason_only_a_person_can_judge_makes_an_auto_gate_wait(prefect_server) -> None:
    """Possible target leakage under promotion.leakage_needs_human: the auto gate pauses for a person instead
    of letting the policy promote alone, and the person's answer decides."""
    approval = ApprovalConfig(timeout_seconds=120)  # both gates auto
    started = time.time() - 1
    background = Background(approval, human_reasons=["possible target leakage in sales_tag"])
    resume_flow_run(
        _paused_run(started),
        run_input={"approved": False, "approver": "dana", "comment": "sales_tag is written after the call"},
    )
    decision = background.join().result()
    assert (
        not decision.approved and decision.reason == "rejected by dana: sales_tag is written after the call"
    )


def test_human_gate_on_the_ephemeral_default_fails_at_once() -> None:
    approval = ApprovalConfig(promotion=GatePolicy(mode="human"))
    with (
        temporary_settings(updates={PREFECT_API_URL: None}),
        pytest.raises(GateNeedsServerError, match="mlops up"),
    ):
        require_server_for(approval)
    require_server_for(ApprovalConfig())  # all-auto gates never need a server


def _mlops(*args: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLOPS_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [str(BIN / "mlops"), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_approver_cli_lists_shows_refuses_and_approves(prefect_server, tmp_path) -> None:
    approval = ApprovalConfig(promotion=GatePolicy(mode="human"), timeout_seconds=180, allowlist=["alice"])
    started = time.time() - 1
    background = Background(approval)
    run_id = str(_paused_run(started))

    listed = _mlops("approvals", "list", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if run_id in line)
    assert "promotion" in line and "demo" in line and "alice" in line

    shown = _mlops("approvals", "show", run_id, home=tmp_path)
    assert shown.returncode == 0 and "Promotion gate: demo v1" in shown.stdout and "0.91" in shown.stdout
    # The server's auth is on: the run's link goes through the UI's login page.
    ui = prefect_server.removesuffix("/api")
    assert f"in the Prefect UI: {ui}/v2/login?redirectTo=/runs/flow-run/{run_id}\n" in shown.stdout

    # Outside the allowlist: the run records the refusal and waits on; the command says so and fails.
    refused = _mlops("approvals", "approve", run_id, "--approver", "mallory", home=tmp_path)
    assert refused.returncode == 1, refused.stdout
    assert "'mallory' is not on the promotion gate's approver allowlist (alice)" in refused.stderr
    _wait_paused_again(UUID(run_id), "-1")

    approved = _mlops(
        "approvals", "approve", run_id, "-a", "alice", "--comment", "looks right", home=tmp_path
    )
    assert approved.returncode == 0, approved.stderr
    assert f"approved the promotion gate of flow run {run_id} as alice" in approved.stdout
    decision = background.join().result()
    assert decision.approved and decision.approver == "alice" and decision.refused == ["mallory"]

    # The run no longer waits: a second decision is a user error, not a silent success.
    again = _mlops("approvals", "reject", run_id, "-a", "alice", home=tmp_path)
    assert again.returncode == 2 and "is not waiting for approval" in again.stderr
    unknown = _mlops("approvals", "show", "not-a-run", home=tmp_path)
    assert unknown.returncode == 2 and "'not-a-run' is not a flow run id" in unknown.stderr
