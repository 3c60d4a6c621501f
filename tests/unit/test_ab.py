"""A/B analysis (monitoring/ab.py): the always-valid test may be read after every batch without raising the
false-positive rate; volumes, outcomes and the recommendation."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitoring.ab import LoggedScore, ab_report, msprt, rows_to_decide

ALPHA, TAU = 0.05, 0.02


def _peeking(
    p_a: float, p_b: float, experiments: int, looks: int, batch: int, seed: int
) -> tuple[float, float]:
    """Share of experiments that ever reject, reading after every batch: (mSPRT, fixed-horizon z-test)."""
    rng = np.random.default_rng(seed)
    ours = naive = 0
    for _ in range(experiments):
        a = np.cumsum(rng.random((looks, batch)).__lt__(p_a).sum(axis=1))
        b = np.cumsum(rng.random((looks, batch)).__lt__(p_b).sum(axis=1))
        n = batch * np.arange(1, looks + 1)
        rejected_ours = rejected_naive = False
        for k in range(looks):
            test = msprt(int(a[k]), int(n[k]), int(b[k]), int(n[k]), alpha=ALPHA, tau=TAU)
            rejected_ours |= test.significant
            pa, pb = a[k] / n[k], b[k] / n[k]
            se = math.sqrt(pa * (1 - pa) / n[k] + pb * (1 - pb) / n[k])
            rejected_naive |= se > 0 and abs(pb - pa) / se > 1.959964
        ours += rejected_ours
        naive += rejected_naive
    return ours / experiments, naive / experiments


def test_an_aa_split_read_after_every_batch_stays_under_alpha() -> None:
    """400 A/A experiments, both arms converting at 10%, read after each of 40 batches of 100 rows per arm."""
    ours, naive = _peeking(0.10, 0.10, experiments=400, looks=40, batch=100, seed=1)
    assert ours <= ALPHA, ours  # always valid: peeking costs nothing
    assert naive > 2 * ALPHA, naive  # the fixed-horizon test read the same way is wrong far more often


def test_a_real_difference_is_found() -> None:
    ours, _ = _peeking(0.10, 0.14, experiments=100, looks=40, batch=100, seed=2)
    assert ours >= 0.8, ours


def test_the_confidence_sequence_covers_the_difference_and_shrinks() -> None:
    early = msprt(100, 1000, 120, 1000, alpha=ALPHA, tau=TAU)
    late = msprt(1000, 10_000, 1200, 10_000, alpha=ALPHA, tau=TAU)
    assert early.low < 0.02 < early.high and late.low < 0.02 < late.high
    assert late.high - late.low < early.high - early.low
    assert late.significant and not early.significant and late.p_value < early.p_value


def test_rows_to_decide_is_enough_if_the_rates_hold() -> None:
    needed = rows_to_decide(100, 1000, 120, 1000, alpha=ALPHA, tau=TAU)
    assert needed is not None and needed > 0
    n = round((1000 + needed / 2) * 1.01)  # 1%: the counts below are rounded to whole conversions
    assert msprt(round(0.10 * n), n, round(0.12 * n), n, alpha=ALPHA, tau=TAU).significant
    n = round((1000 + needed / 2) * 0.9)
    assert not msprt(round(0.10 * n), n, round(0.12 * n), n, alpha=ALPHA, tau=TAU).significant
    assert rows_to_decide(1000, 10_000, 1200, 10_000, alpha=ALPHA, tau=TAU) is None  # already decided


def _log(variant: str, version: str, n: int, rng: np.random.Generator, start: int) -> list[LoggedScore]:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        LoggedScore(
            variant,
            version,
            float(rng.beta(2, 5)),
            f"lead-{start + i}",
            (t0 + timedelta(minutes=start + i)).isoformat(),
        )
        for i in range(n)
    ]


@pytest.fixture
def logged() -> list[LoggedScore]:
    rng = np.random.default_rng(0)
    return (
        _log("champion", "4", 9000, rng, 0)
        + _log("challenger", "5", 1000, rng, 9000)
        + _log("shadow", "5", 50, rng, 0)
    )


def test_report_without_outcomes_gives_volumes_and_asks_for_labels(logged: list[LoggedScore]) -> None:
    report = ab_report(
        "m", logged, None, alpha=ALPHA, tau=TAU, threshold=0.4, n_resamples=100, seed=0, confidence=0.95
    )
    assert [(v.variant, v.rows, v.versions) for v in report.variants] == [
        ("champion", 9000, ["4"]),
        ("challenger", 1000, ["5"]),
        ("shadow", 50, ["5"]),
    ]
    assert report.test is None and report.recommendation.startswith("need outcomes")
    assert report.rows_per_day == pytest.approx(10_000 / ((9999 / 60) / 24), rel=1e-6)


@pytest.mark.parametrize(
    ("rate_b", "verdict"),
    [
        (0.5, "promote the challenger (v5)"),
        (0.02, "keep the champion (v4)"),
        (0.105, "need more data: about"),
    ],
)
def test_report_recommends(logged: list[LoggedScore], rate_b: float, verdict: str) -> None:
    rng = np.random.default_rng(3)
    labels = {r.entity_id: int(rng.random() < (0.1 if r.variant == "champion" else rate_b)) for r in logged}
    report = ab_report(
        "m", logged, labels, alpha=ALPHA, tau=TAU, threshold=0.4, n_resamples=100, seed=0, confidence=0.95
    )
    assert report.recommendation.startswith(verdict), report.recommendation
    champion = report.variants[0]
    rate = np.mean([labels[r.entity_id] for r in logged if r.variant == "champion"])
    assert champion.labelled == 9000 and champion.conversion.value == pytest.approx(rate, abs=1e-12)
    assert champion.conversion.low < rate < champion.conversion.high
