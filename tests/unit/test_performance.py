"""Unit tests for monitoring.performance: realised metrics with labels, the label-free CBPE estimate without."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from sklearn import metrics

from models.evaluation.config import EvaluationConfig
from monitoring import performance
from monitoring.performance import estimate_performance, realised_performance

CONFIDENCE = EvaluationConfig().confidence  # the shipped level (95%), from its one home
SEED = 7
# Data gets its own seed: sharing SEED would make the simulated labels equal the data's own draws.
DATA_SEED = 11
EXACT = 1e-12


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _covariate_batch(rows: int, mu: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One live batch under pure covariate shift: x ~ N(mu, 1) moves, P(y | x) = sigmoid(1.5 x - 1) does not.

    The scorer is P(y | x) itself, so it is perfectly calibrated on every batch. ``generate_leads`` cannot
    serve here: it exposes only the drawn label, not P(y | x) (missing values are injected after the label
    is drawn), and its ``drift`` also raises the conversion logit, which is concept drift.
    """
    p = _sigmoid(1.5 * rng.normal(mu, 1.0, size=rows) - 1.0)
    return (rng.random(rows) < p).astype(np.int64), p


def _estimate(scores: np.ndarray, *, threshold: float = 0.5, n_resamples: int = 200, seed: int = SEED):
    return estimate_performance(
        scores, threshold=threshold, n_resamples=n_resamples, seed=seed, confidence=CONFIDENCE
    )


def test_expected_auc_and_precision_by_hand() -> None:
    # Ordered pairs (i, j) of distinct rows, s_i > s_j, weigh p_i (1 - p_j):
    # 0.4*0.8 + 0.6*(0.8 + 0.6) + 0.8*(0.8 + 0.6 + 0.4) = 2.6, over
    # sum p * sum (1 - p) - sum p (1 - p) = 2 * 2 - 0.8 = 3.2, so E[AUC] = 2.6 / 3.2 = 0.8125.
    est = _estimate(np.array([0.2, 0.4, 0.6, 0.8]), threshold=0.6)
    assert est.roc_auc.value == pytest.approx(0.8125, abs=EXACT)
    assert est.precision.value == pytest.approx(0.7, abs=EXACT)  # mean of 0.6 and 0.8
    assert est.positive_rate.value == pytest.approx(0.5, abs=EXACT)
    assert est.flagged == 2 and est.rows == 4
    # Ties earn half: 0.6*0.8 + 0.6*0.8 + (0.6*0.4 + 0.6*0.4) / 2 = 1.2 over 1.4 * 1.6 - 0.64 = 1.6.
    assert _estimate(np.array([0.2, 0.6, 0.6])).roc_auc.value == pytest.approx(0.75, abs=EXACT)


def test_expected_auc_is_the_ratio_of_expectations_by_enumeration() -> None:
    """Over all 2^8 label vectors: E[correctly ranked pairs] / E[n_pos * n_neg], ties included."""
    p = np.round(np.random.default_rng(DATA_SEED).random(8), 1)  # rounding makes ties
    correct = pairs = 0.0
    for labels in itertools.product((0, 1), repeat=p.size):
        y = np.array(labels, dtype=bool)
        weight = np.prod(np.where(y, p, 1.0 - p))
        pos, neg = p[y][:, None], p[~y][None, :]
        correct += weight * np.sum((pos > neg) + 0.5 * (pos == neg))
        pairs += weight * pos.size * neg.size
    assert _estimate(p).roc_auc.value == pytest.approx(correct / pairs, abs=EXACT)


def test_degenerate_scores_leave_undefined_metrics_nan_and_json_none() -> None:
    est = _estimate(np.array([0.0, 0.0, 0.0]), threshold=0.5)  # no row can be positive, none flagged
    assert math.isnan(est.roc_auc.value) and est.roc_auc.skipped == est.n_resamples
    assert math.isnan(est.precision.value) and est.flagged == 0
    data = json.loads(json.dumps(est.to_dict(), allow_nan=False))
    assert data["roc_auc"]["value"] is None and data["precision"]["low"] is None
    assert data["positive_rate"]["value"] == 0.0
    flat = est.flat_metrics()
    assert "estimated/roc_auc" not in flat and flat["estimated/positive_rate"] == 0.0
    # Certain labels of both classes: the ranking is known, so the AUC is 1 without any noise.
    sure = _estimate(np.array([0.0, 1.0, 1.0]))
    assert (sure.roc_auc.value, sure.roc_auc.low, sure.roc_auc.high) == (1.0, 1.0, 1.0)


