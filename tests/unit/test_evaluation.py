"""Unit tests for models.evaluation (metrics and the report) and models.evaluation.plots on small seeded synthetic data."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from models.data.config import LeakageConfig
from models.data.leakage import single_feature_auc
from models.evaluation import plots
from models.evaluation.bootstrap import (
    MetricInterval,
    _resample_counts,
    bootstrap_metrics,
    confidence_percent,
    paired_bootstrap_auc,
)
from models.evaluation.calibration import calibration
from models.evaluation.config import BusinessConfig, EvaluationConfig
from models.evaluation.diagnostics import ScoreFn, permutation_importance, robustness, slice_metrics
from models.evaluation.evaluate import BaselineScore, ChampionModel, LeakageCheck, evaluate_model
from models.evaluation.ranking import sort_scores, weighted_auc_ap
from models.features.config import FeatureConfig
from models.seeds import Seeds

from helpers.tables import PLANTED, WON_TAGS, planted_table

# The shipped defaults, from their one home.
EVAL = EvaluationConfig()
SEED = 7
# Data gets its own seed: sharing SEED would make noise draws equal the data's own draws.
DATA_SEED = 11


def _synthetic(n: int, seed: int = DATA_SEED, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from the scores themselves, so the scores are calibrated by construction."""
    rng = np.random.default_rng(seed)
    scores = rng.beta(2.0, 2.0, size=n)
    if ties:
        scores = np.round(scores, 1)
    labels = (rng.random(n) < scores).astype(int)
    return labels, scores


