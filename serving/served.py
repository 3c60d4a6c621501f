"""A model as the service serves it (`ServedModel`), and which model the service starts with.

At start-up (`model_in_store`): ``MLOPS_BENTO_MODEL=name:version`` when set, that model from the active model
store (for development: ``BENTOML_HOME=... MLOPS_BENTO_MODEL=crm-leads:abc bentoml serve
serving.service:TabularModelService`` from the repository root serves a model saved by
`serving.packaging.save_model` without building a Bento; inside a Bento the active store is the Bento's own);
otherwise the Bento's model with the alias ``champion``, which `serving.packaging.build_bento` gives the model
of every Bento it builds; with neither and ``MLOPS_SERVING_CHAMPION_OF`` set, none yet. A stored model's files
are checked against the digest recorded at save time before they are loaded (`ServedModel.from_bento`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import NotFound
from pydantic import BaseModel

from models.artifact.scorer import FeatureColumn, TabularScorer
from monitoring.reference import parse_score_quantiles
from serving.config import ServingConfig
from serving.features import OnlineFeatures
from serving.packaging import (
    ENTITY_COLUMN_KEY,
    MODEL_ALIAS,
    MODEL_NAME_KEY,
    MODEL_VERSION_KEY,
    REFERENCE_QUANTILES_KEY,
    SCORER_DIGEST_KEY,
    verify_scorer_files,
)
from serving.schemas import build_request_model
from serving.settings import MODEL_ENV, TRACKING_URI_ENV, WAIT_ENV


@dataclass(frozen=True)
class ServedModel:
    """Everything one request needs about the model it is scored by. The service swaps the whole object in
    one assignment, so a request never mixes two versions."""

    scorer: TabularScorer
    name: str
    version: str
    source: str  # "bento model <tag>" or "registry models:/<name>/<version>"
    entity_column: str | None
    request_model: type[BaseModel]
    metadata: dict[str, Any]
    explain_model: type[BaseModel]  # the request model of /explain: fewer rows (each costs a path integral)
    # Trained from a feature service: reads the features a row leaves out by entity id (None: rows carry them).
    features: OnlineFeatures | None = None
    # Quantiles of its held-out scores saved at registration ({"0.5": score, ...}); None: none were saved.
    reference_quantiles: dict[str, float] | None = None

    @classmethod
    def of(
        cls,
        scorer: TabularScorer,
        *,
        name: str,
        version: str,
        source: str,
        entity_column: str | None,
        metadata: dict[str, Any],
        config: ServingConfig,
        reference_quantiles: dict[str, float] | None = None,
    ) -> ServedModel:
        request_model = build_request_model(
            scorer.feature_columns, config.max_batch_size, entity_column, config.max_string_length
        )
        explain_model = build_request_model(
            scorer.feature_columns, config.max_explain_rows, entity_column, config.max_string_length
        )
        features = None if scorer.lookup is None else OnlineFeatures.load(scorer.lookup)
        return cls(
            scorer,
            name,
            version,
            source,
            entity_column,
            request_model,
            metadata,
            explain_model,
            features,
            reference_quantiles,
        )

    @classmethod
    def from_bento(cls, model: bentoml.Model, config: ServingConfig) -> ServedModel:
        """A model of the BentoML store, its files verified against the digest saved with it, then loaded;
        `serving.packaging.ModelIntegrityError` when they do not match."""
        metadata = dict(model.info.metadata)
        model_dir = Path(model.path)
        verify_scorer_files(model_dir, metadata.get(SCORER_DIGEST_KEY))
        return cls.of(
            TabularScorer.load(model_dir),
            name=str(metadata.get(MODEL_NAME_KEY, model.tag.name)),
            version=str(metadata.get(MODEL_VERSION_KEY, model.tag.version)),
            source=f"bento model {model.tag}",
            entity_column=str(metadata.get(ENTITY_COLUMN_KEY) or "") or None,
            metadata=metadata,
            config=config,
            reference_quantiles=parse_score_quantiles(metadata.get(REFERENCE_QUANTILES_KEY)),
        )

    @classmethod
    def from_registry(
        cls,
        scorer: TabularScorer,
        *,
        name: str,
        version: str,
        entity_column: str | None,
        config: ServingConfig,
        reference_quantiles: dict[str, float] | None = None,
    ) -> ServedModel:
        """A registered version, already fetched and verified (`serving.registry.fetch_verified`)."""
        return cls.of(
            scorer,
            name=name,
            version=version,
            source=f"registry models:/{name}/{version}",
            entity_column=entity_column,
            metadata={MODEL_NAME_KEY: name, MODEL_VERSION_KEY: version},
            config=config,
            reference_quantiles=reference_quantiles,
        )

    @property
    def columns(self) -> list[FeatureColumn]:
        return self.scorer.feature_columns


def model_in_store(can_follow: bool) -> bentoml.Model | None:
    """The model to start with from the store (see the module doc); None when there is none and
    ``MLOPS_SERVING_CHAMPION_OF`` says to wait for the registry's champion, which needs ``can_follow`` (a
    tracking URI, and ``serving.follow_registry`` on). Raises RuntimeError saying what to set otherwise."""
    reference = os.environ.get(MODEL_ENV) or MODEL_ALIAS
    waiting = os.environ.get(WAIT_ENV, "").strip() and not os.environ.get(MODEL_ENV)
    try:
        return bentoml.models.get(reference)
    except NotFound as exc:
        if not waiting:
            raise RuntimeError(
                f"no model {reference!r} in the model store: serve a Bento built by "
                f"serving.packaging.build_bento, set {MODEL_ENV}=name:version, or set {WAIT_ENV}=<registered "
                "model> to wait for its champion"
            ) from exc
    if not can_follow:
        raise RuntimeError(
            f"{WAIT_ENV} serves the registry's champion: it needs {TRACKING_URI_ENV} and serving.follow_registry"
        )
    return None
