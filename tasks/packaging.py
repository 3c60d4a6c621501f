"""Package a registered version as a Bento (offline build, servable with ``bentoml serve``).

The Bento is built from the registry's copy of the model (``models:/NAME/VERSION``), not from a
scorer held in memory: a rollback or a redeploy months later builds the same Bento.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.governance.names import Alias
from monitoring.reference import SCORE_QUANTILES_TAG
from serving.config import ServingConfig
from serving.packaging import ENTITY_COLUMN_KEY, REFERENCE_QUANTILES_KEY, build_bento, save_model
from tasks.caching import IO_RETRIES
from tasks.registry import RegisteredVersion, load_scorer
from tasks.tracking import TrackingTarget


@task(name="build-bento", cache_policy=NO_CACHE, **IO_RETRIES)
def package_version(
    target: TrackingTarget,
    version: RegisteredVersion,
    serving: ServingConfig,
    *,
    entity_column: str | None,
    alias: Alias = Alias.CHAMPION,
) -> str:
    """Save the registered version's scorer as a BentoML model and build a Bento around it; returns the tag.

    ``entity_column`` (the config's ``data.id_column``) is the request field the service logs as each row's
    entity id, which joins the prediction log to outcomes."""
    scorer = load_scorer(target.tracking_uri, version.uri)
    tags = target.client().get_model_version(version.name, version.version).tags
    model_tag = save_model(
        scorer,
        name=version.name,
        metadata={
            "model_name": version.name,
            "model_version": version.version,
            "mlflow_run_id": version.run_id or "",
            "registry_uri": version.uri,
            ENTITY_COLUMN_KEY: entity_column or "",
            REFERENCE_QUANTILES_KEY: tags.get(SCORE_QUANTILES_TAG, ""),
        },
        labels={"alias": alias.value},
    )
    return str(build_bento(model_tag, service_name=serving.bento_name or version.name, config=serving))
