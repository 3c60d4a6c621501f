"""Model-layer tests: feature transform, network, Lightning training, scorer persistence."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pydantic
import pytest
import torch

from models.artifact.scorer import TabularScorer
from models.features.config import FeatureConfig
from models.features.transform import MISSING_INDEX, UNKNOWN_INDEX, FeatureTransform, MissingColumnsError
from models.nn.batches import TensorBatches
from models.nn.config import ModelConfig
from models.nn.module import roc_auc
from models.nn.network import TabularNet
from models.training.fit import TrainingResult, train_model

N_TRAIN, N_VAL = 2_000, 600
SPEC = FeatureConfig(numeric=["tenure", "spend"], categorical=["plan", "region"], min_category_count=5)
# Shrunken for tests: small batches give enough steps on 2k rows; the default architecture (TabM with
# piecewise-linear embeddings), smaller.
TEST_CONFIG = ModelConfig(
    hidden_sizes=[32, 16], ensemble_size=4, batch_size=128, max_epochs=3, early_stopping_patience=2
)


def make_frame(rows: int, seed: int) -> pd.DataFrame:
    """Numeric with NaN, categorical strings with a rare level, and a label nonlinear in both."""
    rng = np.random.default_rng(seed)
    tenure = rng.normal(size=rows)
    spend = rng.uniform(-2, 2, size=rows)
    plan = rng.choice(["basic", "plus", "pro", "legacy"], p=[0.5, 0.3, 0.198, 0.002], size=rows)
    region = rng.choice(["north", "south", "east", "west"], size=rows)
    logit = np.sin(2 * tenure) + spend**2 - 1.3 + np.where(plan == "pro", 1.2, -0.4) + (region == "east")
    churned = (rng.uniform(size=rows) < 1 / (1 + np.exp(-2 * logit))).astype(np.int64)
    tenure[rng.uniform(size=rows) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "tenure": tenure,
            "spend": spend,
            "plan": plan,
            "region": region,
            "churned": churned,
            "id": range(rows),
        }
    )


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = make_frame(N_TRAIN + N_VAL, seed=7)
    return frame.iloc[:N_TRAIN].reset_index(drop=True), frame.iloc[N_TRAIN:].reset_index(drop=True)


@pytest.fixture(scope="module")
def transform(frames: tuple[pd.DataFrame, pd.DataFrame]) -> FeatureTransform:
    return FeatureTransform.fit(frames[0], SPEC)


def fit(frames: tuple[pd.DataFrame, pd.DataFrame], transform: FeatureTransform, seed: int) -> TrainingResult:
    train, val = frames
    return train_model(
        transform.transform(train),
        train["churned"].to_numpy(),
        transform.transform(val),
        val["churned"].to_numpy(),
        transform=transform,
        config=TEST_CONFIG,
        seed=seed,
    )


@pytest.fixture(scope="module")
def trained(frames: tuple[pd.DataFrame, pd.DataFrame], transform: FeatureTransform) -> TrainingResult:
    return fit(frames, transform, seed=11)


# --- config -----------------------------------------------------------------------------------------


def test_configs_instantiate_with_defaults_and_forbid_extras() -> None:
    assert ModelConfig().hidden_sizes == [128, 128]
    assert (ModelConfig().architecture, ModelConfig().num_embedding) == ("tabm", "piecewise_linear")
    assert FeatureConfig().numeric == []
    with pytest.raises(pydantic.ValidationError):
        ModelConfig(hidden_size=3)  # typo must not pass silently


def test_with_overrides_validates() -> None:
    base = ModelConfig()
    tuned = base.with_overrides({"learning_rate": 1e-2, "dropout": 0.3})
    assert (tuned.learning_rate, tuned.dropout, tuned.batch_size) == (1e-2, 0.3, base.batch_size)
    assert base.learning_rate == 2e-3  # original untouched
    with pytest.raises(pydantic.ValidationError):
        base.with_overrides({"dropout": 1.0})
    with pytest.raises(pydantic.ValidationError):
        base.with_overrides({"not_a_field": 1})


# --- features ---------------------------------------------------------------------------------------


def test_transform_shapes_and_dtypes(frames, transform: FeatureTransform) -> None:
    encoded = transform.transform(frames[1])
    assert encoded.numeric.shape == (N_VAL, 2) and encoded.numeric.dtype == np.float32
    assert encoded.categorical.shape == (N_VAL, 2) and encoded.categorical.dtype == np.int64
    assert np.isfinite(encoded.numeric).all()
    assert transform.cardinalities == [2 + 3, 2 + 4]  # "legacy" is rarer than min_category_count
    assert (encoded.categorical >= 0).all()
    assert (encoded.categorical < np.array(transform.cardinalities)).all()


def test_unknown_rare_and_missing_categories(transform: FeatureTransform) -> None:
    df = pd.DataFrame(
        {
            "tenure": [0.0, 1.0, np.nan, 2.0],
            "spend": [0.0, 0.0, 0.0, 0.0],
            "plan": ["unseen", "legacy", None, "pro"],
            "region": [np.nan, "north", "east", "mars"],
        }
    )
    cat = transform.transform(df).categorical
    assert cat[:, 0].tolist()[:3] == [UNKNOWN_INDEX, UNKNOWN_INDEX, MISSING_INDEX]
    assert cat[3, 0] >= 2  # a known value
    assert cat[0, 1] == MISSING_INDEX and cat[3, 1] == UNKNOWN_INDEX


def test_statistics_come_from_train_only(frames, transform: FeatureTransform) -> None:
    train, val = frames
    tenure = train["tenure"].to_numpy()
    median = np.nanmedian(tenure)
    imputed = np.where(np.isnan(tenure), median, tenure)
    assert transform.medians[0] == pytest.approx(median)
    assert transform.means[0] == pytest.approx(imputed.mean())
    assert transform.stds[0] == pytest.approx(imputed.std())
    # Transforming other data must not refit anything.
    shifted = val.assign(spend=val["spend"] + 100.0)
    before = transform.to_dict()
    encoded = transform.transform(shifted)
    assert transform.to_dict() == before
    assert encoded.numeric[:, 1].mean() > 50  # standardised with train statistics, not re-centred
    # A missing numeric becomes the train median, standardised.
    missing = transform.transform(val.assign(tenure=np.nan)).numeric[:, 0]
    assert np.allclose(missing, (median - imputed.mean()) / imputed.std())


def test_integer_codes_match_after_turning_float() -> None:
    train = pd.DataFrame({"code": [1, 2, 2, 3]})
    t = FeatureTransform.fit(train, FeatureConfig(categorical=["code"]))
    scoring = pd.DataFrame({"code": [1.0, np.nan, 3.0, 4.0]})  # pandas makes ints float when NaN appears
    assert t.transform(scoring).categorical[:, 0].tolist() == [2, MISSING_INDEX, 4, UNKNOWN_INDEX]


def test_constant_column_has_unit_std() -> None:
    df = pd.DataFrame({"x": [3.0, 3.0, 3.0]})
    t = FeatureTransform.fit(df, FeatureConfig(numeric=["x"]))
    assert t.stds == [1.0]
    assert (t.transform(df).numeric == 0).all()


@pytest.mark.parametrize("seed", range(5))
def test_serving_path_encodes_exactly_like_the_frame_path(transform: FeatureTransform, seed: int) -> None:
    """No training/serving skew: rows as a client sends them (JSON values: floats, ints, strings, null, NaN
    and ±inf, unknown and rare levels, numbers in a categorical column) give identical arrays through
    `encode_rows` and through `transform` of the same rows as a DataFrame."""
    rng = np.random.default_rng(seed)
    n = 300

    def numeric_value() -> object:
        return rng.choice(
            [
                None,
                float("nan"),
                float("inf"),
                -float("inf"),
                int(rng.integers(-5, 5)),
                float(rng.normal(scale=3)),
            ],
            p=[0.1, 0.05, 0.03, 0.02, 0.2, 0.6],
        )

    def category(levels: list[str]) -> object:
        pick = rng.random()
        if pick < 0.1:
            return None
        if pick < 0.2:
            return f"never-seen-{rng.integers(1000)}"
        if pick < 0.25:
            return int(rng.integers(0, 4)) if rng.random() < 0.5 else float(rng.integers(0, 4))
        return str(rng.choice(levels))

    rows = [
        {
            "tenure": numeric_value(),
            "spend": numeric_value(),
            "plan": category(["basic", "plus", "pro", "legacy"]),
            "region": category(["north", "south", "east", "west"]),
        }
        for _ in range(n)
    ]
    frame = pd.DataFrame(rows)
    frame[SPEC.numeric] = frame[SPEC.numeric].astype(np.float64)
    numeric = np.array(
        [[np.nan if r[c] is None else r[c] for c in SPEC.numeric] for r in rows], dtype=np.float64
    )
    by_frame = transform.transform(frame)
    by_rows = transform.encode_rows(numeric, [[r[c] for r in rows] for c in SPEC.categorical])
    assert np.array_equal(by_rows.numeric, by_frame.numeric)  # bit for bit: the same float64 ops
    assert np.array_equal(by_rows.categorical, by_frame.categorical)
    assert {MISSING_INDEX, UNKNOWN_INDEX} <= set(np.unique(by_rows.categorical))


def test_values_far_outside_the_training_range_are_flagged() -> None:
    train = pd.DataFrame({"x": [0.0, 5.0, 10.0], "k": [2.0, 2.0, 2.0], "gone": [np.nan] * 3})
    t = FeatureTransform.fit(train, FeatureConfig(numeric=["x", "k", "gone"]))
    assert t.ranges[:2] == [[0.0, 10.0], [2.0, 2.0]] and np.isnan(t.ranges[2]).all()
    block = np.array(
        [
            [
                -5.0,
                2.5,
                1.0,
            ],  # at the margin (0.5 x width 10 below 0): not flagged; k within 0.5 of a constant
            [15.1, 2.6, 1e9],  # beyond both margins; a column never seen in training flags nothing
            [np.nan, -1.0, np.nan],  # missing is not out of range
        ]
    )
    assert t.out_of_range(block, margin=0.5).tolist() == [
        [False, False, False],
        [True, True, False],
        [False, True, False],
    ]
    restored = FeatureTransform.from_dict(json.loads(json.dumps(t.to_dict(), allow_nan=False)))
    assert restored == t
    legacy = {key: value for key, value in t.to_dict().items() if key != "ranges"}  # saved before ranges
    assert not FeatureTransform.from_dict(legacy).out_of_range(block, margin=0.5).any()


def test_missing_column_error_names_column(frames, transform: FeatureTransform) -> None:
    with pytest.raises(MissingColumnsError, match="region") as info:
        transform.transform(frames[1].drop(columns=["region"]))
    assert info.value.columns == ["region"]
    assert isinstance(info.value, ValueError)


def test_numeric_column_with_strings_is_rejected(frames, transform: FeatureTransform) -> None:
    bad = frames[1].assign(spend=frames[1]["spend"].astype(str))
    with pytest.raises(ValueError, match="spend"):
        transform.transform(bad)


def test_extra_columns_are_ignored(frames, transform: FeatureTransform) -> None:
    val = frames[1]
    plain = transform.transform(val)
    extra = transform.transform(val.assign(unused=1)[["unused", *reversed(val.columns)]])
    assert np.array_equal(plain.numeric, extra.numeric)
    assert np.array_equal(plain.categorical, extra.categorical)


def test_dict_round_trip_is_exact(frames, transform: FeatureTransform) -> None:
    restored = FeatureTransform.from_dict(json.loads(json.dumps(transform.to_dict())))
    assert restored == transform
    a, b = transform.transform(frames[1]), restored.transform(frames[1])
    assert np.array_equal(a.numeric, b.numeric) and np.array_equal(a.categorical, b.categorical)


# --- network and batches ----------------------------------------------------------------------------


@pytest.mark.parametrize(("n_numeric", "cardinalities"), [(3, [5, 12]), (0, [5, 12]), (3, [])])
def test_network_forward_shapes(n_numeric: int, cardinalities: list[int]) -> None:
    net = TabularNet(n_numeric, cardinalities, hidden_sizes=[16, 8], embedding_dim=4, dropout=0.1)
    assert net.ensemble_size == 1 and net.num_embeddings is None  # the plain MLP of earlier versions
    x_num = torch.randn(7, n_numeric)  # [B, n_numeric]
    x_cat = (
        torch.stack([torch.randint(0, c, (7,)) for c in cardinalities], dim=1)
        if cardinalities
        else torch.empty(7, 0, dtype=torch.long)
    )  # [B, n_categorical]
    logits = net(x_num, x_cat)
    assert logits.shape == (7,) and logits.dtype == torch.float32
    # fast.ai's width rule round(1.6 * c^0.56), capped at embedding_dim: 5 levels -> 4 (cap), 12 -> 4 (cap)
    assert [e.embedding_dim for e in net.embeddings] == [min(4, round(1.6 * c**0.56)) for c in cardinalities]
    assert TabularNet(**net.architecture()).architecture() == net.architecture()


def test_batches_cover_every_row_and_reshuffle_per_epoch() -> None:
    x = torch.arange(10, dtype=torch.float32)
    batches = TensorBatches(x[:, None], x[:, None].long(), x, batch_size=4, shuffle=True, seed=0)
    first, second = [torch.cat([b[2] for b in batches]) for _ in range(2)]
    assert len(batches) == 3 and [len(b[2]) for b in batches] == [4, 4, 2]
    assert sorted(first.tolist()) == sorted(second.tolist()) == x.tolist()
    assert not torch.equal(first, second)
    again = TensorBatches(x[:, None], x[:, None].long(), x, batch_size=4, shuffle=True, seed=0)
    assert torch.equal(torch.cat([b[2] for b in again]), first)


def test_roc_auc_matches_pairwise_definition_with_ties() -> None:
    scores = torch.tensor([0.1, 0.4, 0.4, 0.8, 0.2, 0.4, 0.9])
    targets = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    pos, neg = scores[targets == 1], scores[targets == 0]
    pairwise = ((pos[:, None] > neg[None, :]).double() + 0.5 * (pos[:, None] == neg[None, :]).double()).mean()
    assert roc_auc(scores, targets).item() == pytest.approx(pairwise.item())
    assert torch.isnan(roc_auc(scores, torch.ones(7)))


# --- training and scoring ---------------------------------------------------------------------------


def test_train_model_learns_quickly(trained: TrainingResult) -> None:
    assert trained.best_val_auc > 0.7
    assert 1 <= trained.epochs_trained <= TEST_CONFIG.max_epochs
    assert trained.train_seconds > 0  # measured; its speed belongs to benchmarks/bench_train_throughput.py
    assert trained.device == "cpu" and trained.samples_per_second > 0
    assert set(trained.history[0]) >= {"epoch", "train/loss", "val/loss", "val/roc_auc"}
    assert trained.best_val_auc == max(h["val/roc_auc"] for h in trained.history)


def test_best_weights_are_restored(frames, trained: TrainingResult) -> None:
    train, val = frames
    scores = trained.scorer.predict_proba(val)
    assert roc_auc(
        torch.from_numpy(scores), torch.from_numpy(val["churned"].to_numpy())
    ).item() == pytest.approx(trained.best_val_auc, abs=1e-4)


def test_same_seed_gives_identical_predictions(
    frames, transform: FeatureTransform, trained: TrainingResult
) -> None:
    again = fit(frames, transform, seed=11)
    # Same seed, same data order, same initial weights: the fits agree to float32 accumulation noise (1e-6),
    # which is all the order of a CPU's parallel reductions may change.
    np.testing.assert_allclose(
        again.scorer.predict_proba(frames[1]), trained.scorer.predict_proba(frames[1]), rtol=0, atol=1e-6
    )
    assert len(again.history) == len(trained.history)
    for ours, theirs in zip(again.history, trained.history, strict=True):
        assert ours.keys() == theirs.keys()
        assert all(ours[k] == pytest.approx(theirs[k], rel=1e-5, abs=1e-6) for k in ours)


def test_callbacks_see_validation_metrics(frames, transform: FeatureTransform) -> None:
    seen: list[set[str]] = []

    class Probe(L.Callback):  # what a Ray Tune report callback reads at validation end
        def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            seen.append(set(trainer.callback_metrics))

    train, val = frames
    train_model(
        transform.transform(train),
        train["churned"].to_numpy(),
        transform.transform(val),
        val["churned"].to_numpy(),
        transform=transform,
        config=TEST_CONFIG.with_overrides({"max_epochs": 1}),
        seed=0,
        callbacks=[Probe()],
    )
    assert seen and seen[0] >= {"val/roc_auc", "val/loss"}


def test_scorer_save_load_gives_identical_scores(frames, trained: TrainingResult, tmp_path: Path) -> None:
    val = frames[1]
    trained.scorer.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {
        "transform.json",
        "network.json",
        "weights.pt",
        "calibration.json",
    }
    loaded = TabularScorer.load(tmp_path)
    scores = trained.scorer.predict_proba(val)
    assert scores.dtype == np.float64 and scores.shape == (N_VAL,)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert np.array_equal(loaded.predict_proba(val), scores)
    assert [(c.name, c.kind) for c in loaded.feature_columns] == [
        ("tenure", "numeric"),
        ("spend", "numeric"),
        ("plan", "categorical"),
        ("region", "categorical"),
    ]


def test_scorer_rejects_frames_missing_columns(frames, trained: TrainingResult) -> None:
    with pytest.raises(MissingColumnsError, match="tenure"):
        trained.scorer.predict_proba(frames[1].drop(columns=["tenure"]))
