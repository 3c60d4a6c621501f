"""The drift monitor's Evidently workspace: one project per model, one run per check, the check's own
figures in each run, and nothing but Evidently's classes in what the UI loads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitoring.workspace import (
    DRIFT_SHARE,
    DRIFTED_COLUMNS,
    ESTIMATED_AUC,
    REALISED_AUC,
    check_summary,
    record_check,
)

from helpers.drift_checks import monitored_checks


@pytest.fixture(scope="module")
def checks() -> list:
    return monitored_checks()


def _types(node: object) -> set[str]:
    """Every registered class name in a snapshot's JSON: "type" fields with a namespace ("evidently:...";
    plotly's trace types such as "bar" have none)."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("type"), str) and ":" in node["type"]:
            found.add(node["type"])
        for value in node.values():
            found |= _types(value)
    elif isinstance(node, list):
        for value in node:
            found |= _types(value)
    return found


def test_summary_holds_the_checks_figures(checks: list) -> None:
    last = checks[-1]
    summary = check_summary(last)
    assert summary[DRIFT_SHARE] == last.drift.drifted_share
    assert summary[DRIFTED_COLUMNS] == len(last.drift.drifted_columns) == 3
    assert summary[ESTIMATED_AUC] == last.estimated.roc_auc.value
    assert summary[REALISED_AUC] == last.realised.roc_auc.value  # the last check has labels
    assert REALISED_AUC not in check_summary(checks[0])  # no labels, no realised figure


def test_one_project_per_model_one_run_per_check(checks: list, tmp_path: Path) -> None:
    from evidently.ui.workspace import Workspace

    start = datetime(2026, 1, 5, tzinfo=UTC)
    recorded = [
        record_check(
            tmp_path / "ws",
            result,
            timestamp=start + timedelta(hours=i),
            source="batch.parquet",
            reports=[f"/reports/{i}/drift.html"],
            max_runs=10,
        )
        for i, result in enumerate(checks)
    ]
    assert len({r.project_id for r in recorded}) == 1
    workspace = Workspace(str(tmp_path / "ws"))
    (project,) = workspace.list_projects()
    assert project.name == "crm-leads-dash"
    assert len(workspace.list_runs(project.id)) == len(checks)

    # The last run's metric values are the last check's figures (read back as Evidently stored them).
    snapshot = json.loads(
        (
            tmp_path / "ws" / recorded[-1].project_id / "snapshots" / f"{recorded[-1].snapshot_id}.json"
        ).read_text()
    )
    values = {
        m["metric_value_location"]["metric"]["params"]["column"]: m["value"] for m in _metric_values(snapshot)
    }
    expected = check_summary(checks[-1])
    assert set(values) == set(expected)
    for column, value in expected.items():
        assert values[column] == pytest.approx(value, rel=1e-12)  # stored as JSON doubles
    # What `evidently ui` must deserialise is Evidently's own: it never imports this project.
    assert _types(snapshot) and all(t.startswith("evidently:") for t in _types(snapshot)), _types(snapshot)

    dashboard = workspace.get_dashboard(project.id)
    plotted = {v.metric_labels["column"] for panel in dashboard.panels for v in panel.values}
    assert plotted <= set(expected) | {REALISED_AUC}
    assert {DRIFT_SHARE, DRIFTED_COLUMNS, ESTIMATED_AUC, REALISED_AUC} <= plotted
    assert "drifted: plan" in snapshot["tags"] and snapshot["metadata"]["verdict"] == "drift"


def test_oldest_runs_beyond_the_limit_are_deleted(checks: list, tmp_path: Path) -> None:
    from evidently.ui.workspace import Workspace

    start = datetime(2026, 1, 5, tzinfo=UTC)
    recorded = [
        record_check(
            tmp_path, checks[0], timestamp=start + timedelta(hours=i), source="log", reports=[], max_runs=2
        )
        for i in range(4)
    ]
    kept = {str(run) for run in Workspace(str(tmp_path)).list_runs(recorded[0].project_id)}
    assert kept == {recorded[2].snapshot_id, recorded[3].snapshot_id}


def _metric_values(snapshot: dict) -> list[dict]:
    """Each metric's stored result in a snapshot (its value and which metric and column it came from)."""
    return list(snapshot["metric_results"].values())
