"""A/B analysis of served variants: volumes, score distributions, outcomes, and a test that may be peeked at.

Pure (no Prefect, no I/O): `mlops ab report` reads the prediction log and the outcomes and calls `ab_report`.

The decision test is a mixture sequential probability ratio test (mSPRT; Johari, Pekelis and Walsh, "Always
Valid Inference", 2017) on the difference of conversion rates, challenger minus champion, with the usual
normal approximation and a normal mixing distribution N(0, tau^2). Its p-value and its confidence sequence
are valid at every look at once: the report can be read after every batch, as data arrives, without the
false-positive rate rising above ``alpha`` (a fixed-horizon z-test read the same way does rise; the A/A
simulation in tests/unit/test_ab.py shows both). ``tau`` is the effect size the test is most sensitive to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from models.evaluation.bootstrap import MetricInterval
from monitoring.performance import realised_performance


@dataclass(frozen=True)
class SequentialTest:
    """The always-valid test of (challenger - champion) conversion rate after the rows seen so far."""

    difference: float  # challenger rate - champion rate
    low: float  # always-valid confidence sequence at 1 - alpha
    high: float
    p_value: float  # always-valid
    alpha: float
    tau: float

    @property
    def significant(self) -> bool:
        return self.p_value <= self.alpha


def msprt(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, alpha: float, tau: float
) -> SequentialTest:
    """mSPRT of p_b - p_a = 0 with mixing N(0, tau^2); NaN fields until both arms have rows and variance."""
    if n_a == 0 or n_b == 0:
        return SequentialTest(math.nan, -math.inf, math.inf, 1.0, alpha, tau)
    p_a, p_b = successes_a / n_a, successes_b / n_b
    variance = p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b
    difference = p_b - p_a
    if variance <= 0:
        return SequentialTest(difference, -math.inf, math.inf, 1.0, alpha, tau)
    t2 = tau * tau
    log_lr = 0.5 * math.log(variance / (variance + t2)) + difference**2 * t2 / (
        2 * variance * (variance + t2)
    )
    p_value = min(1.0, math.exp(-log_lr))
    half = half_width(variance, alpha=alpha, tau=tau)
    return SequentialTest(difference, difference - half, difference + half, p_value, alpha, tau)


def half_width(variance: float, *, alpha: float, tau: float) -> float:
    """Half-width of the mSPRT confidence sequence at this variance of the difference estimate."""
    t2 = tau * tau
    return math.sqrt(
        2
        * variance
        * (variance + t2)
        / t2
        * (math.log(1 / alpha) + 0.5 * math.log((variance + t2) / variance))
    )


def rows_to_decide(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, alpha: float, tau: float
) -> int | None:
    """More rows (both arms, at the current split) until the confidence sequence excludes 0 if the observed
    difference held (or, with no difference, until it is narrower than ``tau``); None if it already does."""
    test = msprt(successes_a, n_a, successes_b, n_b, alpha=alpha, tau=tau)
    if test.significant or n_a == 0 or n_b == 0:
        return None
    p_a, p_b = successes_a / n_a, successes_b / n_b
    per_row = (
        p_a * (1 - p_a) * (n_a + n_b) / n_a + p_b * (1 - p_b) * (n_a + n_b) / n_b
    )  # variance x total rows
    if per_row <= 0:
        return None
    goal = abs(test.difference) if abs(test.difference) > 1e-12 else tau
    total = n_a + n_b
    low, high = total, total
    while half_width(per_row / high, alpha=alpha, tau=tau) > goal:
        high *= 2
        if high > 10**12:
            return None
    while high - low > max(1, low // 1000):
        middle = (low + high) // 2
        if half_width(per_row / middle, alpha=alpha, tau=tau) > goal:
            low = middle
        else:
            high = middle
    return int(high - total)


@dataclass(frozen=True)
class VariantSummary:
    variant: str
    versions: list[str]
    rows: int
    score_mean: float
    score_quantiles: dict[str, float]  # p10, p50, p90
    labelled: int = 0
    conversion: MetricInterval | None = None
    roc_auc: MetricInterval | None = None


@dataclass(frozen=True)
class ABReport:
    model: str
    variants: list[VariantSummary]
    test: SequentialTest | None  # None without outcomes for both live variants
    recommendation: str
    rows_needed: int | None = None
    rows_per_day: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoggedScore:
    """What the report needs of one prediction-log record."""

    variant: str
    version: str
    score: float
    entity_id: str | None
    timestamp: str


def _summary(
    variant: str,
    rows: list[LoggedScore],
    labels: dict[str, int] | None,
    *,
    threshold: float,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> VariantSummary:
    scores = np.array([r.score for r in rows], dtype=np.float64)
    quantiles = dict(zip(("p10", "p50", "p90"), np.quantile(scores, [0.1, 0.5, 0.9]).tolist(), strict=True))
    summary = VariantSummary(
        variant, sorted({r.version for r in rows}), len(rows), float(scores.mean()), quantiles
    )
    if labels is None:
        return summary
    joined = [
        (labels[r.entity_id], r.score) for r in rows if r.entity_id is not None and r.entity_id in labels
    ]
    if not joined:
        return summary
    y = np.array([j[0] for j in joined], dtype=np.int64)
    s = np.array([j[1] for j in joined], dtype=np.float64)
    realised = realised_performance(
        y, s, threshold=threshold, n_resamples=n_resamples, seed=seed, confidence=confidence
    )
    both = 0 < y.sum() < len(y)
    return VariantSummary(
        variant,
        summary.versions,
        summary.rows,
        summary.score_mean,
        quantiles,
        len(y),
        realised.positive_rate,
        realised.roc_auc if both else None,
    )


def _rows_per_day(rows: list[LoggedScore]) -> float | None:
    stamps = sorted(datetime.fromisoformat(r.timestamp) for r in rows)
    span = (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else 0.0
    return len(stamps) / (span / 86_400) if span > 0 else None


def ab_report(
    model: str,
    rows: list[LoggedScore],
    labels: dict[str, int] | None,
    *,
    alpha: float,
    tau: float,
    threshold: float,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> ABReport:
    """Per-variant volumes and score distributions; with ``labels`` (entity id -> 0/1 outcome) conversion
    and AUC per variant, the always-valid test of challenger vs champion conversion, and a recommendation."""
    by_variant: dict[str, list[LoggedScore]] = {}
    for row in rows:
        by_variant.setdefault(row.variant, []).append(row)
    summaries = [
        _summary(
            variant,
            by_variant[variant],
            labels,
            threshold=threshold,
            n_resamples=n_resamples,
            seed=seed,
            confidence=confidence,
        )
        for variant in sorted(by_variant, key=lambda v: (v != "champion", v))
    ]
    live = {s.variant: s for s in summaries}
    champion, challenger = live.get("champion"), live.get("challenger")
    rate = (
        _rows_per_day([r for r in rows if r.variant in ("champion", "challenger")] or rows) if rows else None
    )
    if champion is None or challenger is None:
        return ABReport(
            model,
            summaries,
            None,
            "no A/B traffic: both champion and challenger rows are needed (`mlops ab start`)",
            rows_per_day=rate,
        )
    if champion.conversion is None or challenger.conversion is None:
        return ABReport(
            model,
            summaries,
            None,
            "need outcomes: pass --labels (entity id and outcome) to decide",
            rows_per_day=rate,
        )
    counts = (
        round(champion.conversion.value * champion.labelled),
        champion.labelled,
        round(challenger.conversion.value * challenger.labelled),
        challenger.labelled,
    )
    test = msprt(*counts, alpha=alpha, tau=tau)
    if test.significant and test.difference > 0:
        recommendation = f"promote the challenger (v{', v'.join(challenger.versions)}): it converts better"
        needed = None
    elif test.significant:
        recommendation = (
            f"keep the champion (v{', v'.join(champion.versions)}): the challenger converts worse"
        )
        needed = None
    else:
        needed = rows_to_decide(*counts, alpha=alpha, tau=tau)
        days = (
            f", about {needed / rate:.1f} days at the current {rate:,.0f} rows/day" if needed and rate else ""
        )
        recommendation = (
            f"need more data: about {needed:,} more labelled rows{days}" if needed else "need more data"
        )
    return ABReport(model, summaries, test, recommendation, needed, rate)
