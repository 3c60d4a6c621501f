"""Versions registered in an MLflow tracking server as the training pipeline registers them: a tiny trained
scorer, logged with the integrity record a Bento checks before serving it (digest, smoke sample), the held-out
score quantiles the service exports, and a gate decision."""

from __future__ import annotations

import json

from infra.home import ProjectHome
from models.artifact.scorer import TabularScorer
from models.data.synthetic import LeadSchema, generate_leads
from models.features.config import FeatureConfig
from models.features.transform import FeatureTransform
from models.nn.config import ModelConfig
from models.training.fit import train_model

from helpers.blends import blended

SCHEMA = LeadSchema()


def tiny_scorer(seed: int, blend: bool = False) -> TabularScorer:
    """A one-epoch network of 8 units on 1,500 generated leads; with ``blend``, that network blended with
    CatBoost and LightGBM (a blend champion)."""
    leads = generate_leads(1_500, seed=seed)
    train, val = leads.iloc[:1_200], leads.iloc[1_200:]
    transform = FeatureTransform.fit(
        train, FeatureConfig(numeric=list(SCHEMA.numeric), categorical=list(SCHEMA.categorical))
    )
    scorer = train_model(
        transform.transform(train),
        train[SCHEMA.target].to_numpy(),
        transform.transform(val),
        val[SCHEMA.target].to_numpy(),
        transform=transform,
        config=ModelConfig(architecture="mlp", hidden_sizes=[8], batch_size=256, max_epochs=1),
        seed=seed,
    ).scorer
    return blended(scorer, train, val, SCHEMA.target, seed=seed) if blend else scorer


def register_version(url: str, home: ProjectHome, scorer: TabularScorer, name: str, decision: str) -> str:
    """``scorer`` logged, registered under ``name`` and recorded in the tracking server at ``url`` as the
    pipeline does, with the gate's ``decision`` on it; its version. Credentials, where the server wants them,
    come from this process's environment (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``)."""
    from mlflow import MlflowClient

    from monitoring.reference import SCORE_QUANTILES_TAG, reference_score_quantiles
    from tasks.registry import record_serving_integrity, register_challenger
    from tasks.tracking import TrackingTarget, log_model

    client = MlflowClient(url)
    target = TrackingTarget.for_store(url, name, home.mlflow_artifacts)
    experiment = client.get_experiment_by_name(name) or client.get_experiment(client.create_experiment(name))
    run_id = client.create_run(experiment.experiment_id).info.run_id
    rows = generate_leads(20, seed=3)
    uri = log_model.fn(target, run_id, scorer, rows.head(5))
    version = register_challenger.fn(target, name, uri, run_id, {})
    record_serving_integrity.fn(target, version, scorer, rows)
    quantiles = reference_score_quantiles(scorer.predict_proba(rows))
    client.set_model_version_tag(name, version.version, SCORE_QUANTILES_TAG, json.dumps(quantiles))
    client.set_model_version_tag(name, version.version, "promotion.decision", decision)
    client.set_model_version_tag(name, version.version, "promotion.reason", f"test: {decision}")
    return version.version
