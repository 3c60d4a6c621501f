"""Package the champion as a Bento (offline build, servable with ``bentoml serve``)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.scorer import TabularScorer
from serving.config import ServingConfig
from serving.packaging import build_bento, save_model


@task(name="build-bento", cache_policy=NO_CACHE)
def package_champion(
    scorer: TabularScorer, serving: ServingConfig, *, model_name: str, version: str, run_id: str
) -> str:
    """Save the champion's scorer as a BentoML model and build a Bento around it; returns the Bento tag."""
    model_tag = save_model(
        scorer,
        name=model_name,
        metadata={"model_name": model_name, "model_version": version, "mlflow_run_id": run_id},
        labels={"alias": "champion"},
    )
    return str(build_bento(model_tag, service_name=serving.bento_name or model_name, config=serving))