def _frame(n: int, seed: int = DATA_SEED) -> tuple[pd.DataFrame, np.ndarray]:
    """Features where ``signal`` drives the label and ``noise``/``segment`` do not."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "signal": signal,
            "noise": rng.normal(size=n),
            "segment": rng.choice(["a", "b", "c"], size=n),
        }
    )
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-3.0 * signal))).astype(int)
    return frame, labels


def _score_signal(frame: pd.DataFrame) -> np.ndarray:
    """A fixed 'model' using only the signal column; missing values fall back to the prior."""
    signal = frame["signal"].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.nan_to_num(1.0 / (1.0 + np.exp(-3.0 * signal)), nan=0.5)


@pytest.mark.parametrize("ties", [False, True])
def test_point_values_match_sklearn(ties: bool) -> None:
    y, s = _synthetic(2_000, ties=ties)
    result = bootstrap_metrics(y, s, threshold=0.4, n_resamples=50, seed=SEED, confidence=EVAL.confidence)
    expected = {
        "roc_auc": metrics.roc_auc_score(y, s),
        "pr_auc": metrics.average_precision_score(y, s),
        "log_loss": metrics.log_loss(y, s),
        "brier": metrics.brier_score_loss(y, s),
        "f1": metrics.f1_score(y, (s >= 0.4).astype(int)),
    }
    assert set(result) == set(expected)
    for name, value in expected.items():
        assert result[name].value == pytest.approx(value, abs=1e-6), name


def test_bootstrap_resamples_match_sklearn_on_duplicated_rows() -> None:
    """Each count-weighted resample equals sklearn on the explicitly resampled rows."""
    y, s = _synthetic(300, ties=True)
    counts = _resample_counts(np.random.default_rng(SEED), 4, y.size)
    auc, ap = weighted_auc_ap(counts, sort_scores(y.astype(float), s), with_ap=True)
    assert ap is not None
    for row in range(4):
        idx = np.repeat(np.arange(y.size), counts[row].astype(int))
        assert auc[row] == pytest.approx(metrics.roc_auc_score(y[idx], s[idx]), abs=1e-9)
        assert ap[row] == pytest.approx(metrics.average_precision_score(y[idx], s[idx]), abs=1e-9)


def test_log_loss_clips_extreme_scores_like_sklearn() -> None:
    y = np.array([0, 1, 1, 0, 1])
    s = np.array([0.0, 1.0, 0.0, 0.2, 0.9])
    result = bootstrap_metrics(
        y, s, n_resamples=10, seed=SEED, threshold=EVAL.threshold, confidence=EVAL.confidence
    )
    assert result["log_loss"].value == pytest.approx(metrics.log_loss(y, s), abs=1e-6)


def test_intervals_contain_point_and_narrow_with_more_data() -> None:
    small = bootstrap_metrics(
        *_synthetic(300), n_resamples=300, seed=SEED, threshold=EVAL.threshold, confidence=EVAL.confidence
    )
    large = bootstrap_metrics(
        *_synthetic(5_000), n_resamples=300, seed=SEED, threshold=EVAL.threshold, confidence=EVAL.confidence
    )
    for name in small:
        for result in (small, large):
            assert result[name].low <= result[name].value <= result[name].high, name
        assert large[name].high - large[name].low < small[name].high - small[name].low, name


def test_bootstrap_is_reproducible_and_serialisable() -> None:
    y, s = _synthetic(500)
    first = bootstrap_metrics(
        y, s, n_resamples=100, seed=SEED, threshold=EVAL.threshold, confidence=EVAL.confidence
    )
    assert first == bootstrap_metrics(
        y, s, n_resamples=100, seed=SEED, threshold=EVAL.threshold, confidence=EVAL.confidence
    )
    assert first != bootstrap_metrics(
        y, s, n_resamples=100, seed=SEED + 1, threshold=EVAL.threshold, confidence=EVAL.confidence
    )
    payload = json.dumps({name: interval.to_dict() for name, interval in first.items()})
    assert json.loads(payload)["roc_auc"]["value"] == first["roc_auc"].value
    assert all(type(v) is float for v in dataclasses.astuple(first["f1"])[:3])


def test_single_class_resamples_are_skipped_and_counted() -> None:
    y = np.array([1] + [0] * 9)
    s = np.linspace(0.1, 0.9, 10)
    result = bootstrap_metrics(
        y, s, n_resamples=400, seed=SEED, threshold=EVAL.threshold, confidence=EVAL.confidence
    )
    # P(no positive drawn in 10 draws) = 0.9**10 ~ 0.35
    assert 80 < result["roc_auc"].skipped < 200
    assert result["pr_auc"].skipped == result["roc_auc"].skipped
    assert result["brier"].skipped == 0


def test_chunking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    y, s = _synthetic(400)
    whole = bootstrap_metrics(
        y, s, n_resamples=50, seed=SEED, threshold=EVAL.threshold, confidence=EVAL.confidence
    )
    monkeypatch.setattr("models.evaluation.bootstrap._CHUNK_CELLS", 400 * 7)  # chunks of 7 resamples
    chunked = bootstrap_metrics(
        y, s, n_resamples=50, seed=SEED, threshold=EVAL.threshold, confidence=EVAL.confidence
    )
    assert chunked.keys() == whole.keys()
    for name, interval in whole.items():
        # Not ==: the resamples are the same, only the summation order of the matrix products differs,
        # so the promise is agreement to rounding (the last digit differed on another machine).
        for f in ("value", "low", "high"):
            actual, expected = getattr(chunked[name], f), getattr(interval, f)
            np.testing.assert_allclose(actual, expected, rtol=1e-12, err_msg=f"{name}.{f}")
        assert (chunked[name].skipped, chunked[name].confidence) == (interval.skipped, interval.confidence)


def test_paired_perfect_vs_random() -> None:
    rng = np.random.default_rng(DATA_SEED)
    y = rng.integers(0, 2, size=1_000)
    perfect = np.where(y == 1, 0.9, 0.1)
    random = rng.random(1_000)
    result = paired_bootstrap_auc(y, perfect, random, n_resamples=500, seed=SEED, confidence=EVAL.confidence)
    assert result.metric == "roc_auc"
    assert 0.0 < result.low <= result.diff <= result.high
    assert result.diff == pytest.approx(1.0 - metrics.roc_auc_score(y, random), abs=1e-9)
    assert result.p_value == pytest.approx(1.0 / 500)


def test_paired_identical_scores() -> None:
    y, s = _synthetic(800)
    result = paired_bootstrap_auc(y, s, s.copy(), n_resamples=200, seed=SEED, confidence=EVAL.confidence)
    assert (result.diff, result.low, result.high) == (0.0, 0.0, 0.0)
    assert result.p_value == 1.0
    json.dumps(dataclasses.asdict(result))


def test_calibration_ece_small_when_calibrated_large_when_not() -> None:
    y, s = _synthetic(20_000)
    calibrated = calibration(y, s, n_bins=10)
    assert calibrated.ece < 0.02
    overconfident = calibration(y, np.clip(s + 0.3, 0.0, 1.0), n_bins=10)
    assert overconfident.ece > 0.2
    assert sum(calibrated.counts) == y.size
    assert len(calibrated.bin_edges) == 11 and len(calibrated.counts) == 10


def test_calibration_matches_sklearn_curve_and_keeps_empty_bins() -> None:
    from sklearn.calibration import calibration_curve

    y = np.array([0, 0, 1, 1, 1, 0])
    s = np.array([0.05, 0.1, 0.15, 0.85, 1.0, 0.9])
    result = calibration(y, s, n_bins=5)
    assert result.counts == [3, 0, 0, 0, 3]
    assert result.mean_predicted[1] is None and result.fraction_positive[1] is None
    frac, mean = calibration_curve(y, s, n_bins=5)
    assert [v for v in result.fraction_positive if v is not None] == pytest.approx(frac.tolist())
    assert [v for v in result.mean_predicted if v is not None] == pytest.approx(mean.tolist())
    expected_ece = 0.5 * abs(0.1 - 1 / 3) + 0.5 * abs(2.75 / 3 - 2 / 3)
    assert result.ece == pytest.approx(expected_ece)
    json.dumps(result.to_dict())


def test_slice_metrics() -> None:
    rng = np.random.default_rng(DATA_SEED)
    n = 400
    y, s = _synthetic(n)
    region = rng.choice(["north", "south"], size=n).astype(object)
    region[:20] = None
    tiny = np.where(np.arange(n) < 10, "rare", "common")
    frame = pd.DataFrame({"region": region, "tier": pd.Categorical(tiny)})
    result = slice_metrics(frame, y, s, min_count=30)

    by_key = {(m.column, m.value): m for m in result}
    assert set(by_key) == {
        ("region", "north"),
        ("region", "south"),
        ("region", "<missing>"),
        ("tier", "common"),
        ("tier", "rare"),
    }
    assert sum(m.count for m in result if m.column == "region") == n
    north = region == "north"
    assert by_key[("region", "north")].roc_auc == pytest.approx(metrics.roc_auc_score(y[north], s[north]))
    assert by_key[("region", "north")].positive_rate == pytest.approx(y[north].mean())
    assert by_key[("region", "<missing>")].roc_auc is None  # 20 rows < min_count
    assert by_key[("tier", "rare")].roc_auc is None
    assert [m.value for m in result if m.column == "tier"] == ["common", "rare"]  # by count
    json.dumps([m.to_dict() for m in result])


def test_slice_single_class_gives_none() -> None:
    y = np.array([1] * 40 + [0, 1] * 20)
    s = np.linspace(0.0, 1.0, 80)
    frame = pd.DataFrame({"group": ["all_pos"] * 40 + ["mixed"] * 40})
    by_value = {m.value: m for m in slice_metrics(frame, y, s, min_count=EVAL.slice_min_count)}
    assert by_value["all_pos"].roc_auc is None
    assert by_value["all_pos"].positive_rate == 1.0
    assert by_value["mixed"].roc_auc is not None


def test_robustness_noise_and_missing_hurt_signal_model() -> None:
    frame, y = _frame(2_000)
    original = frame.copy(deep=True)
    result = robustness(
        _score_signal,
        frame,
        y,
        numeric=["signal", "noise"],
        categorical=["segment"],
        noise_levels=(0.1, 1.0),
        missing_rates=(0.1, 0.5),
        seed=SEED,
    )
    pd.testing.assert_frame_equal(frame, original)
    assert [(r.perturbation, r.level) for r in result] == [
        ("gaussian_noise", 0.1),
        ("gaussian_noise", 1.0),
        ("missing", 0.1),
        ("missing", 0.5),
    ]
    assert all(r.delta < 0 for r in result)
    assert result[1].delta < result[0].delta
    assert result[3].delta < result[2].delta
    clean = metrics.roc_auc_score(y, _score_signal(frame))
    assert result[0].roc_auc - result[0].delta == pytest.approx(clean)
    json.dumps([dataclasses.asdict(r) for r in result])


def test_robustness_missing_uses_nan_and_none() -> None:
    frame, y = _frame(500)
    seen: list[pd.DataFrame] = []

    def spy(features: pd.DataFrame) -> np.ndarray:
        seen.append(features)
        return _score_signal(features)

    robustness(
        spy,
        frame,
        y,
        numeric=["signal"],
        categorical=["segment"],
        noise_levels=(),
        missing_rates=(0.3,),
        seed=SEED,
    )
    perturbed = seen[-1]
    assert perturbed["signal"].isna().mean() == pytest.approx(0.3, abs=0.07)
    blanked = perturbed["segment"][perturbed["segment"].isna()]
    assert len(blanked) > 0 and all(v is None for v in blanked)
    assert perturbed["noise"].equals(frame["noise"])  # unlisted columns untouched


def test_permutation_importance_ranks_informative_first() -> None:
    frame, y = _frame(1_500)
    original = frame.copy(deep=True)
    result = permutation_importance(
        _score_signal, frame, y, columns=["noise", "segment", "signal"], n_repeats=3, seed=SEED
    )
    pd.testing.assert_frame_equal(frame, original)
    assert [fi.feature for fi in result][0] == "signal"
    assert result[0].importance > 0.2
    assert all(abs(fi.importance) < 1e-12 for fi in result[1:])  # the model ignores them
    assert result == sorted(result, key=lambda fi: fi.importance, reverse=True)
    assert result == permutation_importance(
        _score_signal, frame, y, columns=["noise", "segment", "signal"], n_repeats=3, seed=SEED
    )


def test_permutation_keeps_categorical_dtype() -> None:
    frame, y = _frame(200)
    frame["segment"] = frame["segment"].astype("category")
    dtypes: list[object] = []

    def spy(features: pd.DataFrame) -> np.ndarray:
        dtypes.append(features["segment"].dtype)
        return _score_signal(features)

    permutation_importance(spy, frame, y, columns=["segment"], n_repeats=2, seed=SEED)
    assert all(isinstance(d, pd.CategoricalDtype) for d in dtypes)


def _assert_png(path: Path) -> None:
    assert path.exists() and path.stat().st_size > 1_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_write_png(tmp_path: Path) -> None:
    y, s = _synthetic(500)
    rng = np.random.default_rng(DATA_SEED)
    scores = {"model": s, "random": rng.random(500)}
    frame, labels = _frame(300)
    importances = permutation_importance(
        _score_signal, frame, labels, columns=["signal", "noise"], n_repeats=2, seed=SEED
    )
    written = [
        plots.plot_roc(y, scores, tmp_path / "roc.png"),
        plots.plot_pr(y, scores, tmp_path / "pr.png"),
        plots.plot_calibration(calibration(y, s, n_bins=20), tmp_path / "cal.png"),
        plots.plot_confusion(y, s, 0.5, tmp_path / "confusion.png"),
        plots.plot_importance(importances, tmp_path / "nested" / "importance.png", top=1),
    ]
    for path in written:
        _assert_png(path)


@pytest.mark.parametrize(
    ("y_true", "y_score", "message"),
    [
        ([0, 1, 1], [0.1, 0.2], "length mismatch"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "binary"),
        (["no", "yes", "yes"], [0.1, 0.2, 0.3], "0/1"),
        ([0, 1, 1], [0.1, 1.2, 0.3], r"\[0, 1\]"),
        ([0, 1, 1], [0.1, np.nan, 0.3], "NaN"),
        ([1, 1, 1], [0.1, 0.2, 0.3], "single class"),
        ([], [], "empty"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_bootstrap_rejects_bad_input(y_true: list, y_score: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_metrics(
            np.asarray(y_true),
            np.asarray(y_score),
            seed=SEED,
            threshold=EVAL.threshold,
            confidence=EVAL.confidence,
            n_resamples=EVAL.n_bootstrap,
        )


def test_other_functions_reject_bad_input() -> None:
    y, s = _synthetic(100)
    frame, labels = _frame(100)
    with pytest.raises(ValueError, match="score_b"):
        paired_bootstrap_auc(
            y, s, s[:-1], seed=SEED, confidence=EVAL.confidence, n_resamples=EVAL.n_bootstrap
        )
    with pytest.raises(ValueError, match="n_bins"):
        calibration(y, s, n_bins=0)
    with pytest.raises(ValueError, match="slices has 99"):
        slice_metrics(pd.DataFrame({"g": ["a"] * 99}), y, s, min_count=EVAL.slice_min_count)
    with pytest.raises(ValueError, match="not in features"):
        permutation_importance(_score_signal, frame, labels, columns=["nope"], n_repeats=1, seed=SEED)
    with pytest.raises(ValueError, match="features has 100"):
        robustness(_score_signal, frame, y[:50], numeric=["signal"], categorical=[], seed=SEED)
    with pytest.raises(ValueError, match="score_fn output"):
        permutation_importance(
            lambda f: np.full(len(f), 2.0), frame, labels, columns=["signal"], n_repeats=1, seed=SEED
        )
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_metrics(
            y, s, seed=SEED, threshold=EVAL.threshold, n_resamples=EVAL.n_bootstrap, confidence=95
        )


def test_metric_interval_is_plain_and_frozen() -> None:
    interval = MetricInterval(0.5, 0.4, 0.6, confidence=0.95)
    assert interval.to_dict() == {"value": 0.5, "low": 0.4, "high": 0.6, "confidence": 0.95, "skipped": 0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        interval.value = 1.0  # type: ignore[misc]


def test_intervals_carry_their_confidence() -> None:
    y, s = _synthetic(300)
    intervals = bootstrap_metrics(y, s, n_resamples=50, seed=SEED, threshold=EVAL.threshold, confidence=0.9)
    assert {m.confidence for m in intervals.values()} == {0.9}
    paired = paired_bootstrap_auc(y, s, s[::-1].copy(), n_resamples=50, seed=SEED, confidence=0.8)
    assert paired.confidence == 0.8
    assert [confidence_percent(c) for c in (0.9, 0.95, 0.975, 0.99)] == ["90%", "95%", "97.5%", "99%"]


@dataclass(frozen=True)
class _FixedModel:
    """Stands in for a scorer or a baseline: all the report needs is ``name`` and ``predict_proba``."""

    name: str
    score: ScoreFn
    decision: None = None  # no saved decision rule: the report uses evaluation.threshold
    fit_seconds: float = 0.0  # as a baseline: the time of its fit

    def predict_proba(self, features: pd.DataFrame, calibrated: bool = True) -> np.ndarray:
        return self.score(features)


def _score_blurred(frame: pd.DataFrame) -> np.ndarray:
    """A weaker 'champion': the signal blurred by the noise column."""
    mixed = frame["signal"].to_numpy() + frame["noise"].to_numpy()
    return 1.0 / (1.0 + np.exp(-mixed))


def test_evaluate_model_uses_named_seeds_champion_and_confidence(tmp_path: Path) -> None:
    frame, y = _frame(600)
    config = EvaluationConfig(n_bootstrap=100, confidence=0.9, importance_repeats=1)
    seeds = Seeds.from_root(SEED)
    baseline = _FixedModel("noise_only", lambda f: 1.0 / (1.0 + np.exp(-f["noise"].to_numpy())))
    report = evaluate_model(
        _FixedModel("model", _score_signal),  # type: ignore[arg-type]
        frame,
        y,
        [baseline],  # type: ignore[list-item]
        ChampionModel(version="3", scorer=_FixedModel("champion", _score_blurred)),  # type: ignore[arg-type]
        features=FeatureConfig(numeric=["signal", "noise"], categorical=["segment"]),
        config=config,
        seeds=seeds,
        plots_dir=tmp_path,
        business=BusinessConfig(value_per_conversion=100.0, cost_per_contact=20.0),
    )
    boot = dict(n_resamples=100, seed=seeds.bootstrap, confidence=0.9)
    # Exact equality is fine here: the same function on the same inputs, computed the same way.
    assert report.metrics == bootstrap_metrics(y, _score_signal(frame), threshold=config.threshold, **boot)
    assert report.vs_champion == paired_bootstrap_auc(y, _score_signal(frame), _score_blurred(frame), **boot)
    assert report.vs_champion.diff > 0
    assert report.champion_version == "3"
    assert report.robustness == robustness(
        _score_signal, frame, y, numeric=["signal", "noise"], categorical=["segment"], seed=seeds.robustness
    )
    assert report.importance == permutation_importance(
        _score_signal, frame, y, columns=["signal", "noise", "segment"], n_repeats=1, seed=seeds.importance
    )
    assert report.best_baseline == BaselineScore("noise_only", report.baselines["noise_only"]["roc_auc"])
    names = [
        "roc.png",
        "pr.png",
        "calibration.png",
        "confusion.png",
        "importance.png",
        "gains.png",
        "profit.png",
    ]
    assert [p.name for p in report.plots] == names
    for path in report.plots:
        _assert_png(path)
    json.dumps(report.to_dict())

    markdown = report.markdown()
    assert "90% bootstrap intervals" in markdown and "| 90% CI |" in markdown
    assert "95%" not in markdown
    assert "| champion v3 |" in markdown
    # Business value against the champion, at the same threshold (neither has a saved rule).
    assert report.business is not None and report.business.champion is not None
    assert "### Business value (USD)" in markdown and "contact everyone" in markdown
    assert report.flat_metrics()["business/profit"] == report.business.model.profit
    # Without held-out rows the non-inferiority evidence is the test comparison itself.
    assert report.non_inferiority == report.vs_baselines


def test_grouped_paired_bootstrap_averages_within_group_differences() -> None:
    """One group is the plain paired bootstrap; two groups weight each group's AUC difference by its rows
    and never rank one group's scores against the other's (here group b's scores are shifted by +5)."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    a = np.clip(0.3 * y + rng.uniform(size=400) * 0.7, 0, 1)
    b = np.clip(0.1 * y + rng.uniform(size=400) * 0.9, 0, 1)
    boot = dict(n_resamples=200, seed=5, confidence=0.9)
    assert paired_bootstrap_auc(y, a, b, groups=np.zeros(400), **boot) == paired_bootstrap_auc(
        y, a, b, **boot
    )
    groups = (np.arange(400) >= 300).astype(int)  # 300 rows, then 100
    first = paired_bootstrap_auc(y[:300], a[:300], b[:300], **boot)
    second = paired_bootstrap_auc(y[300:], a[300:], b[300:], **boot)
    shifted_a, shifted_b = a / 6 + groups * 5 / 6, b / 6 + groups * 5 / 6  # still in [0, 1]
    grouped = paired_bootstrap_auc(y, shifted_a, shifted_b, groups=groups, **boot)
    # A monotone map within a group leaves its AUCs unchanged: the point is the weighted mean (float sums).
    assert grouped.diff == pytest.approx(0.75 * first.diff + 0.25 * second.diff, abs=1e-12)
    assert grouped.low < grouped.diff < grouped.high


def _score_with_tag(frame: pd.DataFrame) -> np.ndarray:
    """A model fitted on a table with a post-outcome tag leans on the tag, a little on engagement."""
    won = frame[PLANTED.leak].isin(WON_TAGS).to_numpy()
    engagement = np.nan_to_num((frame["engagement"].to_numpy(dtype=np.float64, na_value=np.nan) - 50) / 22)
    return 1.0 / (1.0 + np.exp(-(2.5 * won + 0.8 * engagement - 1.2)))


def test_evaluate_model_flags_the_post_outcome_column_from_training_rows_and_importance(
    tmp_path: Path,
) -> None:
    train, test = planted_table(2_000, seed=1), planted_table(1_000, seed=2)
    features = FeatureConfig(numeric=list(PLANTED.numeric), categorical=[*PLANTED.categorical, PLANTED.leak])
    seeds = Seeds.from_root(SEED)
    model = _FixedModel("model", _score_with_tag)
    report = evaluate_model(
        model,  # type: ignore[arg-type]
        test,
        test[PLANTED.target].to_numpy(),
        [model],  # type: ignore[list-item]
        None,
        features=features,
        config=EvaluationConfig(n_bootstrap=100, importance_repeats=1),
        seeds=seeds,
        plots_dir=tmp_path,
        leakage=LeakageCheck(train, train[PLANTED.target].to_numpy(), LeakageConfig(), PLANTED.target),
    )
    leakage = report.leakage
    assert leakage is not None and leakage.rows == 2_000 and leakage.share_limit == pytest.approx(1 / 3)
    assert [f.feature for f in leakage.flagged] == [PLANTED.leak]
    [tag] = leakage.flagged
    assert len(tag.reasons) == 2 and tag.auc > 0.9 and tag.importance_share > 0.8  # alone, and in the model
    # The one-feature AUCs are those of the training rows, with the named seed's folds.
    aucs, _ = single_feature_auc(
        train,
        train[PLANTED.target].to_numpy(),
        numeric=features.numeric,
        categorical=features.categorical,
        folds=5,
        max_rows=LeakageConfig().max_rows,
        seed=seeds.leakage,
    )
    assert {f.feature: f.auc for f in leakage.features} == aucs
    markdown = report.markdown()
    assert "### Possible target leakage" in markdown and f"| {PLANTED.leak} |" in markdown
    assert report.flat_metrics()["leakage/flagged_features"] == 1.0
    json.dumps(report.to_dict())
