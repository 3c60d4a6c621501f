"""Where the served models' alerts go: the Prometheus configuration that scrapes the services and evaluates the
rules (`monitoring.alerting`), its file-based target list, and the Alertmanager configuration that groups the
alerts and posts one Slack-compatible message per group to the webhook the Prefect automations use
(``monitoring.alert_webhook_url``).

Every function here returns plain data (the YAML or JSON of the files); writing them and starting the servers
is the stack's (`infra.stack`) or the operator's. A scrape target is found by Prometheus within its
file-watch interval once `write_targets` has written it: no reload, so a Bento served later is scraped too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from monitoring.alerting import duration

RECEIVER = "mlops-webhook"
TARGETS_GLOB = "*.json"


class AlertRoutingConfig(BaseModel):
    """How often Prometheus scrapes and evaluates, and how Alertmanager groups and repeats notifications."""

    model_config = ConfigDict(extra="forbid")

    scrape_interval_seconds: int = Field(default=15, ge=1, description="Prometheus's scrape interval.")
    evaluation_interval_seconds: int = Field(
        default=15, ge=1, description="How often Prometheus evaluates the recording and alert rules."
    )
    group_wait_seconds: int = Field(
        default=30,
        ge=0,
        description="Alertmanager waits this long after a group's first alert, so alerts that fire together "
        "arrive in one message.",
    )
    group_interval_seconds: int = Field(
        default=300, ge=1, description="Least time between two messages of one group as it changes."
    )
    repeat_interval_seconds: int = Field(
        default=14_400, ge=1, description="A group still firing is sent again after this long (4 h)."
    )
    grafana_url: str | None = Field(
        default=None,
        description="Grafana's base URL: each message links the model's dashboard there. Null: the message "
        "links Alertmanager's own page of the alert.",
    )
    docs_url: str | None = Field(
        default=None,
        description="The documentation site's base URL: each alert links its runbook section there. Null: the "
        "runbook path is printed as it is.",
    )


def prometheus_config(
    *,
    rule_files: Sequence[Path],
    targets_dir: Path,
    alertmanager: str | None,
    routing: AlertRoutingConfig,
) -> dict[str, Any]:
    """prometheus.yml: the rules, the Alertmanager at ``alertmanager`` (host:port; None: none), and one scrape
    job whose targets are the JSON files in ``targets_dir`` (each target labelled with its own ``job``, which
    the rules select on)."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": duration(routing.scrape_interval_seconds),
            "evaluation_interval": duration(routing.evaluation_interval_seconds),
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": "mlops",  # each target's own `job` label (from its file) takes precedence
                "file_sd_configs": [
                    {
                        "files": [str(targets_dir / TARGETS_GLOB)],
                        "refresh_interval": duration(routing.scrape_interval_seconds),
                    }
                ],
            }
        ],
    }
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def scrape_targets(job: str, addresses: Sequence[str], labels: Mapping[str, str] | None = None) -> list[dict]:
    """A file_sd target list: ``addresses`` (host:port) scraped as job ``job``."""
    return [{"targets": list(addresses), "labels": {"job": job, **(labels or {})}}]


def write_targets(
    targets_dir: Path, name: str, job: str, addresses: Sequence[str], labels: Mapping[str, str] | None = None
) -> Path:
    """Write (atomically: Prometheus may read it at any moment) the target file ``<name>.json``; an empty
    ``addresses`` removes it. Returns its path."""
    targets_dir.mkdir(parents=True, exist_ok=True)
    path = targets_dir / f"{name}.json"
    if not addresses:
        path.unlink(missing_ok=True)
        return path
    partial = path.with_suffix(".json.partial")  # not matched by the glob
    partial.write_text(json.dumps(scrape_targets(job, addresses, labels), indent=2))
    os.replace(partial, path)
    return path


def _link(routing: AlertRoutingConfig) -> str:
    """The message's title link: the model's Grafana dashboard, or Alertmanager's page of the group."""
    if routing.grafana_url:
        return routing.grafana_url.rstrip("/") + "{{ .CommonAnnotations.dashboard }}"
    return "{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | urlquery }}"


def _runbook(routing: AlertRoutingConfig) -> str:
    prefix = routing.docs_url.rstrip("/") + "/" if routing.docs_url else ""
    return prefix + "{{ .Annotations.runbook }}"


def alertmanager_config(webhook_url: str | None, routing: AlertRoutingConfig) -> dict[str, Any]:
    """alertmanager.yml: alerts grouped by alert and model, one Slack-compatible message per group to
    ``webhook_url`` (title: state, alert, model and how many; text: per alert its severity, summary with the
    value, description, the version when the alert has one, and its runbook), resolved groups too. Without a
    webhook the alerts are grouped the same and only shown (Alertmanager's UI and API): nothing is sent."""
    text = (
        "{{ range .Alerts }}[{{ .Labels.severity }}] {{ .Annotations.summary }}\n"
        "{{ .Annotations.description }}\n"
        "model {{ .Labels.model }}{{ with .Labels.model_version }}, version {{ . }}{{ end }}"
        "{{ with .Labels.variant }}, variant {{ . }}{{ end }}; runbook: " + _runbook(routing) + "\n{{ end }}"
    )
    receiver: dict[str, Any] = {"name": RECEIVER}
    if webhook_url:
        receiver["slack_configs"] = [
            {
                "api_url": webhook_url,
                "send_resolved": True,
                "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}: "
                "{{ .CommonLabels.model }} ({{ len .Alerts }} alert{{ if gt (len .Alerts) 1 }}s{{ end }})",
                "title_link": _link(routing),
                "text": text,
                "fallback": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}: {{ .CommonLabels.model }}",
            }
        ]
    return {
        "route": {
            "receiver": RECEIVER,
            "group_by": ["alertname", "model"],
            "group_wait": duration(routing.group_wait_seconds),
            "group_interval": duration(routing.group_interval_seconds),
            "repeat_interval": duration(routing.repeat_interval_seconds),
        },
        "receivers": [receiver],
    }
