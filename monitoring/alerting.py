"""Service-level objectives of a served model and the Prometheus rules that watch them.

`render_rules` is pure: from each served model's name, its BentoML service, its SLOs and its feature views'
limits it builds one rules file (recording rules, then alert rules), as a dict ready for YAML. The shipped
``infra/prometheus/rules.yml`` is its rendering of the shipped configs (`mlops alerts rules`); a unit test
holds the two together, and ``infra/prometheus/tests/`` holds a promtool case that fires and one that does not
for every alert.

What the service's metrics carry decides the labels of the recorded series: rows scored
(``mlops_predictions_total``) per model, variant and version; the score and latency histograms per model and
variant only (the served version of a variant is ``mlops_served_model``); BentoML's own request counter
(``bentoml_service_request_total``) per service name, endpoint and status code, not per model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from monitoring.reference import REFERENCE_QUANTILES

LATENCY_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
PROBE_ENDPOINTS = "/(livez|readyz|healthz|metrics)"  # not traffic: probes and scrapes
DASHBOARD_UID = "mlops-serving"  # infra/grafana/dashboards/mlops-serving.json
RUNBOOK = "operations/alerting.html"  # the operators' page in the documentation site, one section per alert
# Prometheus's alert templates: the alert's value and labels, expanded when it fires.
PERCENT = "{{ $value | humanizePercentage }}"
VARIANT = "{{ $labels.variant }}"


class SLOConfig(BaseModel):
    """What the served model promises, and how long a breach must last before someone is told."""

    model_config = ConfigDict(extra="forbid")

    latency_p99_seconds: float = Field(
        default=0.1,
        gt=0.0,
        description="Highest p99 of the predict handler's latency (`mlops_predict_latency_seconds`). Measured on "
        "2 cores: 0.93 ms single-request p50 end to end; 32 connections at 1,292 requests/s put the mean "
        "end-to-end latency at 25 ms (32 / 1,292), so a p99 of tens of ms under full load; 0.1 s is above that "
        "and a bucket bound of the histogram, where its estimate is exact.",
    )
    error_ratio: float = Field(
        default=0.01,
        gt=0.0,
        lt=1.0,
        description="Highest share of requests answered 5xx (BentoML's `bentoml_service_request_total`, probes "
        "and /metrics left out). The serving benchmark answered none of about 77,000 requests a minute with "
        "5xx; 1% leaves room for the odd 503 of a burst the service sheds.",
    )
    silence_seconds: int = Field(
        default=3600,
        ge=1,
        description="No prediction for this long counts as no traffic. Not measured: an hour without a lead "
        "scored is unusual for a service called on every lead in working hours; set it above the longest normal "
        "gap of your callers (nights, weekends).",
    )
    score_shift: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="Largest difference, over the 10th, 50th and 90th percentiles, between the scores served "
        "(`histogram_quantile` over the window) and the served version's held-out scores saved at registration "
        "(`mlops_reference_score_quantile`). 0.1 is one bucket of the score histogram and the same figure as "
        "Evidently's default drift threshold (normed Wasserstein distance 0.1).",
    )
    score_shift_min_predictions: int = Field(
        default=500,
        ge=1,
        description="Rows a variant must have scored within the window before its score shift is judged: the "
        "rank of a quantile estimated from n rows varies by about sqrt(q(1-q)/n): from 500 rows, 2.2 "
        "percentiles at the median and 1.3 at the 10th and 90th.",
    )
    out_of_range_ratio: float = Field(
        default=0.01,
        gt=0.0,
        description="Highest rate of numeric values far outside the training range (`serving.out_of_range_margin`) "
        "per row scored. Rows like the training data give none; 1% is one row in a hundred with a broken input.",
    )
    window_seconds: int = Field(
        default=300,
        ge=1,
        description="Window of the recorded rates, ratios and quantiles, and of the refused-version alert. 300 s "
        "is 20 scrapes at Prometheus's usual 15 s interval: rates need at least 4.",
    )
    for_seconds: int = Field(
        default=300,
        ge=0,
        description="How long a breach must last before its alert fires (Prometheus's `for:`); a refused "
        "version fires at once.",
    )
    scrape_job: str | None = Field(
        default=None,
        description="Prometheus job that scrapes the service (the target-down alert watches its `up`); null: "
        "the service's name (`serving.bento_name`, else the registered model's name).",
    )


@dataclass(frozen=True)
class ServedModelRules:
    """What the rules of one served model need from its pipeline config."""

    model_name: str  # the registered model (label model_name of the service's metrics)
    service_name: str  # the BentoML service (label service_name of BentoML's request metrics)
    slo: SLOConfig
    feature_views: bool = False  # scored by entity id through a feature service: watch its views
    # Per view, the oldest features it may serve (feature_store.max_age_minutes); a view not listed is held to
    # its ttl, which the service judges itself (lookups counted as stale).
    max_age_seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def job(self) -> str:
        return self.slo.scrape_job or self.service_name


def duration(seconds: int) -> str:
    """Prometheus's spelling of a duration: 3600 -> 1h, 300 -> 5m, 90 -> 90s."""
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _appeared_or_increased(selector: str, by: str, window: str) -> str:
    """Series of counter ``selector`` that grew within ``window`` or first appeared within it: ``increase``
    alone misses a counter created at its first value (a first refusal is born at 1)."""
    return (
        f"sum by ({by}) (increase({selector}[{window}])) > 0"
        f" or sum by ({by}) ({selector} unless {selector} offset {window})"
    )


