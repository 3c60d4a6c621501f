"""BentoML service: the champion `TabularScorer` behind ``/predict`` and ``/metadata``.

Which model is served is decided once, at start-up (`TabularModelService.__init__`):

1. ``MLOPS_BENTO_MODEL=name:version`` when set: that model from the active model store. For development,
   ``BENTOML_HOME=... MLOPS_BENTO_MODEL=crm-leads:abc bentoml serve serving.service:TabularModelService``
   from the repository root serves a model saved by `serving.packaging.save_model` without building a Bento.
   Inside a Bento that bundles models, the active store is the Bento's own.
2. Otherwise the Bento's model with the alias ``champion``, which `serving.packaging.build_bento` gives the
   model of every Bento it builds: ``bentoml serve <bento tag>`` serves exactly the model it was built with.

The model's files are checked against the digest recorded at save time before they are loaded. If loading
fails, ``__init__`` raises and BentoML restarts the worker forever without becoming ready: whatever starts the
server must time out on ``/readyz``.

Requests: ``{"rows": [{feature: value, ...}, ...]}``, every row validated by a pydantic model generated from
the scorer's feature columns at start-up. Every feature key is required (``null`` means missing: the model
imputes it); keys that are not features are ignored, so clients may send whole CRM records and keep working
when a retrained model drops a feature. ``request_id`` (or ``id``) is optional per row; a UUID is generated
otherwise. Numeric features take JSON numbers (not strings or booleans); categorical features take strings,
numbers or booleans, passed unchanged to the fitted transform, which casts them to str exactly as it did in
training (``3`` and ``3.0`` both become ``"3"``). Malformed requests get HTTP 400 with pydantic's details, each
error's ``loc`` naming the field, e.g. ``["rows", 0, "deal_size"]``.

Auth: with the variable named by ``ServingConfig.token_env`` (default ``MLOPS_SERVING_TOKEN``) set, every path
except health and metrics needs ``Authorization: Bearer <token>``; unset, auth is off and start-up says so.
Every scored row is appended to ``$MLOPS_HOME/predictions/`` (see `monitoring.prediction_log`).
"""

from __future__ import annotations

import hmac
import logging
import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
import pandas as pd
from bentoml.exceptions import NotFound
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictFloat,
    create_model,
)
from pydantic_core import PydanticCustomError
from starlette.responses import JSONResponse

from models.names import Variant
from models.scorer import FeatureColumn, TabularScorer
from monitoring.prediction_log import PredictionLog, PredictionRecord
from serving.config import ServingConfig
from serving.packaging import (
    ENTITY_COLUMN_KEY,
    MODEL_ALIAS,
    MODEL_NAME_KEY,
    MODEL_VERSION_KEY,
    SCORER_DIGEST_KEY,
    SERVING_CONFIG_ARG,
    verify_scorer_files,
)

# Under "bentoml" so that BentoML's server logging (INFO, its format) shows which model a worker serves.
logger = logging.getLogger("bentoml.serve.tabular")

MODEL_ENV = "MLOPS_BENTO_MODEL"  # name:version overriding the Bento's model (development)
HOME_ENV = "MLOPS_HOME"  # prediction logs go to $MLOPS_HOME/predictions
PREDICTIONS_DIR = "predictions"
VARIANT = Variant.CHAMPION.value
# Probes and scrapers carry no token; everything else, API docs included, needs one when auth is on.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})


# --- request and response models ----------------------------------------------------------------------


