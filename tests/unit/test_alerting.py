"""The SLO rules: the shipped rules file is the rendering of the shipped configs, promtool accepts it and its
tests (a case that fires and one that does not for every alert), the service exports the reference quantiles
the score-shift alert compares with, and the Grafana dashboard's queries parse and read recorded series."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from flows.cli.alerting import SHIPPED_CONFIGS, SHIPPED_RULES, render_command, served_model_rules
from flows.config import load_config
from monitoring.alerting import ServedModelRules, SLOConfig, render_rules, rules_yaml
from monitoring.reference import (
    REFERENCE_QUANTILES,
    SCORE_BUCKETS,
    parse_score_quantiles,
    reference_score_quantiles,
)

from helpers.configs import REPO
from helpers.system import system_tool

PROMETHEUS = REPO / "infra" / "prometheus"
DASHBOARD = REPO / "infra" / "grafana" / "dashboards" / "mlops-serving.json"
RUNBOOK = REPO / "docs" / "operations" / "alerting.md"


def _shipped_targets() -> list[ServedModelRules]:
    return [served_model_rules(load_config(REPO / path, home=REPO / ".mlops")) for path in SHIPPED_CONFIGS]


def _alerts(rules: dict) -> list[dict]:
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def _promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    promtool = system_tool("promtool", "prometheus")
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_shipped_rules_are_the_rendering_of_the_shipped_configs() -> None:
    expected = rules_yaml(_shipped_targets(), render_command(list(SHIPPED_CONFIGS)))
    assert (REPO / SHIPPED_RULES).read_text() == expected, (
        f"{SHIPPED_RULES} is stale: run `{render_command(list(SHIPPED_CONFIGS))} --out {SHIPPED_RULES}`"
    )


def test_every_alert_is_labelled_annotated_and_documented() -> None:
    rules = render_rules(_shipped_targets())
    alerts = _alerts(rules)
    anchors = {
        re.sub(r"[^a-z0-9_-]", "", line.lstrip("#").strip().lower().replace(" ", "-"))
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("#")
    }
    assert {a["alert"] for a in alerts} >= {
        "MlopsServiceDown",
        "MlopsErrorRatioHigh",
        "MlopsLatencyHigh",
        "MlopsNoPredictions",
        "MlopsScoreShift",
        "MlopsOutOfRangeInputs",
        "MlopsModelRefused",
        "MlopsFeaturesStale",
    }
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert alert["labels"]["model"] in {"crm-leads", "crm-feature-store"}
        notes = alert["annotations"]
        assert {"summary", "description", "dashboard", "runbook"} <= set(notes)
        assert notes["runbook"].split("#")[1] in anchors, f"{RUNBOOK} has no section for {alert['alert']}"


def test_promtool_accepts_the_rules_and_passes_their_tests() -> None:
    checked = _promtool("check", "rules", str(SHIPPED_RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = sorted(str(p.relative_to(REPO)) for p in (PROMETHEUS / "tests").glob("*.yml"))
    tested = _promtool("test", "rules", *tests)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in _alerts(render_rules(_shipped_targets()))}
    assert names - fires == set(), "alerts no promtool case makes fire"
    assert names - quiet == set(), "alerts no promtool case keeps quiet"


def test_windows_come_from_the_config_and_a_view_limit_fires_in_seconds(tmp_path: Path) -> None:
    """A view with feature_store.max_age_minutes is held to it through mlops_feature_age_seconds; with a 30 s
    window and no `for:` the rules run (in promtool's simulated time) in seconds."""
    slo = SLOConfig(window_seconds=30, for_seconds=0)
    target = ServedModelRules("m", "m", slo, feature_views=True, max_age_seconds={"activity": 120.0})
    rules = render_rules([target])
    assert "[30s]" in json.dumps(rules) and "[5m]" not in json.dumps(rules)
    assert all("for" not in a for a in _alerts(rules))
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yml"],
                "evaluation_interval": "10s",
                "tests": [
                    {
                        "interval": "10s",
                        "input_series": [
                            {
                                "series": 'mlops_feature_age_seconds{model_name="m",view="activity"}',
                                "values": "60 90 200",
                            },
                            # over the ttl as the service judged it, but this view is held to its own limit
                            {
                                "series": 'mlops_feature_lookups_total{model_name="m",view="activity",state="stale"}',
                                "values": "0+5x3",
                            },
                        ],
                        "alert_rule_test": [
                            {"eval_time": "10s", "alertname": "MlopsFeaturesStale", "exp_alerts": []},
                            {
                                "eval_time": "20s",
                                "alertname": "MlopsFeaturesStale",
                                "exp_alerts": [
                                    {
                                        "exp_labels": {
                                            "severity": "warning",
                                            "model": "m",
                                            "model_name": "m",
                                            "view": "activity",
                                        },
                                        "exp_annotations": target_annotations(
                                            rules, "MlopsFeaturesStale", "200"
                                        ),
                                    }
                                ],
                            },
                        ],
                    }
                ],
            }
        )
    )
    tested = _promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def target_annotations(rules: dict, alert: str, value: str) -> dict[str, str]:
    """The annotations of ``alert`` as Prometheus expands them for ``view="activity"`` and ``value``."""
    notes = next(a for a in _alerts(rules) if a["alert"] == alert)["annotations"]
    return {
        k: v.replace("{{ $labels.view }}", "activity").replace("{{ $value }}", value)
        for k, v in notes.items()
    }


