"""The service's own Prometheus metrics, served by BentoML's ``/metrics`` beside its request metrics.

Per model and variant: rows scored (``mlops_predictions_total``), score and handler-latency histograms,
out-of-range counts per column, versions refused, and the served version (``mlops_served_model``: 1 for each
version a worker serves, 0 once it no longer does) with the quantiles of its held-out scores saved at
registration (``mlops_reference_score_quantile``, see `monitoring.reference.reference_score_quantiles`).
Scoring by entity id adds, per feature view, the age of the features the last request read
(``mlops_feature_age_seconds``, the oldest row's) and the rows read fresh, stale (older than the view's ttl) or
missing (``mlops_feature_lookups_total``). Load shedding (`serving.middleware.OverloadMiddleware`) counts the
requests it answers 503 (``mlops_requests_shed_total``) and each worker's most requests held at once
(``mlops_requests_in_flight_peak``). infra/prometheus/rules.yml records and alerts on them.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numpy as np

from monitoring.freshness import MISSING_FLAG, STALE_FLAG
from monitoring.reference import SCORE_BUCKETS
from serving.features import Completed


@functools.cache
def service_metrics() -> SimpleNamespace:
    """The service's Prometheus metrics, created once per worker process on first use.

    prometheus_client is imported here, not at module import: BentoML sets ``PROMETHEUS_MULTIPROC_DIR`` in
    the worker after importing the service, and a client imported before that never reaches ``/metrics``.
    """
    import prometheus_client as prom

    labels = ["model_name", "variant"]
    return SimpleNamespace(
        rows=prom.Counter("mlops_predictions", "Rows scored.", [*labels, "model_version"]),
        scores=prom.Histogram(
            "mlops_prediction_score",
            "Calibrated scores served.",
            labels,
            buckets=list(SCORE_BUCKETS),
        ),
        latency=prom.Histogram(
            "mlops_predict_latency_seconds",
            "Time in the predict handler (validation, encoding, scoring, log).",
            labels,
            buckets=[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0],
        ),
        out_of_range=prom.Counter(
            "mlops_out_of_range_values",
            "Numeric values far outside the training range (scored, flagged).",
            [*labels, "column"],
        ),
        refused=prom.Counter(
            "mlops_model_refused",
            "Registry versions refused (integrity check or load failed).",
            ["model_name", "model_version"],
        ),
        served=prom.Gauge(
            "mlops_served_model",
            "1 for the model version a worker serves.",
            [*labels, "model_version"],
            multiprocess_mode="liveall",
        ),
        reference_quantile=prom.Gauge(
            "mlops_reference_score_quantile",
            "Quantiles of the served version's held-out scores saved at registration, read through the score "
            "histogram's buckets: what the score-shift alert compares the served scores with.",
            [*labels, "model_version", "quantile"],
            multiprocess_mode="livemax",
        ),
        feature_age=prom.Gauge(
            "mlops_feature_age_seconds",
            "Age of the online features the last request scored by id read (its oldest row), per view.",
            ["model_name", "view"],
            multiprocess_mode="max",
        ),
        shed=prom.Counter(
            "mlops_requests_shed",
            "Requests answered 503 at once because the worker held serving.max_in_flight requests.",
            ["endpoint"],
        ),
        in_flight_peak=prom.Gauge(
            "mlops_requests_in_flight_peak",
            "Most requests one worker has held at once since it started (its limit: serving.max_in_flight).",
            multiprocess_mode="max",
        ),
        feature_lookups=prom.Counter(
            "mlops_feature_lookups",
            "Rows scored by id, per feature view and state: fresh, stale (older than the ttl) or missing.",
            ["model_name", "view", "state"],
        ),
    )


def observe_all(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every v of ``values``, with one increment per bucket touched instead of
    two per value (64 rows: 128 locked writes to the multiprocess files become a handful).

    Uses prometheus_client's own bucket bounds and values (``_upper_bounds``, ``_buckets``, ``_sum``, the
    fields its ``observe`` updates); a histogram without them is observed value by value. A unit test checks
    that both give the same exposition, so a prometheus_client that changes them fails there, not here.
    """
    bounds, buckets, total = (
        getattr(histogram, name, None) for name in ("_upper_bounds", "_buckets", "_sum")
    )
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values.tolist():
            histogram.observe(value)
        return
    # observe() puts v in the first bucket with v <= bound: searchsorted's "left" side.
    counts = np.bincount(np.searchsorted(np.asarray(bounds), values, side="left"), minlength=len(bounds))
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))
    total.inc(float(values.sum()))


def observe_lookups(metrics: SimpleNamespace, model_name: str, completed: Completed) -> None:
    """Per view, the oldest age the request read (``mlops_feature_age_seconds``) and its rows by state."""
    oldest: dict[str, float] = {}
    counts: dict[tuple[str, str], int] = {}
    for flags, ages in zip(completed.flags, completed.ages, strict=True):
        for view, age in ages.items():
            oldest[view] = max(age, oldest.get(view, age))
            state = "stale" if STALE_FLAG + view in flags else "fresh"
            counts[view, state] = counts.get((view, state), 0) + 1
        for flag in flags:
            if flag.startswith(MISSING_FLAG):
                view = flag.removeprefix(MISSING_FLAG)
                counts[view, "missing"] = counts.get((view, "missing"), 0) + 1
    for view, age in oldest.items():
        metrics.feature_age.labels(model_name, view).set(age)
    for (view, state), count in counts.items():
        metrics.feature_lookups.labels(model_name, view, state).inc(count)
