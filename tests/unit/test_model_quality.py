"""The model-quality layer: embeddings and TabM, the data-dependent config, folds, cross-validation,
calibration and the final model's selection (never touching the test split)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from test_model import SPEC, make_frame

from models.artifact.calibrator import TemperatureScaling, fit_temperature
from models.artifact.scorer import TabularScorer
from models.data.config import SplitConfig
from models.data.split import stratified_folds
from models.errors import UserInputError
from models.evaluation.calibration import calibration
from models.evaluation.config import BusinessConfig, EvaluationConfig
from models.features.transform import FeatureTransform
from models.nn.config import ModelConfig
from models.nn.module import FINAL_LR_FRACTION, warmup_cosine
from models.nn.network import FoldEnsemble, TabularNet, describe, embedding_dims, quantile_bins
from models.training.baselines import BASELINES
from models.training.fit import train_model
from models.training.selection import finalize_model
from models.training.sweep import SweepResult, TrialSummary

# --- embeddings and networks ------------------------------------------------------------------------


def _inputs(rows: int, n_numeric: int, cardinalities: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x_num = torch.randn(rows, n_numeric, generator=generator)
    x_cat = torch.stack([torch.randint(0, c, (rows,), generator=generator) for c in cardinalities], dim=1)
    return x_num, x_cat


@pytest.mark.parametrize(
    ("ensemble_size", "num_embedding"),
    [
        (1, "none"),
        (1, "piecewise_linear"),
        (1, "periodic"),
        (4, "none"),
        (4, "piecewise_linear"),
        (3, "periodic"),
    ],
)
def test_embedding_and_ensemble_shapes_and_gradients(ensemble_size: int, num_embedding: str) -> None:
    cards = [4, 30]
    x_num, x_cat = _inputs(9, 3, cards)
    bins = quantile_bins(torch.randn(200, 3).numpy(), 8)
    net = TabularNet(3, cards, [16, 8], 6, 0.0, ensemble_size, num_embedding, 5, bins)  # type: ignore[arg-type]
    members = net.member_logits(x_num, x_cat)
    assert members.shape == (9, ensemble_size)  # [B, k]
    logits = net(x_num, x_cat)
    assert logits.shape == (9,)  # [B]
    # The ensemble logit is the logit of the members' mean probability.
    mean_p = torch.sigmoid(members).mean(dim=1)
    torch.testing.assert_close(torch.sigmoid(logits), mean_p, rtol=1e-5, atol=1e-6)
    members.sum().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert (
        any(p.grad.abs().sum() > 0 for p in net.num_embeddings.parameters()) if net.num_embeddings else True
    )
    rebuilt = TabularNet(**net.architecture())
    rebuilt.load_state_dict(net.state_dict())
    torch.testing.assert_close(rebuilt(x_num, x_cat), logits, rtol=0, atol=0)  # same weights, same ops


def test_numeric_embedding_output_width() -> None:
    bins = quantile_bins(np.random.default_rng(1).normal(size=(500, 2)).astype(np.float32), 16)
    net = TabularNet(2, [], [8], 4, 0.0, 1, "piecewise_linear", 7, bins)
    embedded = net.num_embeddings(torch.randn(5, 2))
    assert embedded.shape == (5, 2, 7)  # [B, n_numeric, num_embedding_dim]
    assert net.mlp[0].in_features == 2 * 7


def test_quantile_bins_handle_flags_and_constants() -> None:
    x = np.column_stack([np.arange(100.0), np.repeat([0.0, 1.0], [70, 30]), np.full(100, 3.0)]).astype(
        np.float32
    )
    bins = quantile_bins(x, 10)
    assert len(bins[0]) == 11 and bins[0][0] == 0.0 and bins[0][-1] == 99.0  # 10 bins over 0..99
    assert bins[1] == [0.0, 1.0]  # a flag: one bin
    assert bins[2] == [2.0, 4.0]  # a constant: one bin around it
    TabularNet(3, [], [4], 4, 0.0, 1, "piecewise_linear", 4, bins)(
        torch.from_numpy(x[:3]), torch.zeros(3, 0).long()
    )


def test_categorical_width_grows_with_cardinality_up_to_the_cap() -> None:
    assert embedding_dims([3, 4, 12, 50, 1000], 16) == [3, 3, 6, 14, 16]


def test_fold_ensemble_averages_probabilities() -> None:
    x_num, x_cat = _inputs(6, 2, [5])
    members = [TabularNet(2, [5], [4], 3, 0.0) for _ in range(3)]
    ensemble = FoldEnsemble([m.architecture() for m in members])
    for target, source in zip(ensemble.members, members, strict=True):
        target.load_state_dict(source.state_dict())
    expected = torch.stack([torch.sigmoid(m(x_num, x_cat)) for m in members]).mean(dim=0)
    torch.testing.assert_close(torch.sigmoid(ensemble(x_num, x_cat)), expected, rtol=1e-5, atol=1e-6)
    assert describe(ensemble.architecture()).startswith("ensemble of 3 fold models, each MLP [4]")


# --- data-dependent config and schedule ---------------------------------------------------------------


@pytest.mark.parametrize(("rows", "batch"), [(300, 64), (1_000, 64), (14_000, 256), (140_000, 512)])
def test_auto_batch_size_follows_the_rows(rows: int, batch: int) -> None:
    assert ModelConfig().for_data(rows).batch_size == batch
    assert ModelConfig(batch_size=100).for_data(rows).batch_size == 100  # an explicit size stays


def test_auto_positive_weight_only_for_rare_positives() -> None:
    assert ModelConfig().for_data(1000, 0.3).positive_weight == 1.0
    assert ModelConfig().for_data(1000, 0.04).positive_weight == pytest.approx(math.sqrt(0.96 / 0.04))
    assert ModelConfig().for_data(1000).positive_weight == 1.0  # unknown rate (cost estimates)
    assert ModelConfig(positive_weight=3.0).for_data(1000, 0.04).positive_weight == 3.0


def test_warmup_then_cosine_to_the_floor() -> None:
    assert warmup_cosine(0, warmup=10, total=100) == pytest.approx(0.1)
    assert warmup_cosine(9, warmup=10, total=100) == pytest.approx(1.0)
    assert warmup_cosine(10, warmup=10, total=100) == pytest.approx(1.0)
    assert warmup_cosine(55, warmup=10, total=100) == pytest.approx(
        FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) / 2
    )
    assert warmup_cosine(100, warmup=10, total=100) == pytest.approx(FINAL_LR_FRACTION)


# --- folds --------------------------------------------------------------------------------------------


def test_folds_are_disjoint_cover_every_row_and_keep_the_label_rate() -> None:
    y = (np.random.default_rng(0).uniform(size=1003) < 0.27).astype(int)
    fold = stratified_folds(y, 5, seed=11)
    assert fold.shape == y.shape and set(np.unique(fold)) == set(range(5))  # each row in exactly one fold
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= 1
    for label in (0, 1):
        per_fold = np.bincount(fold[y == label], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1  # stratified: each class dealt evenly
    assert np.array_equal(fold, stratified_folds(y, 5, seed=11))
    assert not np.array_equal(fold, stratified_folds(y, 5, seed=12))


def test_folds_need_enough_rows_of_each_class() -> None:
    with pytest.raises(UserInputError, match="fewer rows than the 5"):
        stratified_folds(np.array([0] * 20 + [1] * 4), 5, seed=0)
    with pytest.raises(ValueError):
        SplitConfig(cv_folds=1)
    assert SplitConfig().cross_validates(19_999) and not SplitConfig().cross_validates(20_000)
    assert not SplitConfig(cv_folds=0).cross_validates(100)


# --- calibration --------------------------------------------------------------------------------------


def test_temperature_scaling_lowers_ece_of_an_overconfident_model() -> None:
    rng = np.random.default_rng(4)
    true_logit = rng.normal(scale=1.5, size=20_000)
    y = (rng.uniform(size=true_logit.size) < 1 / (1 + np.exp(-true_logit))).astype(float)
    overconfident = 3.0 * true_logit  # ranks perfectly, probabilities far too extreme
    fit_rows, check_rows = slice(0, 10_000), slice(10_000, None)
    scaling = fit_temperature(overconfident[fit_rows], y[fit_rows])
    assert scaling.temperature == pytest.approx(3.0, rel=0.05)  # recovers the distortion within 5%
    before = calibration(y[check_rows], 1 / (1 + np.exp(-overconfident[check_rows]))).ece
    after = calibration(y[check_rows], 1 / (1 + np.exp(-scaling.apply(overconfident[check_rows])))).ece
    assert after < before / 3


def test_offset_undoes_a_weighted_loss_shift() -> None:
    rng = np.random.default_rng(5)
    true_logit = rng.normal(size=20_000) - 2.0
    y = (rng.uniform(size=true_logit.size) < 1 / (1 + np.exp(-true_logit))).astype(float)
    weight = 4.0
    shifted = true_logit + math.log(weight)  # what a positive weight of 4 teaches a well-specified model
    scaling = fit_temperature(shifted, y, offset=0.0)  # the fitted offset finds the shift by itself
    assert scaling.temperature == pytest.approx(1.0, abs=0.05)
    assert scaling.offset == pytest.approx(math.log(weight), abs=0.1)  # 20k rows: within 0.1 logit
    assert TemperatureScaling.from_dict(scaling.to_dict()) == scaling
    one_class = fit_temperature(shifted, np.ones_like(y), offset=0.7)  # nothing to fit against
    assert (one_class.temperature, one_class.offset, one_class.fitted_rows) == (1.0, 0.7, 0)


def test_an_off_centre_underfit_model_is_recentred() -> None:
    """Logits in a narrow band above zero while the labels are balanced around a lower rate: temperature
    alone would stretch the band and worsen the calibration; the fitted offset moves it."""
    rng = np.random.default_rng(6)
    true_logit = rng.normal(size=5_000) - 1.0
    y = (rng.uniform(size=true_logit.size) < 1 / (1 + np.exp(-true_logit))).astype(float)
    narrow = 0.2 * true_logit + 0.6
    scaling = fit_temperature(narrow, y)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    assert calibration(y, sig(scaling.apply(narrow))).ece < calibration(y, sig(narrow)).ece / 3


# --- the final model ----------------------------------------------------------------------------------


class RecordingTransform(FeatureTransform):
    """The fitted transform, noting the ids of every row it encodes."""

    seen: set[int]

    def transform(self, df: pd.DataFrame):  # type: ignore[override]
        self.seen.update(int(i) for i in df["id"])
        return super().transform(df)


@pytest.fixture(scope="module")
def parts() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    frame = make_frame(1_500, seed=3)
    return (
        frame.iloc[:900].reset_index(drop=True),
        frame.iloc[900:1100].reset_index(drop=True),
        frame.iloc[1100:],
    )


def fit_on(transform: FeatureTransform, train: pd.DataFrame, val: pd.DataFrame, model: ModelConfig):
    """A network of ``model`` fitted on ``train`` (label ``churned``), early-stopped on ``val``, seed 1."""
    return train_model(
        transform.transform(train),
        train["churned"].to_numpy(),
        transform.transform(val),
        val["churned"].to_numpy(),
        transform=transform,
        config=model,
        seed=1,
    )


def _sweep_result(scorer: TabularScorer, params: list[dict]) -> SweepResult:
    trials = [
        TrialSummary(f"t{i}", p, "TERMINATED", 0.8 - i / 100, 3, [], None, None, 1.0, seed=i)
        for i, p in enumerate(params)
    ]
    return SweepResult("s", "t0", params[0], 0.8, scorer, trials, 1.0, False, "/nowhere")


@pytest.mark.parametrize("folds", [0, 3])
def test_final_model_never_touches_the_test_split(parts, folds: int) -> None:
    train, val, test = parts
    transform = RecordingTransform.fit(train, SPEC)
    transform.seen = set()
    model = ModelConfig(architecture="mlp", hidden_sizes=[16], max_epochs=2, early_stopping_patience=1)
    y_train, y_val = train["churned"].to_numpy(), val["churned"].to_numpy()
    fitted = fit_on(transform, train, val, model)
    result = _sweep_result(fitted.scorer, [{"dropout": 0.0}, {"dropout": 0.2}, {"dropout": 0.1}])
    final = finalize_model(
        result,
        train,
        y_train,
        val,
        y_val,
        transform=transform,
        model=model,
        split=SplitConfig(cv_folds=folds, cv_top_trials=2),
        business=BusinessConfig(value_per_conversion=10.0, cost_per_contact=2.0),
        evaluation=EvaluationConfig(n_bootstrap=100),
        cv_seed=3,
        business_seed=4,
    )
    assert transform.seen.isdisjoint(set(test["id"]))
    assert final.scorer.decision is not None and "profit-maximising" in final.scorer.decision.source
    # Fitted on these very rows to lower their log-loss: the calibration error does not get worse by more
    # than the noise of a few hundred rows' reliability bins.
    assert final.calibration_after.ece <= final.calibration_before.ece + 0.02
    if folds:
        cv = final.cv
        assert cv is not None and cv.folds == 3 and cv.rows == len(train) + len(val)
        assert [c.trial_id for c in cv.candidates] == ["t0", "t1"]  # the sweep's best two
        assert isinstance(final.scorer.net, FoldEnsemble) and len(final.scorer.net.members) == 3
        assert set(cv.baselines) == set(BASELINES)  # every baseline, on the same folds
        assert final.held_out() is not None and len(final.held_out().y) == cv.rows
        assert cv.chosen.roc_auc.low <= cv.chosen.roc_auc.mean <= cv.chosen.roc_auc.high
    else:
        assert final.cv is None and final.held_out() is None and final.holdout_rows == len(val)
        assert final.scorer.net is fitted.scorer.net  # the sweep's model itself, now calibrated