def test_reference_quantiles_are_what_histogram_quantile_reads_from_the_service_buckets() -> None:
    # Per 100 scores: 20 up to 0.1, 20 to 0.2, 20 to 0.3, 10, 10, 5, 5, 5, 3, 2 (the promtool case's spread).
    counts = [20, 20, 20, 10, 10, 5, 5, 5, 3, 2]
    scores = np.concatenate(
        [np.full(n, bound - 0.05) for n, bound in zip(counts, SCORE_BUCKETS, strict=True)]
    )
    quantiles = reference_score_quantiles(scores)
    assert list(quantiles) == [str(q) for q in REFERENCE_QUANTILES]
    assert quantiles == pytest.approx({"0.1": 0.05, "0.5": 0.25, "0.9": 0.7})
    # A score on a bound counts in that bucket (le), as prometheus_client's observe() puts it.
    assert reference_score_quantiles(np.array([0.1, 0.1]), (0.5,)) == pytest.approx({"0.5": 0.05})
    assert parse_score_quantiles(json.dumps(quantiles)) == quantiles
    assert parse_score_quantiles(None) is None and parse_score_quantiles("not json") is None


def test_the_service_exports_the_served_versions_reference_quantiles() -> None:
    import prometheus_client

    from serving.config import ServingConfig
    from serving.following import FollowedAlias
    from serving.metrics import service_metrics

    metrics = service_metrics()
    champion = FollowedAlias(
        "champion",
        "champion",
        model_name="unit-ref",
        entity_column=None,
        config=ServingConfig(),
        gauge=metrics.served,
        refuse=lambda refusal: None,
        quantiles=metrics.reference_quantile,
    )
    champion.serve(
        SimpleNamespace(name="unit-ref", version="7", reference_quantiles={"0.5": 0.31, "0.9": 0.8})
    )
    champion.serve(
        SimpleNamespace(name="unit-ref", version="8", reference_quantiles=None)
    )  # registered without
    sample = prometheus_client.REGISTRY.get_sample_value
    labels = {"model_name": "unit-ref", "variant": "champion", "model_version": "7"}
    assert sample("mlops_reference_score_quantile", {**labels, "quantile": "0.5"}) == 0.31
    assert sample("mlops_reference_score_quantile", {**labels, "quantile": "0.9"}) == 0.8
    assert sample("mlops_served_model", labels) == 0  # the rules keep only the served version's reference
    assert (
        sample("mlops_reference_score_quantile", {**labels, "model_version": "8", "quantile": "0.5"}) is None
    )


def test_dashboard_queries_parse_and_read_recorded_series(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    recorded = {
        rule["record"]
        for group in render_rules(_shipped_targets())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Request rate", "Errors", "Latency quantiles", "Score distribution", "Variant split"} <= titles
    assert "Served version over time" in titles
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for expr in exprs:
        names = set(re.findall(r"\b(mlops:[a-z_]+:[a-z_]+|[a-zA-Z_]+)\{", expr))
        assert names <= recorded | {"ALERTS"}, f"{expr} reads {names - recorded} (not recorded by the rules)"
    # promtool has no offline query check: each query becomes a recording rule that `check rules` parses.
    throwaway = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel_{i}:expr", "expr": expr.replace("$model", "crm-leads")}
                    for i, expr in enumerate(exprs)
                ],
            }
        ]
    }
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(throwaway))
    checked = _promtool("check", "rules", str(tmp_path / "dashboard.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_mlops_alerts_rules_writes_the_shipped_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As typed from the repository root: the file's header names the configs as given."""
    from helpers.cli import mlops_in_process

    monkeypatch.chdir(REPO)
    out = tmp_path / "rules.yml"
    args = [part for path in SHIPPED_CONFIGS for part in ("--config", str(path))]
    result = mlops_in_process({"MLOPS_HOME": str(tmp_path)}, "alerts", "rules", *args, "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_text() == (REPO / SHIPPED_RULES).read_text()
    twice = mlops_in_process(
        {"MLOPS_HOME": str(tmp_path)}, "alerts", "rules", "--config", str(SHIPPED_CONFIGS[0]), *args[:2]
    )
    assert twice.returncode == 2 and "same model" in twice.stderr