def test_estimate_is_seeded_and_independent_of_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    scores = np.random.default_rng(DATA_SEED).beta(2.0, 3.0, size=300)
    first = _estimate(scores, n_resamples=120)
    assert _estimate(scores, n_resamples=120) == first
    assert _estimate(scores, n_resamples=120, seed=SEED + 1) != first
    monkeypatch.setattr(performance, "_CHUNK_CELLS", 7 * 2 * scores.size)  # chunks of 7 draws
    # The same draws, summed in other blocks: equal to float64 rounding (EXACT), not bit for bit, since BLAS
    # may order a re-chunked reduction differently.
    _assert_close(_estimate(scores, n_resamples=120).to_dict(), first.to_dict(), EXACT)


def _assert_close(got: object, expected: object, tolerance: float, where: str = "estimate") -> None:
    """Two plain-dict results equal field by field: numbers within ``tolerance`` (relative, and absolute
    near 0), everything else exactly."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), where
        for key in expected:
            _assert_close(got[key], expected[key], tolerance, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _assert_close(g, e, tolerance, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(got, bool):
        assert got == pytest.approx(expected, rel=tolerance, abs=tolerance), where
    else:
        assert got == expected, where


def test_interval_covers_labels_drawn_from_the_scores() -> None:
    """Fixed scores, fresh labels ~ Bernoulli(score): the prediction interval holds the realised values."""
    rng = np.random.default_rng(DATA_SEED)
    scores = rng.beta(2.0, 4.0, size=1_000)
    est = _estimate(scores, threshold=0.4, n_resamples=1_000)
    draws = 300
    y = rng.random((draws, scores.size)) < scores  # (draws, rows)
    aucs = np.array([metrics.roc_auc_score(row, scores) for row in y])
    precisions = y[:, scores >= 0.4].mean(axis=1)
    rates = y.mean(axis=1)
    for name, realised in [("roc_auc", aucs), ("precision", precisions), ("positive_rate", rates)]:
        m = getattr(est, name)
        coverage = np.mean((realised >= m.low) & (realised <= m.high))
        # 300 draws at a true 95%: the binomial SD of the coverage is 1.3 points, so 90% is 4 SD below.
        assert coverage >= 0.90, (name, coverage)
    # The ratio of expectations against the simulated mean: SE of the mean is ~0.0009 for 300 draws.
    assert np.mean(aucs) == pytest.approx(est.roc_auc.value, abs=0.003)


def test_covariate_shift_acceptance() -> None:
    """The issue's acceptance test: 40 batches of 5,000 rows, the mean of x moving from -1 to 1.

    The covariate shift moves the positive rate (about 0.15 to 0.55) and the AUC with it, while the
    scores stay calibrated: the 95% interval must cover the realised AUC in at least 85% of the batches.
    500 simulated label vectors per batch (the shipped 1,000 halved for speed) still put ~12 draws in
    each tail of the percentile interval.
    """
    rng = np.random.default_rng(DATA_SEED)
    rows, n_resamples = 5_000, 500
    covered, widths, errors = [], [], []
    for batch, mu in enumerate(np.linspace(-1.0, 1.0, 40)):
        y, scores = _covariate_batch(rows, float(mu), rng)
        est = _estimate(scores, n_resamples=n_resamples, seed=SEED + batch)
        realised = metrics.roc_auc_score(y, scores)
        covered.append(est.roc_auc.low <= realised <= est.roc_auc.high)
        widths.append(est.roc_auc.high - est.roc_auc.low)
        errors.append(est.roc_auc.value - realised)
    coverage, mean_width = float(np.mean(covered)), float(np.mean(widths))
    bias, spread = float(np.mean(errors)), float(np.std(errors, ddof=1))
    print(
        f"coverage {coverage:.1%} of {len(covered)} batches, mean width {mean_width:.4f} at {rows} rows, "
        f"mean error {bias:+.4f} (SD {spread:.4f})"
    )
    assert coverage >= 0.85
    assert mean_width < 0.06
    # Calibrated scores make the estimate unbiased up to the O(1/n) ratio-of-expectations term (~1e-4
    # here), so the mean error is noise: a per-batch SD of ~0.006 over 40 batches gives a standard
    # error of ~0.001, and 0.004 is four of them.
    assert abs(bias) < 0.004
    # The interval's width tracks the spread of the errors it has to cover (width ~ 4 SD at 95%).
    assert 2.5 * spread < mean_width < 6.0 * spread


def test_concept_drift_is_outside_what_the_interval_covers() -> None:
    """Same features, higher conversion (logit +1): the estimate, blind to labels, misses the shift."""
    rng = np.random.default_rng(DATA_SEED)
    for batch in range(5):
        x = rng.normal(0.0, 1.0, size=2_000)
        scores = _sigmoid(1.5 * x - 1.0)  # the model's calibrated view of the reference population
        y = rng.random(x.size) < _sigmoid(1.5 * x)  # what the live population does
        est = _estimate(scores, seed=SEED + batch)
        assert y.mean() > est.positive_rate.high
        assert y[scores >= 0.5].mean() > est.precision.high


def test_realised_point_values_match_sklearn() -> None:
    rng = np.random.default_rng(DATA_SEED)
    y, scores = _covariate_batch(2_000, 0.0, rng)
    real = realised_performance(y, scores, threshold=0.4, n_resamples=200, seed=SEED, confidence=CONFIDENCE)
    assert real.roc_auc.value == pytest.approx(metrics.roc_auc_score(y, scores), abs=EXACT)
    assert real.pr_auc.value == pytest.approx(metrics.average_precision_score(y, scores), abs=EXACT)
    assert real.brier.value == pytest.approx(metrics.brier_score_loss(y, scores), abs=EXACT)
    assert real.precision.value == pytest.approx(metrics.precision_score(y, scores >= 0.4), abs=EXACT)
    assert real.positive_rate.value == pytest.approx(y.mean(), abs=EXACT)
    assert real.rows == 2_000 and real.flagged == int(np.sum(scores >= 0.4))
    for m in (real.roc_auc, real.pr_auc, real.brier, real.positive_rate, real.precision):
        assert m.low <= m.value <= m.high and m.confidence == CONFIDENCE
    # The multinomial bootstrap of the positive rate against its normal approximation, 2 * 1.96 * SE.
    rate = y.mean()
    width = 2 * 1.96 * math.sqrt(rate * (1 - rate) / y.size)
    assert real.positive_rate.high - real.positive_rate.low == pytest.approx(width, rel=0.2)
    flat = real.flat_metrics()
    assert flat["realised/roc_auc_low"] == real.roc_auc.low and flat["realised/rows"] == 2_000.0
    assert (
        realised_performance(y, scores, threshold=0.4, n_resamples=200, seed=SEED, confidence=CONFIDENCE)
        == real
    )


def test_realised_precision_without_flagged_rows_is_json_none() -> None:
    y = np.array([0, 0, 1, 1, 1])
    real = realised_performance(
        y,
        np.array([0.1, 0.2, 0.3, 0.4, 0.5]),
        threshold=0.9,
        n_resamples=50,
        seed=SEED,
        confidence=CONFIDENCE,
    )
    assert real.flagged == 0 and math.isnan(real.precision.value)
    assert real.precision.skipped == 50
    data = json.loads(json.dumps(real.to_dict(), allow_nan=False))
    assert data["precision"]["value"] is None and data["roc_auc"]["value"] == 1.0
    assert "realised/precision" not in real.flat_metrics()


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([], "empty"),
        ([0.2, 1.5], r"\[0, 1\]"),
        ([-0.1, 0.5], r"\[0, 1\]"),
        ([0.2, math.nan], "NaN"),
        ([[0.2, 0.3]], "1-D"),
    ],
)
def test_estimate_rejects_invalid_scores(scores: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _estimate(np.array(scores, dtype=np.float64))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_resamples": 0}, "n_resamples"),
        ({"confidence": 1.0}, "confidence"),
        ({"threshold": math.nan}, "threshold"),
    ],
)
def test_estimate_rejects_invalid_parameters(kwargs: dict, message: str) -> None:
    params = {"threshold": 0.5, "n_resamples": 10, "seed": SEED, "confidence": CONFIDENCE} | kwargs
    with pytest.raises(ValueError, match=message):
        estimate_performance(np.array([0.2, 0.7]), **params)


@pytest.mark.parametrize(
    ("y", "scores", "message"),
    [
        ([0, 1], [], "length mismatch"),
        ([1, 1], [0.2, 0.7], "single class"),
        ([0, 1], [0.2, math.nan], "NaN"),
        ([0, 1], [0.2, 1.1], r"\[0, 1\]"),
        ([0, 2], [0.2, 0.7], "binary"),
    ],
)
def test_realised_rejects_invalid_inputs(y: list, scores: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        realised_performance(
            np.array(y), np.array(scores), threshold=0.5, n_resamples=10, seed=SEED, confidence=CONFIDENCE
        )
