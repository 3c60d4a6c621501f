"""The blended ensemble: when it must win and when it must not, its weights, and a blend model saved, loaded,
scored and explained like a network."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from test_model import SPEC, make_frame
from test_model_quality import _sweep_result, fit_on

from models.artifact.blend import Blend, BlendMember
from models.artifact.explain import PERMUTATIONS, explain, method
from models.artifact.scorer import TabularScorer
from models.data.config import SplitConfig
from models.evaluation.config import EvaluationConfig
from models.features.transform import FeatureTransform
from models.nn.config import ModelConfig
from models.training.baselines import CATBOOST, LIGHTGBM, fit_baselines
from models.training.blend import NETWORK, choose_blend, fit_weights
from models.training.selection import finalize_model


def _signals(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels driven by two independent signals a and b in equal parts, and the two."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(1.5 * a + 1.5 * b)))).astype(np.int64)
    return y, a, b


def _choose(network: np.ndarray, members: dict[str, np.ndarray], y: np.ndarray, mode: str = "auto"):
    choice, _ = choose_blend(
        network,
        members,
        y,
        fold_of_row=None,
        holdout="validation rows",
        mode=mode,  # type: ignore[arg-type]
        margin=0.002,
        n_resamples=200,
        seed=0,
        confidence=0.95,
    )
    return choice


def test_the_blend_wins_when_its_members_err_apart() -> None:
    """The network sees only signal a, the trees only b: together they see both (complementary errors)."""
    y, a, b = _signals(4_000, seed=1)
    choice = _choose(1.5 * a, {CATBOOST: 1.5 * b}, y)
    assert choice.blended and "above the 0.002 margin" in choice.reason
    # Cross-fitted, so the gain is real: about 0.91 against 0.77 for either signal alone.
    assert choice.blend_auc > choice.network_auc + 0.05
    assert choice.difference.low > 0  # the paired interval of blend - network excludes zero
    weights = choice.weights.as_dict()
    assert weights[NETWORK] == pytest.approx(1.0, abs=0.2) and weights[CATBOOST] == pytest.approx(
        1.0, abs=0.2
    )


def test_the_blend_does_not_win_when_a_member_adds_nothing() -> None:
    """The trees see a noisy copy of what the network sees: blending adds nothing the margin would notice."""
    y, a, _ = _signals(4_000, seed=2)
    noisy = a + np.random.default_rng(3).normal(scale=2.0, size=len(a))
    choice = _choose(1.5 * a, {CATBOOST: noisy, LIGHTGBM: np.random.default_rng(4).normal(size=len(a))}, y)
    assert not choice.blended and "not above the 0.002 margin" in choice.reason
    assert choice.blend_auc <= choice.network_auc + 0.002
    # ... unless the config says always; and off never blends, whatever the gain.
    assert _choose(1.5 * a, {CATBOOST: noisy}, y, mode="always").blended
    y2, a2, b2 = _signals(2_000, seed=5)
    assert not _choose(1.5 * a2, {CATBOOST: 1.5 * b2}, y2, mode="off").blended


def test_weights_are_non_negative_and_a_model_pointing_the_wrong_way_gets_none() -> None:
    y, a, _ = _signals(3_000, seed=6)
    weights = fit_weights(np.column_stack([a, -a]), y, (NETWORK, CATBOOST))
    assert min(weights.weights) >= 0.0
    assert weights.as_dict()[CATBOOST] == pytest.approx(0.0, abs=1e-6)
    # The fitted blend is a logistic regression: on its own rows it ranks exactly as its weighted sum does.
    assert roc_auc_score(y, weights.apply(np.column_stack([a, -a]))) == pytest.approx(roc_auc_score(y, a))


@pytest.fixture(scope="module")
def blend_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[TabularScorer, pd.DataFrame]:
    """A real blend: a small network and CatBoost/LightGBM fitted on the same 1,100 rows (ensemble: always)."""
    frame = make_frame(1_500, seed=7)
    train, val, test = frame.iloc[:900], frame.iloc[900:1100], frame.iloc[1100:]
    transform = FeatureTransform.fit(train, SPEC)
    y_train, y_val = train["churned"].to_numpy(), val["churned"].to_numpy()
    model = ModelConfig(architecture="mlp", hidden_sizes=[16], max_epochs=2, ensemble="always")
    fitted = fit_on(transform, train, val, model)
    final = finalize_model(
        _sweep_result(fitted.scorer, [{"dropout": 0.0}]),
        train,
        y_train,
        val,
        y_val,
        transform=transform,
        model=model,
        split=SplitConfig(cv_folds=0),
        business=None,
        evaluation=EvaluationConfig(n_bootstrap=100),
        cv_seed=3,
        business_seed=4,
        baselines=fit_baselines(transform, train, y_train, seed=0, names=(CATBOOST, LIGHTGBM)),
    )
    assert final.blend is not None and final.blend.blended
    blend = final.scorer.blend
    assert blend is not None and {m.name for m in blend.members} <= {CATBOOST, LIGHTGBM}
    assert all(m.weight > 0 for m in blend.members)  # a member the fit left out is not kept
    folder = tmp_path_factory.mktemp("blend") / "model"
    final.scorer.save(folder)
    return TabularScorer.load(folder), test.reset_index(drop=True)


def test_a_saved_blend_loads_and_scores_as_it_did(blend_model) -> None:
    loaded, test = blend_model
    assert loaded.blend is not None and (loaded.blend.network_weight > 0 or loaded.blend.members)
    scores = loaded.predict_proba(test)
    assert scores.shape == (len(test),) and ((scores > 0) & (scores < 1)).all()
    # The blend's logit is its weighted sum of the network's logit and the members' margins, then calibrated.
    encoded = loaded.transform.transform(test)
    blend = loaded.blend
    by_hand = blend.network_weight * loaded.network_logits_encoded(encoded) + blend.intercept
    for member in blend.members:
        by_hand += member.weight * member.models[0].margin(encoded)
    assert np.allclose(loaded.logits_encoded(encoded), by_hand, rtol=0, atol=1e-9)
    assert roc_auc_score(test["churned"], scores) > 0.6


def test_a_blends_attributions_add_up_to_its_score_minus_the_baselines(blend_model) -> None:
    scorer, test = blend_model
    assert method(scorer).startswith(f"permutation Shapley values of the calibrated score ({PERMUTATIONS}")
    rows = scorer.transform.transform(test.head(5))
    explanations = explain(scorer, rows)
    assert len(explanations) == 5
    for e in explanations:
        assert set(e.attributions) == set(SPEC.numeric) | set(SPEC.categorical)
        # Every feature order's credits add up exactly; what is left is rounding (the network runs in float32).
        assert abs(e.score - e.baseline_score - sum(e.attributions.values())) == pytest.approx(abs(e.gap))
        assert abs(e.gap) < 1e-6
    # The same row always gets the same explanation (seeded orders).
    assert explain(scorer, rows)[0].attributions == explanations[0].attributions


def test_catboost_fold_models_merge_into_one_scoring_their_mean_margin(tmp_path: Path) -> None:
    frame = make_frame(800, seed=9)
    transform = FeatureTransform.fit(frame, SPEC)
    y = frame["churned"].to_numpy()
    folds = [fit_baselines(transform, frame, y, seed=s, names=(CATBOOST,))[0].tree_model() for s in (1, 2)]
    member = BlendMember(CATBOOST, "catboost", 0.5, folds)
    assert len(member.scoring()) == 1  # one call per request instead of one per fold
    encoded = transform.transform(frame.head(50))
    mean = (folds[0].margin(encoded) + folds[1].margin(encoded)) / 2
    assert np.allclose(member.margin(encoded), mean, rtol=0, atol=1e-9)
    # Saved as its fold models (a merged CatBoost model cannot be saved), loaded and merged again.
    blend = Blend(0.0, 0.0, [member])
    blend.save(tmp_path)
    loaded = Blend.load(tmp_path)
    assert loaded is not None and len(loaded.members[0].models) == 2
    assert np.allclose(loaded.combine(np.zeros(50), encoded), 0.5 * mean, rtol=0, atol=1e-9)
    # Pickled as Prefect persists task results and hashes task inputs: without the merged model.
    again = pickle.loads(pickle.dumps(member))
    assert np.allclose(again.margin(encoded), mean, rtol=0, atol=1e-9)
