"""Integrated-gradient explanations (models/artifact/explain.py): attributions in raw-feature terms that add up."""

from __future__ import annotations

import numpy as np
import pytest

from models.artifact.calibrator import TemperatureScaling
from models.artifact.explain import baseline_row, explain
from models.artifact.scorer import TabularScorer
from models.data.synthetic import LeadSchema, generate_leads
from models.features.config import FeatureConfig
from models.features.transform import FeatureTransform
from models.nn.config import ModelConfig
from models.nn.network import FoldEnsemble
from models.training.fit import train_model

SCHEMA = LeadSchema()
# Completeness: 64 midpoint steps of a ReLU network's path integral; the gap is quadrature error.
GAP_TOLERANCE = 0.01  # in score (probability) units


@pytest.fixture(scope="module", params=["mlp", "tabm"])
def scorer(request) -> TabularScorer:
    leads = generate_leads(1500, seed=4)
    train, val = leads.iloc[:1200], leads.iloc[1200:]
    t = FeatureTransform.fit(
        train, FeatureConfig(numeric=list(SCHEMA.numeric), categorical=list(SCHEMA.categorical))
    )
    config = ModelConfig(
        architecture=request.param, hidden_sizes=[32], ensemble_size=4, batch_size=128, max_epochs=2
    )
    trained = train_model(
        t.transform(train),
        train[SCHEMA.target].to_numpy(),
        t.transform(val),
        val[SCHEMA.target].to_numpy(),
        transform=t,
        config=config,
        seed=1,
    ).scorer
    return trained.with_calibration(TemperatureScaling(1.4, 0.3))


def test_attributions_add_up_to_the_score_difference(scorer: TabularScorer) -> None:
    rows = generate_leads(40, seed=9)
    explanations = explain(scorer, scorer.transform.transform(rows))
    scores = scorer.predict_proba(rows)
    for explanation, score in zip(explanations, scores, strict=True):
        assert explanation.score == pytest.approx(score, abs=1e-12)
        assert set(explanation.attributions) == {*SCHEMA.numeric, *SCHEMA.categorical}
        total = sum(explanation.attributions.values())
        assert abs(explanation.score - explanation.baseline_score - total) <= GAP_TOLERANCE
        assert explanation.gap == pytest.approx(
            explanation.score - explanation.baseline_score - total, abs=1e-12
        )


def test_the_baseline_row_explains_nothing(scorer: TabularScorer) -> None:
    (explanation,) = explain(scorer, baseline_row(scorer))
    assert explanation.score == pytest.approx(explanation.baseline_score, abs=1e-12)
    assert all(abs(v) < 1e-9 for v in explanation.attributions.values())


def test_a_feature_that_differs_from_the_baseline_alone_gets_the_whole_difference(
    scorer: TabularScorer,
) -> None:
    base = baseline_row(scorer)
    numeric = base.numeric.copy()
    numeric[0, 0] += 2.0  # the first numeric two standard deviations up, everything else at the baseline
    row = type(base)(numeric=numeric, categorical=base.categorical.copy())
    (explanation,) = explain(scorer, row)
    moved = scorer.transform.spec.numeric[0]
    assert all(abs(v) < 1e-9 for k, v in explanation.attributions.items() if k != moved)
    assert explanation.attributions[moved] == pytest.approx(
        explanation.score - explanation.baseline_score, abs=GAP_TOLERANCE
    )


def test_fold_ensembles_are_explained_through_every_members_embeddings(scorer: TabularScorer) -> None:
    member = scorer.net.architecture()
    ensemble = FoldEnsemble([member, member])
    ensemble.members[0].load_state_dict(scorer.net.state_dict())
    ensemble.members[1].load_state_dict(scorer.net.state_dict())
    folded = TabularScorer(scorer.transform, ensemble, ensemble.architecture(), scorer.calibration)
    rows = generate_leads(10, seed=2)
    single = explain(scorer, scorer.transform.transform(rows))
    double = explain(folded, folded.transform.transform(rows))
    for a, b in zip(single, double, strict=True):  # two identical members: the same function
        assert a.score == pytest.approx(b.score, abs=1e-6)  # fp32 forward, another reduction order
        for name in a.attributions:
            assert b.attributions[name] == pytest.approx(a.attributions[name], abs=1e-5)
    assert np.isfinite([v for e in double for v in e.attributions.values()]).all()