def recording_rules(target: ServedModelRules) -> list[dict[str, Any]]:
    """The recorded series of one model (names ``mlops:<what>:<how>``), each with its ``model_name``."""
    m = f'model_name="{target.model_name}"'
    w = duration(target.slo.window_seconds)
    requests = (
        f'bentoml_service_request_total{{service_name="{target.service_name}",endpoint!~"{PROBE_ENDPOINTS}"}}'
    )
    errors = requests.replace("}", ',http_response_code=~"5.."}')
    rules: list[dict[str, Any]] = [
        {
            "record": "mlops:predictions:rate",
            "expr": f"sum by (model_name, variant, model_version) (rate(mlops_predictions_total{{{m}}}[{w}]))",
        },
        {
            "record": "mlops:requests:rate",
            "expr": f"sum by (service_name) (rate({requests}[{w}]))",
        },
        {
            "record": "mlops:request_errors:ratio",
            "expr": f"(sum by (service_name) (rate({errors}[{w}]))"
            f" or 0 * sum by (service_name) (rate({requests}[{w}])))"
            f" / sum by (service_name) (rate({requests}[{w}]))",
        },
    ]
    for metric, quantiles in (
        ("mlops_predict_latency_seconds", LATENCY_QUANTILES),
        ("mlops_prediction_score", REFERENCE_QUANTILES),
    ):
        rules += [
            {
                "record": f"{metric.replace('mlops_', 'mlops:', 1)}:quantile",
                "expr": f"histogram_quantile({q}, sum by (model_name, variant, le) "
                f"(rate({metric}_bucket{{{m}}}[{w}])))",
                "labels": {"quantile": str(q)},
            }
            for q in quantiles
        ]
    rules += [
        {
            "record": "mlops:served_model:current",
            "expr": f"max by (model_name, variant, model_version) (mlops_served_model{{{m}}}) == 1",
        },
        {
            "record": "mlops:reference_score_quantile:served",
            "expr": f"max by (model_name, variant, model_version, quantile) (mlops_reference_score_quantile{{{m}}})"
            f" * on (model_name, variant, model_version) group_left () mlops:served_model:current{{{m}}}",
        },
        {
            # Per variant, not per version: the score histogram has no version label. While two versions serve
            # one variant (a swap reaching the workers one by one) the higher reference counts.
            "record": "mlops:score_shift:max",
            "expr": f"max by (model_name, variant) (abs(mlops:prediction_score:quantile{{{m}}}"
            f" - on (model_name, variant, quantile) max by (model_name, variant, quantile)"
            f" (mlops:reference_score_quantile:served{{{m}}})))",
        },
        {
            "record": "mlops:out_of_range:ratio",
            "expr": f"(sum by (model_name, variant) (rate(mlops_out_of_range_values_total{{{m}}}[{w}]))"
            f" or 0 * sum by (model_name, variant) (rate(mlops_predictions_total{{{m}}}[{w}])))"
            f" / sum by (model_name, variant) (rate(mlops_predictions_total{{{m}}}[{w}]))",
        },
    ]
    if target.feature_views:
        rules.append(
            {
                "record": "mlops:feature_lookups:rate",
                "expr": f"sum by (model_name, view, state) (rate(mlops_feature_lookups_total{{{m}}}[{w}]))",
            }
        )
    # The series carry model_name already; as a rule label too it tells each model's rules apart (promtool
    # rejects two rules recording the same name with the same labels).
    return [{**rule, "labels": {"model_name": target.model_name, **rule.get("labels", {})}} for rule in rules]


