"""What the service reads from its environment: the variable names, the serving config and the registry.

``MLFLOW_TRACKING_URI`` is read here only (`tracking_uri`): without it the service serves its Bento's model
and follows nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml

from serving.config import ABConfig, ServingConfig
from serving.packaging import SERVING_CONFIG_ARG

# Under "bentoml" so that BentoML's server logging (INFO, its format) shows which model a worker serves.
LOGGER_NAME = "bentoml.serve.tabular"

MODEL_ENV = "MLOPS_BENTO_MODEL"  # name:version overriding the Bento's model (development)
# A registered model's name: with no model in the store, start not ready and serve its first champion.
WAIT_ENV = "MLOPS_SERVING_CHAMPION_OF"
ENTITY_ENV = "MLOPS_SERVING_ENTITY_COLUMN"  # the request field logged as the entity id in that mode
HOME_ENV = "MLOPS_HOME"  # prediction logs go to $MLOPS_HOME/predictions
AB_ENV = (
    "MLOPS_SERVING_AB"  # JSON of serving.ab, overriding the Bento's: switch A/B or shadow without a rebuild
)
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # the registry whose aliases the service follows
PREDICTIONS_DIR = "predictions"
# Probes and scrapers carry no token; everything else, API docs included, needs one when auth is on.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})


def serving_config() -> ServingConfig:
    """The ServingConfig the Bento was built with (a Bento argument; defaults when serving from source), with
    ``serving.ab`` replaced by ``$MLOPS_SERVING_AB`` (JSON, e.g. ``{"mode": "shadow"}``) when that is set."""
    arguments = vars(bentoml.use_arguments())
    config = ServingConfig.model_validate(arguments.get(SERVING_CONFIG_ARG) or {})
    override = os.environ.get(AB_ENV)
    if override:
        config = config.model_copy(update={"ab": ABConfig.model_validate_json(override)})
    return config


def service_name() -> str | None:
    """The service's name when served from source to follow a registered model's champion
    (``$MLOPS_SERVING_CHAMPION_OF``, the server stack's service): the name its Bento would have
    (``serving.bento_name``, else the model's), which BentoML's request metrics then carry as ``service_name``
    and the alert rules select. None otherwise: a built Bento's metrics carry the Bento's name whatever the
    service is called, and BentoML names a source service after its class."""
    model = os.environ.get(WAIT_ENV)
    return (serving_config().bento_name or model) if model else None


def tracking_uri() -> str | None:
    """The MLflow registry to follow (``$MLFLOW_TRACKING_URI``); None when unset or empty."""
    return os.environ.get(TRACKING_URI_ENV) or None


def prediction_log_dir() -> Path | None:
    """Where scored rows are logged, ``$MLOPS_HOME/predictions``; None when ``MLOPS_HOME`` is unset."""
    home = os.environ.get(HOME_ENV)
    return Path(home) / PREDICTIONS_DIR if home else None
