"""`mlops alerts routing`: the Prometheus and Alertmanager configurations it writes are accepted by promtool and
amtool, scrape the target files the stack writes and route every alert group to the webhook as one
Slack-compatible message. Their behaviour with the real servers: test_serving's alerting test."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from typer.testing import CliRunner

from flows.cli import app
from monitoring.alert_routing import AlertRoutingConfig, alertmanager_config, write_targets

from helpers.configs import REPO
from helpers.system import system_tool


def test_routing_files_pass_promtool_and_amtool(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    out = tmp_path / "alerting"
    args = ["alerts", "routing", "--config", str(REPO / "configs" / "crm_leads.yaml")]
    result = CliRunner().invoke(
        app,
        [
            *args,
            "--config",
            str(REPO / "configs" / "crm_feature_store.yaml"),
            "--out",
            str(out),
            "--webhook",
            "http://127.0.0.1:9/hook",
        ],
    )
    assert result.exit_code == 0, result.output
    promtool = system_tool("promtool", "prometheus")
    amtool = system_tool("amtool", "prometheus-alertmanager")
    checked = subprocess.run(
        [promtool, "check", "config", str(out / "prometheus.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout
    checked = subprocess.run(
        [amtool, "check-config", str(out / "alertmanager.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    prometheus = yaml.safe_load((out / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["file_sd_configs"][0]["files"] == [
        str((out / "targets").resolve() / "*.json")
    ]
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    assert prometheus["global"] == {"scrape_interval": "15s", "evaluation_interval": "15s"}

    # Without a webhook anywhere the alerts are only shown, and it says how to give one.
    monkeypatch.delenv("MLOPS_ALERT_WEBHOOK_URL", raising=False)
    quiet = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "none")])
    assert quiet.exit_code == 0, quiet.output
    assert (
        "--webhook" in quiet.output and "alert_webhook_url" in quiet.output and "only shown" in quiet.output
    )
    shown = tmp_path / "none" / "alertmanager.yml"
    assert yaml.safe_load(shown.read_text())["receivers"] == [{"name": "mlops-webhook"}]
    checked = subprocess.run([amtool, "check-config", str(shown)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_one_message_per_group_names_model_value_and_link() -> None:
    routing = AlertRoutingConfig(group_wait_seconds=10, docs_url="https://docs.example/")
    config = alertmanager_config("http://hook.example/x", routing)
    assert config["route"]["group_by"] == ["alertname", "model"]
    assert config["route"]["group_wait"] == "10s"
    [slack] = config["receivers"][0]["slack_configs"]
    assert slack["api_url"] == "http://hook.example/x" and slack["send_resolved"] is True
    assert "{{ .Annotations.summary }}" in slack["text"]  # the summary carries the value
    assert (
        "model {{ .Labels.model }}" in slack["text"] and "{{ with .Labels.model_version }}" in slack["text"]
    )
    assert "https://docs.example/{{ .Annotations.runbook }}" in slack["text"]
    assert slack["title_link"] == "{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | urlquery }}"
    linked = alertmanager_config(
        "http://hook.example/x", AlertRoutingConfig(grafana_url="http://grafana:3000/")
    )
    assert (
        linked["receivers"][0]["slack_configs"][0]["title_link"]
        == "http://grafana:3000{{ .CommonAnnotations.dashboard }}"
    )


def test_target_files_are_written_whole_and_removed_when_empty(tmp_path: Path) -> None:
    path = write_targets(tmp_path / "targets", "bento", "crm-leads", ["127.0.0.1:3000"], {"variant": "x"})
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:3000"], "labels": {"job": "crm-leads", "variant": "x"}}
    ]
    assert [p.name for p in (tmp_path / "targets").iterdir()] == ["bento.json"]  # no partial file left
    write_targets(tmp_path / "targets", "bento", "crm-leads", [])
    assert not path.exists()