def _alert(
    target: ServedModelRules,
    name: str,
    expr: str,
    *,
    hold: int,
    severity: str,
    summary: str,
    description: str,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if hold:
        rule["for"] = duration(hold)
    rule["labels"] = {"severity": severity, "model": target.model_name}
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        # Paths for Alertmanager's templates to put behind the Grafana and documentation URLs of the site.
        "dashboard": f"/d/{DASHBOARD_UID}/{DASHBOARD_UID}?var-model={target.model_name}",
        "runbook": f"{RUNBOOK}#{name.lower()}",
    }
    return rule


def alert_rules(target: ServedModelRules) -> list[dict[str, Any]]:
    """The alerts of one model, each labelled ``severity`` and ``model``, annotated with a summary, a
    description with the value, and the dashboard and runbook paths."""
    slo, model = target.slo, target.model_name
    m = f'model_name="{model}"'
    w, hold = duration(slo.window_seconds), slo.for_seconds
    rules = [
        _alert(
            target,
            "MlopsServiceDown",
            f'up{{job="{target.job}"}} == 0',
            hold=hold,
            severity="critical",
            summary=f"{model}: the service {{{{ $labels.instance }}}} does not answer Prometheus's scrape",
            description=f"Job {target.job}, target {{{{ $labels.instance }}}} has been down for {duration(hold)}: "
            "no prediction is served from it and none of its other alerts can fire.",
        ),
        _alert(
            target,
            "MlopsErrorRatioHigh",
            f"mlops:request_errors:ratio{{{m}}} > {slo.error_ratio}",
            hold=hold,
            severity="critical",
            summary=f"{model}: {{{{ $value | humanizePercentage }}}} of requests answered 5xx",
            description=f"Over {w}, {{{{ $value | humanizePercentage }}}} of the requests to service "
            f"{target.service_name} were answered 5xx (SLO: at most {slo.error_ratio:.2%}).",
        ),
        _alert(
            target,
            "MlopsLatencyHigh",
            f'mlops:predict_latency_seconds:quantile{{{m},quantile="0.99"}} > {slo.latency_p99_seconds}',
            hold=hold,
            severity="warning",
            summary=f"{model} {{{{ $labels.variant }}}}: p99 latency {{{{ $value | humanizeDuration }}}}",
            description=f"The predict handler's p99 over {w} is {{{{ $value | humanizeDuration }}}} for the "
            f"{{{{ $labels.variant }}}} (SLO: at most {slo.latency_p99_seconds} s).",
        ),
        _alert(
            target,
            "MlopsNoPredictions",
            f"(sum(increase(mlops_predictions_total{{{m}}}[{duration(slo.silence_seconds)}])) or vector(0)) == 0",
            hold=hold,
            severity="warning",
            summary=f"{model}: no prediction for {duration(slo.silence_seconds)}",
            description=f"No row was scored by {model} in the last {duration(slo.silence_seconds)} "
            "(serving.slo.silence_seconds): the callers stopped calling, or cannot reach the service.",
        ),
        _alert(
            target,
            "MlopsScoreShift",
            f"mlops:score_shift:max{{{m}}} > {slo.score_shift} and on (model_name, variant)"
            f" sum by (model_name, variant) (increase(mlops_predictions_total{{{m}}}[{w}]))"
            f" >= {slo.score_shift_min_predictions}",
            hold=hold,
            severity="warning",
            summary=f'{model} {{{{ $labels.variant }}}}: served scores moved {{{{ $value | printf "%.3f" }}}} '
            "from the version's reference",
            description=f"Over {w}, a percentile (10th, 50th or 90th) of the scores served by the "
            f"{{{{ $labels.variant }}}} differs from the same percentile of the version's held-out scores by "
            f'{{{{ $value | printf "%.3f" }}}} (threshold {slo.score_shift}).',
        ),
        _alert(
            target,
            "MlopsOutOfRangeInputs",
            f"mlops:out_of_range:ratio{{{m}}} > {slo.out_of_range_ratio}",
            hold=hold,
            severity="warning",
            summary=f"{model} {VARIANT}: out-of-range values at {PERCENT} of the rows scored",
            description=f"Over {w}, values far outside the training range came to {PERCENT} of the rows the "
            f"{VARIANT} scored (threshold {slo.out_of_range_ratio:.2%}); "
            "mlops_out_of_range_values_total names the columns.",
        ),
        _alert(
            target,
            "MlopsModelRefused",
            _appeared_or_increased(f"mlops_model_refused_total{{{m}}}", "model_name, model_version", w),
            hold=0,
            severity="warning",
            summary=f"{model}: version {{{{ $labels.model_version }}}} refused",
            description=f"The service refused {model} v{{{{ $labels.model_version }}}} in the last {w} (integrity "
            "check or load failed) and keeps serving the last good version; /metadata and the log say why.",
        ),
    ]
    if target.feature_views:
        limited = sorted(target.max_age_seconds)
        by_limit = [
            f'max by (model_name, view) (mlops_feature_age_seconds{{{m},view="{view}"}}) > {limit:g}'
            for view, limit in sorted(target.max_age_seconds.items())
        ]
        others = f'{m},state="stale"' + (f',view!~"{"|".join(limited)}"' if limited else "")
        stale = _appeared_or_increased(f"mlops_feature_lookups_total{{{others}}}", "model_name, view", w)
        rules.append(
            _alert(
                target,
                "MlopsFeaturesStale",
                " or ".join([*by_limit, stale]),
                hold=0,
                severity="warning",
                summary=f"{model}: stale features in view {{{{ $labels.view }}}}",
                description="Rows scored by id read features of view {{ $labels.view }} older than its limit: "
                "{{ $value }} (the oldest age in seconds where feature_store.max_age_minutes sets the limit, else "
                f"the rows read older than the view's ttl in the last {w}). Is its materialisation running?",
            )
        )
    return rules


def render_rules(targets: Sequence[ServedModelRules]) -> dict[str, Any]:
    """A Prometheus rules file: per model, a group of recording rules and a group of alerts."""
    groups: list[dict[str, Any]] = []
    for target in targets:
        groups.append({"name": f"mlops-{target.model_name}-recording", "rules": recording_rules(target)})
        groups.append({"name": f"mlops-{target.model_name}-alerts", "rules": alert_rules(target)})
    return {"groups": groups}


def rules_yaml(targets: Sequence[ServedModelRules], source: str) -> str:
    """`render_rules` as the text of a rules file, headed by where it comes from (``source``: the command)."""
    import yaml

    header = f"# Generated by `{source}`: edit the configs' serving.slo and render again, not this file.\n"
    return header + yaml.safe_dump(render_rules(targets), sort_keys=False, width=120, allow_unicode=True)
