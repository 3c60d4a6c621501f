"""The service's own Prometheus metrics, served by BentoML's ``/metrics`` beside its request metrics.

Per model and variant: rows scored (``mlops_predictions_total``), score and handler-latency histograms,
out-of-range counts per column, versions refused, and the served version (``mlops_served_model``: 1 for each
version a worker serves, 0 once it no longer does).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numpy as np


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
            buckets=[i / 10 for i in range(1, 11)],
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