def _category(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    raise PydanticCustomError("category_type", "Input should be a string, number, boolean or null")


def _request_id(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


NumericValue = StrictFloat | None  # JSON numbers (ints too); strings and booleans are errors
CategoryValue = Annotated[
    str | int | float | bool | None,
    PlainValidator(_category, json_schema_input_type=str | int | float | bool | None),
]
RequestId = Annotated[str | None, BeforeValidator(_request_id)]


def build_request_model(
    columns: list[FeatureColumn], max_rows: int, entity_column: str | None = None
) -> type[BaseModel]:
    """Pydantic model of a predict request body for these feature columns (built once at start-up).

    Row fields get positional Python names (``f0``, ``f1``, ...) and the column name as alias, so any column
    name works (spaces, ``json``, ``model_...``) and errors still report the column name. ``entity_column``
    (the config's id column), when it is not a feature, is an optional string or integer field ``entity_id``.
    """
    names = {column.name for column in columns}
    fields: dict[str, Any] = {
        f"f{i}": (
            NumericValue if column.kind == "numeric" else CategoryValue,
            Field(validation_alias=column.name),
        )
        for i, column in enumerate(columns)
    }
    if entity_column and entity_column not in names:
        fields["entity_id"] = (RequestId, Field(default=None, validation_alias=entity_column))
        names.add(entity_column)
    id_aliases = [alias for alias in ("request_id", "id") if alias not in names]
    if id_aliases:
        fields["request_id"] = (RequestId, Field(default=None, validation_alias=AliasChoices(*id_aliases)))
    row_model = create_model("Row", __config__=ConfigDict(extra="ignore"), **fields)
    return create_model("PredictRequest", rows=(list[row_model], Field(min_length=1, max_length=max_rows)))


def rows_to_frame(rows: list[BaseModel], columns: list[FeatureColumn]) -> pd.DataFrame:
    """Validated rows as the frame the scorer expects: float64 numerics (None -> NaN), object categoricals.

    Dtypes are set per column so that an all-null numeric column stays numeric.
    """
    data: dict[str, np.ndarray] = {}
    for i, column in enumerate(columns):
        values = [getattr(row, f"f{i}") for row in rows]
        if column.kind == "numeric":
            data[column.name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            data[column.name] = np.array(values, dtype=object)
    return pd.DataFrame(data)


def entity_ids(rows: list[BaseModel], columns: list[FeatureColumn], entity_column: str | None) -> list[str | None]:
    """Each row's entity id: the entity field, or the feature of that name; None without one."""
    if not entity_column:
        return [None] * len(rows)
    feature = next((i for i, c in enumerate(columns) if c.name == entity_column), None)
    values = [getattr(row, f"f{feature}" if feature is not None else "entity_id", None) for row in rows]
    return [None if v is None else str(v) for v in values]


def range_flags(frame: pd.DataFrame, scorer: TabularScorer, margin: float) -> list[list[str]]:
    """Per row, ``out_of_range:<column>`` for each numeric value far outside the training range."""
    transform = scorer.transform
    numeric = transform.spec.numeric
    if not numeric:
        return [[] for _ in range(len(frame))]
    flagged = transform.out_of_range(frame[numeric].to_numpy(dtype=np.float64), margin)  # [n, k]
    return [[f"out_of_range:{numeric[j]}" for j in np.flatnonzero(row)] for row in flagged]


class Prediction(BaseModel):
    request_id: str
    score: float = Field(description="Calibrated P(label = 1) in [0, 1].")
    contact: bool | None = Field(
        description="The model's decision at the threshold saved with it (capacity: per request); null when "
        "the model has no decision rule."
    )
    model_version: str
    flags: list[str] = Field(
        default_factory=list,
        description="Scored but suspect: `out_of_range:<column>` for a value far outside the training range.",
    )


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model_name: str
    model_version: str
    variant: str


class FeatureSchema(BaseModel):
    name: str
    kind: str


class ModelMetadata(BaseModel):
    model_name: str
    model_version: str
    bento_model_tag: str = Field(description="The BentoML model (name:version) being served.")
    bento_tag: str | None = Field(description="The served Bento; null when serving from source.")
    variant: str
    max_rows: int
    features: list[FeatureSchema]
    metadata: dict[str, Any] = Field(description="Metadata saved with the model (run id, ...).")
    decision: dict[str, Any] | None = Field(
        default=None,
        description="The contact rule saved with the model: threshold, how it was chosen, capacity.",
    )


# --- configuration and auth -----------------------------------------------------------------------------


def serving_config() -> ServingConfig:
    """The ServingConfig the Bento was built with (a Bento argument); defaults when serving from source."""
    arguments = vars(bentoml.use_arguments())
    return ServingConfig.model_validate(arguments.get(SERVING_CONFIG_ARG) or {})


class BearerTokenMiddleware:
    """ASGI middleware: 401 unless ``Authorization: Bearer <token>`` matches the configured token.

    The token is read from the environment when the app is built (worker start-up); no token, no auth.
    """

    def __init__(self, app: Any, token_env: str | None = None) -> None:
        self.app = app
        self.token_env = token_env or serving_config().token_env
        token = os.environ.get(self.token_env, "")
        self._expected = f"Bearer {token}".encode() if token else None
        if self._expected is None:
            logger.warning("%s is not set: bearer-token auth is OFF, every endpoint is open", self.token_env)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._expected is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(supplied, self._expected):  # constant time: no token oracle
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {"error": "missing or invalid bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


# --- the service ----------------------------------------------------------------------------------------


def _prediction_log() -> PredictionLog | None:
    home = os.environ.get(HOME_ENV)
    if not home:
        logger.warning("%s is not set: predictions are NOT logged (monitoring will see nothing)", HOME_ENV)
        return None
    return PredictionLog(Path(home) / PREDICTIONS_DIR)


@bentoml.service(traffic={"timeout": 30})
class TabularModelService:
    """Scores CRM rows with the champion; one model load per worker, at start-up."""

    def __init__(self) -> None:
        self.config = serving_config()
        reference = os.environ.get(MODEL_ENV) or MODEL_ALIAS
        try:
            model = bentoml.models.get(reference)
        except NotFound as exc:
            raise RuntimeError(
                f"no model {reference!r} in the model store: serve a Bento built by "
                f"serving.packaging.build_bento, or set {MODEL_ENV}=name:version"
            ) from exc
        metadata = dict(model.info.metadata)
        model_dir = Path(model.path)
        verify_scorer_files(model_dir, metadata.get(SCORER_DIGEST_KEY))
        self.scorer = TabularScorer.load(model_dir)
        self.columns = self.scorer.feature_columns
        self.entity_column = str(metadata.get(ENTITY_COLUMN_KEY) or "") or None
        self.request_model = build_request_model(self.columns, self.config.max_batch_size, self.entity_column)
        self.model_tag = str(model.tag)
        self.model_name = str(metadata.get(MODEL_NAME_KEY, model.tag.name))
        self.model_version = str(metadata.get(MODEL_VERSION_KEY, model.tag.version))
        self.model_metadata = metadata
        context = bentoml.server_context
        has_bento = context.bento_version not in ("", "not available")
        self.bento_tag = f"{context.bento_name}:{context.bento_version}" if has_bento else None
        self.prediction_log = _prediction_log()
        logger.info(
            "serving %s version %s (BentoML model %s, Bento %s)",
            self.model_name,
            self.model_version,
            self.model_tag,
            self.bento_tag,
        )

    @bentoml.on_shutdown
    def close_prediction_log(self) -> None:
        if self.prediction_log is not None:
            self.prediction_log.close()

    # `async def`: scoring up to max_batch_size rows with a small MLP takes about a millisecond, less than a
    # thread hand-off, and FACTS.md measured async APIs ~60% faster. No adaptive batching: requests already
    # carry rows in batches, and short batching windows made BentoML shed load with 503s.
    @bentoml.api(route="/predict")
    async def predict(
        self,
        rows: Annotated[list[dict[str, Any]], Field(description="Rows to score: feature name -> value.")],
    ) -> PredictResponse:
        """Score each row; validation errors are raised as pydantic errors, which BentoML answers with 400."""
        request = self.request_model.model_validate({"rows": rows})
        frame = rows_to_frame(request.rows, self.columns)
        scores = self.scorer.predict_proba(frame)  # [n] float64
        decision = self.scorer.decision
        contacts = decision.decide(scores).tolist() if decision is not None else [None] * len(scores)
        ids = [getattr(row, "request_id", None) or uuid.uuid4().hex for row in request.rows]
        entities = entity_ids(request.rows, self.columns, self.entity_column)
        flags = range_flags(frame, self.scorer, self.config.out_of_range_margin)
        if self.prediction_log is not None:
            self.prediction_log.append(
                [
                    PredictionRecord(
                        request_id=request_id,
                        variant=VARIANT,
                        model_version=self.model_version,
                        features={c.name: getattr(row, f"f{i}") for i, c in enumerate(self.columns)},
                        score=float(score),
                        entity_id=entity,
                        model_name=self.model_name,
                        flags=row_flags,
                    )
                    for request_id, row, score, entity, row_flags in zip(
                        ids, request.rows, scores, entities, flags, strict=True
                    )
                ]
            )
        return PredictResponse(
            predictions=[
                Prediction(
                    request_id=request_id,
                    score=float(score),
                    contact=contact,
                    model_version=self.model_version,
                    flags=row_flags,
                )
                for request_id, score, contact, row_flags in zip(ids, scores, contacts, flags, strict=True)
            ],
            model_name=self.model_name,
            model_version=self.model_version,
            variant=VARIANT,
        )

    @bentoml.api(route="/metadata")
    async def metadata(self) -> ModelMetadata:
        """What is being served: model name and version, feature schema, Bento and model tags."""
        return ModelMetadata(
            model_name=self.model_name,
            model_version=self.model_version,
            bento_model_tag=self.model_tag,
            bento_tag=self.bento_tag,
            variant=VARIANT,
            max_rows=self.config.max_batch_size,
            features=[FeatureSchema(name=c.name, kind=c.kind) for c in self.columns],
            metadata=self.model_metadata,
            decision=None if self.scorer.decision is None else self.scorer.decision.to_dict(),
        )


TabularModelService.add_asgi_middleware(BearerTokenMiddleware)
