"""BentoML service: the champion `TabularScorer` behind ``/predict`` and ``/metadata``.

Which model is served is decided once, at start-up (`TabularModelService.__init__`):

1. ``MLOPS_BENTO_MODEL=name:version`` when set: that model from the active model store. For development,
   ``BENTOML_HOME=... MLOPS_BENTO_MODEL=crm-leads:abc bentoml serve serving.service:TabularModelService``
   from the repository root serves a model saved by `serving.packaging.save_model` without building a Bento.
   Inside a Bento that bundles models, the active store is the Bento's own.
2. Otherwise the Bento's model with the alias ``champion``, which `serving.packaging.build_bento` gives the
   model of every Bento it builds: ``bentoml serve <bento tag>`` serves exactly the model it was built with.
3. With neither, and ``MLOPS_SERVING_CHAMPION_OF=<registered model>`` set (the server stack's service, started
   before any champion exists): no model yet. ``/livez`` answers, ``/readyz`` and every scoring path answer 503
   until the registry's ``champion`` alias of that model exists; its version is then fetched, verified and
   served like any moved alias (``MLFLOW_TRACKING_URI`` and ``serving.follow_registry`` are required).
   ``MLOPS_SERVING_ENTITY_COLUMN`` names the entity id field in that mode.

The model's files are checked against the digest recorded at save time before they are loaded. If loading
fails, ``__init__`` raises and BentoML restarts the worker forever without becoming ready: whatever starts the
server must time out on ``/readyz``.

Requests: ``{"rows": [{feature: value, ...}, ...]}``, every row validated by a pydantic model generated from
the scorer's feature columns at start-up. Every feature key is required (``null`` means missing: the model
imputes it); keys that are not features are ignored, so clients may send whole CRM records and keep working
when a retrained model drops a feature. ``request_id`` (or ``id``) is optional per row; a random 128-bit hex id is
generated otherwise. Numeric features take JSON numbers (not strings or booleans); categorical features take strings,
numbers or booleans, passed unchanged to the fitted transform, which casts them to str exactly as it did in
training (``3`` and ``3.0`` both become ``"3"``). Malformed requests get HTTP 400 with pydantic's details, each
error's ``loc`` naming the field, e.g. ``["rows", 0, "deal_size"]``.

Limits (`ServingConfig`): ``NaN``/``Infinity`` literals are 400s naming the field (not "missing"); a string
longer than ``max_string_length`` is a 400; a body over ``max_body_bytes`` a 413 and a body that is not JSON a
415 (`RequestGuardMiddleware`, before anything is parsed). A numeric value more than ``out_of_range_margin``
training-range widths outside the training range is scored and flagged (``flags`` in the response, the log
and ``mlops_out_of_range_values_total``). Scoring goes from the validated rows straight to encoded arrays
(`FeatureTransform.encode_rows`, the same fitted transform as training), with no per-request DataFrame.
``/explain`` gives integrated-gradient attributions of the champion's score per raw feature (`models.artifact.explain`).
Prometheus ``/metrics`` adds, per model and variant, rows scored, score and handler-latency histograms,
out-of-range counts and the served version (``mlops_served_model``).

Auth: with the variable named by ``ServingConfig.token_env`` (default ``MLOPS_SERVING_TOKEN``) set, every path
except health and metrics needs ``Authorization: Bearer <token>``; unset, auth is off and start-up says so.
Every scored row is appended to ``$MLOPS_HOME/predictions/`` (see `monitoring.prediction_log`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import operator
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import bentoml
import numpy as np
import orjson
import torch
from bentoml.exceptions import NotFound
from pydantic import (
    AliasChoices,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError
from starlette.responses import JSONResponse, Response

from models.artifact.explain import explain as explain_rows
from models.artifact.scorer import FeatureColumn, TabularScorer
from models.governance.names import Alias, Variant
from monitoring.prediction_log import PredictionLog
from serving.config import ABConfig, ServingConfig
from serving.packaging import (
    ENTITY_COLUMN_KEY,
    MODEL_ALIAS,
    MODEL_NAME_KEY,
    MODEL_VERSION_KEY,
    SCORER_DIGEST_KEY,
    SERVING_CONFIG_ARG,
    verify_scorer_files,
)
from serving.registry import Refusal, RegistryFollower

# Under "bentoml" so that BentoML's server logging (INFO, its format) shows which model a worker serves.
logger = logging.getLogger("bentoml.serve.tabular")

MODEL_ENV = "MLOPS_BENTO_MODEL"  # name:version overriding the Bento's model (development)
# A registered model's name: with no model in the store, start not ready and serve its first champion.
WAIT_ENV = "MLOPS_SERVING_CHAMPION_OF"
ENTITY_ENV = "MLOPS_SERVING_ENTITY_COLUMN"  # the request field logged as the entity id in that mode
HOME_ENV = "MLOPS_HOME"  # prediction logs go to $MLOPS_HOME/predictions
PREDICTIONS_DIR = "predictions"
VARIANT = Variant.CHAMPION.value
# Probes and scrapers carry no token; everything else, API docs included, needs one when auth is on.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})


# --- request and response models ----------------------------------------------------------------------


def _category_validator(max_chars: int):
    """Validator of one categorical value: a string of at most ``max_chars``, a finite number, a boolean or
    null, passed on unchanged (the transform casts it to str as in training)."""

    def validate(value: object) -> str | int | float | bool | None:
        if isinstance(value, str):
            if len(value) > max_chars:
                raise PydanticCustomError(
                    "string_too_long",
                    "String should have at most {max_length} characters",
                    {"max_length": max_chars},
                )
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise PydanticCustomError("finite_number", "Input should be a finite number")
        if value is None or isinstance(value, int | float):  # bool is an int
            return value
        raise PydanticCustomError("category_type", "Input should be a string, number, boolean or null")

    return validate


def _identifier_validator(max_chars: int):
    """Validator of a request or entity id: a string of at most ``max_chars`` or an integer (made a string)."""

    def validate(value: object) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value is None:
            return None
        if not isinstance(value, str):
            raise PydanticCustomError("id_type", "Input should be a string or an integer")
        if len(value) > max_chars:
            raise PydanticCustomError(
                "string_too_long",
                "String should have at most {max_length} characters",
                {"max_length": max_chars},
            )
        return value

    return validate


# JSON numbers (ints too), finite: NaN and Infinity literals are 400s naming the field, not "missing".
NumericValue = Annotated[float, Strict(), AllowInfNan(False)] | None
AnyValue = str | int | float | bool | None


def build_request_model(
    columns: list[FeatureColumn], max_rows: int, entity_column: str | None = None, max_chars: int = 256
) -> type[BaseModel]:
    """Pydantic model of a predict request body for these feature columns (built once at start-up).

    Row fields get positional Python names (``f0``, ``f1``, ...) and the column name as alias, so any column
    name works (spaces, ``json``, ``model_...``) and errors still report the column name. ``entity_column``
    (the config's id column), when it is not a feature, is an optional string or integer field ``entity_id``.
    Strings (categorical values, ids) longer than ``max_chars`` are errors.
    """
    category = Annotated[
        AnyValue, PlainValidator(_category_validator(max_chars), json_schema_input_type=AnyValue)
    ]
    identifier = Annotated[
        str | None, PlainValidator(_identifier_validator(max_chars), json_schema_input_type=str | int | None)
    ]
    names = {column.name for column in columns}
    fields: dict[str, Any] = {
        f"f{i}": (
            NumericValue if column.kind == "numeric" else category,
            Field(validation_alias=column.name),
        )
        for i, column in enumerate(columns)
    }
    if entity_column and entity_column not in names:
        fields["entity_id"] = (identifier, Field(default=None, validation_alias=entity_column))
        names.add(entity_column)
    id_aliases = [alias for alias in ("request_id", "id") if alias not in names]
    if id_aliases:
        fields["request_id"] = (identifier, Field(default=None, validation_alias=AliasChoices(*id_aliases)))
    row_model = create_model("Row", __config__=ConfigDict(extra="ignore"), **fields)
    return create_model("PredictRequest", rows=(list[row_model], Field(min_length=1, max_length=max_rows)))


def rows_to_arrays(rows: list[BaseModel], columns: list[FeatureColumn]) -> tuple[np.ndarray, list[list[Any]]]:
    """Validated rows as the fast path's inputs (`FeatureTransform.encode_rows`): raw numerics [n, n_numeric]
    float64 (None -> NaN) and one list of raw values per categorical column, in model order."""
    numeric = [i for i, c in enumerate(columns) if c.kind == "numeric"]
    categorical = [i for i, c in enumerate(columns) if c.kind == "categorical"]
    if not rows:
        return np.empty((0, len(numeric))), [[] for _ in categorical]
    # One C-level attrgetter call per row, then a transpose: per-field Python getattr calls were the
    # largest cost of this step.
    fields = operator.attrgetter(*(f"f{i}" for i in range(len(columns))))
    by_field = list(zip(*(fields(row) if len(columns) > 1 else (fields(row),) for row in rows), strict=True))
    block = np.array([by_field[i] for i in numeric], dtype=np.float64).reshape(len(numeric), len(rows)).T
    return np.ascontiguousarray(block), [list(by_field[i]) for i in categorical]


def entity_ids(
    rows: list[BaseModel], columns: list[FeatureColumn], entity_column: str | None
) -> list[str | None]:
    """Each row's entity id: the entity field, or the feature of that name; None without one."""
    if not entity_column:
        return [None] * len(rows)
    feature = next((i for i, c in enumerate(columns) if c.name == entity_column), None)
    values = [getattr(row, f"f{feature}" if feature is not None else "entity_id", None) for row in rows]
    return [None if v is None else str(v) for v in values]


def range_flags(block: np.ndarray, scorer: TabularScorer, margin: float) -> list[list[str]]:
    """Per row, ``out_of_range:<column>`` for each raw numeric value (``block`` [n, n_numeric]) far outside
    the training range."""
    numeric = scorer.transform.spec.numeric
    flagged = scorer.transform.out_of_range(block, margin)  # [n, n_numeric]
    flags: list[list[str]] = [[] for _ in range(len(block))]
    for i, j in zip(*np.nonzero(flagged), strict=True):  # row-major: each row's columns in model order
        flags[i].append(f"out_of_range:{numeric[j]}")
    return flags


def request_ids(rows: list[BaseModel]) -> list[str]:
    """Each row's ``request_id``, or a new random 128-bit id (32 hex digits, as a UUID4's hex minus its
    version bits) for rows without one: one OS call per request instead of one UUID per row (14x cheaper)."""
    fresh = os.urandom(16 * len(rows)).hex()
    return [getattr(row, "request_id", None) or fresh[32 * i : 32 * i + 32] for i, row in enumerate(rows)]


class Prediction(BaseModel):
    request_id: str
    score: float = Field(description="Calibrated P(label = 1) in [0, 1].")
    contact: bool | None = Field(
        description="The model's decision at the threshold saved with it (capacity: per request); null when "
        "the model has no decision rule."
    )
    model_version: str
    variant: str = Field(
        default="champion", description="Which model answered: champion or challenger (A/B)."
    )
    flags: list[str] = Field(
        default_factory=list,
        description="Scored but suspect: `out_of_range:<column>` for a value far outside the training range.",
    )


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model_name: str
    model_version: str
    variant: str


class RowExplanation(BaseModel):
    request_id: str
    score: float = Field(description="Calibrated P(label = 1) of the row.")
    baseline_score: float = Field(
        description="Score of the baseline row (numerics at training medians, categoricals missing)."
    )
    attributions: dict[str, float] = Field(description="Raw feature -> its share of score - baseline_score.")
    gap: float = Field(description="score - baseline_score - sum(attributions): the integration's error.")


class ExplainResponse(BaseModel):
    explanations: list[RowExplanation]
    model_name: str
    model_version: str
    method: str = "integrated gradients of the calibrated score, 64 midpoint steps, from the baseline row"


class FeatureSchema(BaseModel):
    name: str
    kind: str


class ModelMetadata(BaseModel):
    model_name: str
    model_version: str
    bento_model_tag: str | None = Field(
        description="The BentoML model (name:version) the service started with; null when it started waiting for "
        "a first champion."
    )
    bento_tag: str | None = Field(description="The served Bento; null when serving from source.")
    source: str = Field(
        description="Where the served model came from: the Bento's model or a registry version."
    )
    following: str | None = Field(
        description="The registry alias followed and how often; null when not following."
    )
    ab: dict[str, Any] | None = Field(
        default=None,
        description="A/B or shadow mode, share, routing key and the candidate served; null when off.",
    )
    refused: list[dict[str, str]] = Field(
        description="Versions the alias pointed at that failed the integrity check or to load, with why."
    )
    variant: str
    max_rows: int
    features: list[FeatureSchema]
    metadata: dict[str, Any] = Field(description="Metadata saved with the model (run id, ...).")
    decision: dict[str, Any] | None = Field(
        default=None,
        description="The contact rule saved with the model: threshold, how it was chosen, capacity.",
    )


# --- configuration and auth -----------------------------------------------------------------------------


AB_ENV = (
    "MLOPS_SERVING_AB"  # JSON of serving.ab, overriding the Bento's: switch A/B or shadow without a rebuild
)


def serving_config() -> ServingConfig:
    """The ServingConfig the Bento was built with (a Bento argument; defaults when serving from source), with
    ``serving.ab`` replaced by ``$MLOPS_SERVING_AB`` (JSON, e.g. ``{"mode": "shadow"}``) when that is set."""
    arguments = vars(bentoml.use_arguments())
    config = ServingConfig.model_validate(arguments.get(SERVING_CONFIG_ARG) or {})
    override = os.environ.get(AB_ENV)
    if override:
        config = config.model_copy(update={"ab": ABConfig.model_validate_json(override)})
    return config


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


class RequestGuardMiddleware:
    """ASGI middleware in front of the APIs: 415 for a body that is not JSON, 413 for one over
    ``ServingConfig.max_body_bytes``.

    Every API takes JSON; BentoML would try to parse any other declared type as a form (and answer a
    multipart type without a boundary with a 500). A declared ``Content-Length`` over the limit is refused
    before anything is read; otherwise the body is read up to the limit (chunked bodies included) and
    replayed to the app, so nothing larger ever reaches parsing, validation or the prediction log.
    """

    def __init__(self, app: Any, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes or serving_config().max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        media_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if media_type != b"application/json" and not media_type.endswith(b"+json"):
            response = JSONResponse(
                {
                    "error": f"Content-Type must be application/json, got {media_type.decode(errors='replace')!r}"
                },
                status_code=415,
            )
            await response(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = JSONResponse(
            {"error": f"request body over the {self.max_bytes}-byte limit (serving.max_body_bytes)"},
            status_code=413,
        )
        await response(scope, receive, send)


# --- metrics ----------------------------------------------------------------------------------------------


@functools.cache
def _metrics() -> SimpleNamespace:
    """The service's Prometheus metrics, created once per worker process on first use.

    prometheus_client is imported here, not at module import: BentoML sets ``PROMETHEUS_MULTIPROC_DIR`` in
    the worker after importing this module, and a client imported before that never reaches ``/metrics``.
    """
    import prometheus_client as prom

    labels = ["model_name", "variant"]
    return SimpleNamespace(
        rows=prom.Counter("mlops_predictions", "Rows scored.", [*labels, "model_version"]),
        scores=prom.Histogram(
            "mlops_prediction_score",
            "Calibrated scores served.",
            labels,
            buckets=[i / 10 for i in range(1, 11)],
        ),
        latency=prom.Histogram(
            "mlops_predict_latency_seconds",
            "Time in the predict handler (validation, encoding, scoring, log).",
            labels,
            buckets=[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0],
        ),
        out_of_range=prom.Counter(
            "mlops_out_of_range_values",
            "Numeric values far outside the training range (scored, flagged).",
            [*labels, "column"],
        ),
        refused=prom.Counter(
            "mlops_model_refused",
            "Registry versions refused (integrity check or load failed).",
            ["model_name", "model_version"],
        ),
        served=prom.Gauge(
            "mlops_served_model",
            "1 for the model version a worker serves.",
            [*labels, "model_version"],
            multiprocess_mode="liveall",
        ),
    )


def observe_all(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every v of ``values``, with one increment per bucket touched instead of
    two per value (64 rows: 128 locked writes to the multiprocess files become a handful).

    Uses prometheus_client's own bucket bounds and values (``_upper_bounds``, ``_buckets``, ``_sum``, the
    fields its ``observe`` updates); a histogram without them is observed value by value. A unit test checks
    that both give the same exposition, so a prometheus_client that changes them fails there, not here.
    """
    bounds, buckets, total = (
        getattr(histogram, name, None) for name in ("_upper_bounds", "_buckets", "_sum")
    )
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values.tolist():
            histogram.observe(value)
        return
    # observe() puts v in the first bucket with v <= bound: searchsorted's "left" side.
    counts = np.bincount(np.searchsorted(np.asarray(bounds), values, side="left"), minlength=len(bounds))
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))
    total.inc(float(values.sum()))


# --- the service ----------------------------------------------------------------------------------------


def _prediction_log() -> PredictionLog | None:
    home = os.environ.get(HOME_ENV)
    if not home:
        logger.warning("%s is not set: predictions are NOT logged (monitoring will see nothing)", HOME_ENV)
        return None
    return PredictionLog(Path(home) / PREDICTIONS_DIR)


def ab_bucket(salt: str, key: str) -> float:
    """A stable position in [0, 1) for a routing key: the same lead always lands in the same place (BLAKE2b,
    not Python's per-process randomised ``hash``), so every worker and every restart routes it alike."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class ScoredRows:
    """Rows scored by one model version, column-wise (one list entry per row): the answers and what their
    log records need. Column-wise because per-row objects cost more than the forward at 64 rows."""

    model_name: str
    version: str
    scores: list[float]
    contacts: list[bool | None]
    flags: list[list[str]]
    features: list[dict[str, Any]]

    def log_lines(
        self, request_ids: list[str], entity_ids: list[str | None], variant: str, timestamp: str
    ) -> list[dict[str, Any]]:
        """One `PredictionRecord`-shaped dict per row (`PredictionLog.append_dicts`)."""
        name, version = self.model_name, self.version
        return [
            {
                "request_id": r,
                "variant": variant,
                "model_version": version,
                "features": f,
                "score": s,
                "timestamp": timestamp,
                "entity_id": e,
                "model_name": name,
                "flags": fl,
            }
            for r, e, s, f, fl in zip(
                request_ids, entity_ids, self.scores, self.features, self.flags, strict=True
            )
        ]


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
    ) -> ServedModel:
        request_model = build_request_model(
            scorer.feature_columns, config.max_batch_size, entity_column, config.max_string_length
        )
        explain_model = build_request_model(
            scorer.feature_columns, config.max_explain_rows, entity_column, config.max_string_length
        )
        return cls(scorer, name, version, source, entity_column, request_model, metadata, explain_model)

    @property
    def columns(self) -> list[FeatureColumn]:
        return self.scorer.feature_columns


# Tracing excluded on every path: no exporter is configured, so spans were pure cost (FACTS.md: +40% rps off).
# BentoML's access log off: the prediction log already records every scored row with its request id.
# Metrics stay on: /metrics serves ours too.
@bentoml.service(
    traffic={"timeout": 30}, tracing={"excluded_urls": ["/"]}, logging={"access": {"enabled": False}}
)
class TabularModelService:
    """Scores CRM rows with the champion; the Bento's model at start-up, then whatever the registry's
    ``champion`` alias points at (when ``MLFLOW_TRACKING_URI`` is set and ``serving.follow_registry``)."""

    def __init__(self) -> None:
        self.config = serving_config()
        torch.set_num_threads(self.config.torch_threads)  # this worker process only
        context = bentoml.server_context
        has_bento = context.bento_version not in ("", "not available")
        self.bento_tag = f"{context.bento_name}:{context.bento_version}" if has_bento else None
        self.prediction_log = _prediction_log()
        self.metrics = _metrics()
        self.refusals: list[Refusal] = []
        self.ab = self.config.ab
        self.candidate: ServedModel | None = (
            None  # the A/B challenger or the shadow, when the alias names one
        )
        self.served: ServedModel | None = None  # None only while waiting for a first champion (WAIT_ENV)
        self.model_tag: str | None = None
        model = self._bento_model()
        if model is None:
            self.model_name = os.environ[WAIT_ENV].strip()
            self.entity_column = os.environ.get(ENTITY_ENV) or None
            logger.warning(
                "no model in the store: not ready until %s@%s exists in the registry",
                self.model_name,
                Alias.CHAMPION,
            )
        else:
            metadata = dict(model.info.metadata)
            model_dir = Path(model.path)
            verify_scorer_files(model_dir, metadata.get(SCORER_DIGEST_KEY))
            self.model_tag = str(model.tag)
            self.served = ServedModel.of(
                TabularScorer.load(model_dir),
                name=str(metadata.get(MODEL_NAME_KEY, model.tag.name)),
                version=str(metadata.get(MODEL_VERSION_KEY, model.tag.version)),
                source=f"bento model {model.tag}",
                entity_column=str(metadata.get(ENTITY_COLUMN_KEY) or "") or None,
                metadata=metadata,
                config=self.config,
            )
            self.model_name, self.entity_column = self.served.name, self.served.entity_column
            self.metrics.served.labels(self.served.name, VARIANT, self.served.version).set(1)
            logger.info(
                "serving %s version %s (%s, Bento %s)",
                self.served.name,
                self.served.version,
                self.served.source,
                self.bento_tag,
            )
        self.follower = self._follow()
        self.candidate_follower = self._follow_candidate()

    def _bento_model(self) -> bentoml.Model | None:
        """The model to serve from the store; None when there is none and WAIT_ENV says to wait for one."""
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
        if not (self.config.follow_registry and os.environ.get("MLFLOW_TRACKING_URI")):
            raise RuntimeError(
                f"{WAIT_ENV} serves the registry's champion: it needs MLFLOW_TRACKING_URI and serving.follow_registry"
            )
        return None

    def __is_ready__(self) -> bool:
        """BentoML's /readyz: ready once a model is served (at once, unless waiting for a first champion)."""
        return self.served is not None

    def _waiting(self) -> Response:
        """The answer of every scoring path before a first champion: a 503 that says what the service waits for
        (as a response: BentoML replaces the message of a raised 5xx with a generic one)."""
        error = (
            f"no champion of {self.model_name} yet: this service serves {self.model_name}@{Alias.CHAMPION} "
            "as soon as the registry has one"
        )
        retry = str(max(1, math.ceil(self.config.poll_interval_seconds)))
        return Response(
            orjson.dumps({"error": error}),
            status_code=503,
            media_type="application/json",
            headers={"Retry-After": retry},
        )

    def _follow(self) -> RegistryFollower | None:
        """Start polling the registry's champion alias, when there is a registry to poll."""
        tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not (self.config.follow_registry and tracking_uri):
            logger.info(
                "not following the registry (%s): serving the Bento's model only",
                "serving.follow_registry is off" if tracking_uri else "MLFLOW_TRACKING_URI is not set",
            )
            return None
        follower = RegistryFollower(
            tracking_uri,
            self.model_name,
            Alias.CHAMPION.value,
            self.config.poll_interval_seconds,
            None if self.served is None else self.served.version,
            swap=self._swap,
            refuse=self._refuse,
        )
        follower.start()
        return follower

    def _follow_candidate(self) -> RegistryFollower | None:
        """With serving.ab on, follow the ``candidate`` alias too (set only by ``mlops ab start``)."""
        tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
        if self.ab.mode == "off":
            return None
        if not tracking_uri:
            logger.warning(
                "serving.ab.mode is %s but MLFLOW_TRACKING_URI is not set: no candidate to serve",
                self.ab.mode,
            )
            return None
        follower = RegistryFollower(
            tracking_uri,
            self.model_name,
            Alias.CANDIDATE.value,
            self.config.poll_interval_seconds,
            None,
            swap=self._swap_candidate,
            refuse=self._refuse,
            missing=self._drop_candidate,
        )
        follower.start()
        return follower

    def _swap_candidate(self, version: str, scorer: TabularScorer) -> None:
        name = self.model_name
        self.candidate = ServedModel.of(
            scorer,
            name=name,
            version=version,
            source=f"registry models:/{name}/{version}",
            entity_column=self.entity_column,
            metadata={MODEL_NAME_KEY: name, MODEL_VERSION_KEY: version},
            config=self.config,
        )
        self.metrics.served.labels(name, self._candidate_variant, version).set(1)

    def _drop_candidate(self) -> None:
        if self.candidate is not None:
            logger.info(
                "the %s alias is gone: %s v%s no longer serves",
                Alias.CANDIDATE,
                self.candidate.name,
                self.candidate.version,
            )
            self.metrics.served.labels(
                self.candidate.name, self._candidate_variant, self.candidate.version
            ).set(0)
            self.candidate = None

    @property
    def _candidate_variant(self) -> str:
        return Variant.SHADOW.value if self.ab.mode == "shadow" else Variant.CHALLENGER.value

    def _routing_keys(
        self, served: ServedModel, rows: list[BaseModel], entities: list[str | None]
    ) -> list[str | None]:
        key = self.ab.key or served.entity_column
        if key is None or key == served.entity_column:
            return entities
        index = next((i for i, c in enumerate(served.columns) if c.name == key), None)
        return (
            [None] * len(rows)
            if index is None
            else [None if (v := getattr(row, f"f{index}")) is None else str(v) for row in rows]
        )

    def _swap(self, version: str, scorer: TabularScorer) -> None:
        old, name = self.served, self.model_name
        self.served = ServedModel.of(
            scorer,
            name=name,
            version=version,
            source=f"registry models:/{name}/{version}",
            entity_column=self.entity_column,
            metadata={MODEL_NAME_KEY: name, MODEL_VERSION_KEY: version},
            config=self.config,
        )
        if old is not None:
            self.metrics.served.labels(name, VARIANT, old.version).set(0)
        self.metrics.served.labels(name, VARIANT, version).set(1)

    def _refuse(self, refusal: Refusal) -> None:
        self.refusals.append(refusal)
        self.metrics.refused.labels(self.model_name, refusal.version).inc()

    @bentoml.on_shutdown
    def close_prediction_log(self) -> None:
        for follower in (self.follower, self.candidate_follower):
            if follower is not None:
                follower.stop()
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
        started = time.perf_counter()
        served, candidate = self.served, self.candidate  # one pair of versions for the whole request
        if served is None:
            return self._waiting()  # type: ignore[return-value]
        request = served.request_model.model_validate({"rows": rows})
        ids = request_ids(request.rows)
        entities = entity_ids(request.rows, served.columns, served.entity_column)
        variants = [Variant.CHAMPION.value] * len(rows)
        if candidate is not None and self.ab.mode == "ab":
            keys = self._routing_keys(served, request.rows, entities)
            share = self.ab.challenger_share
            variants = [
                Variant.CHALLENGER.value
                if k is not None and ab_bucket(served.name, k) < share
                else Variant.CHAMPION.value
                for k in keys
            ]
        # Each variant scores its own rows; `parts` holds (positions in the request, their scored rows).
        parts: list[tuple[list[int], str, ScoredRows]] = []
        for variant, model in ((Variant.CHAMPION.value, served), (Variant.CHALLENGER.value, candidate)):
            picked = [i for i, v in enumerate(variants) if v == variant]
            if not picked or model is None:
                continue
            scored = self._score(
                model, [rows[i] for i in picked] if model is not served else None, request, picked
            )
            if scored is None:  # the challenger cannot read these rows (another schema): the champion answers
                variant, scored = Variant.CHAMPION.value, self._score(served, None, request, picked)
            parts.append((picked, variant, scored))
        now = datetime.now(UTC).isoformat()  # one time for the request's rows
        lines: list[dict[str, Any]] = []
        for picked, variant, scored in parts:
            lines += scored.log_lines([ids[i] for i in picked], [entities[i] for i in picked], variant, now)
        if candidate is not None and self.ab.mode == "shadow":
            shadow = self._score(candidate, rows, request, list(range(len(rows))))
            if shadow is not None:  # scored on every request, logged, never returned
                lines += shadow.log_lines(ids, entities, Variant.SHADOW.value, now)
                self._observe(candidate, Variant.SHADOW.value, shadow, None)
        if self.prediction_log is not None:
            self.prediction_log.append_dicts(lines)
        timed: set[str] = set()  # the request's latency once per variant, also when two parts share one
        for _, variant, scored in parts:
            model = served if variant == Variant.CHAMPION.value else candidate
            self._observe(model, variant, scored, None if variant in timed else started)
            timed.add(variant)
        predictions: list[dict[str, Any]] = [{}] * len(rows)
        for picked, variant, scored in parts:
            for i, score, contact, flags in zip(
                picked, scored.scores, scored.contacts, scored.flags, strict=True
            ):
                predictions[i] = {
                    "request_id": ids[i],
                    "score": score,
                    "contact": contact,
                    "model_version": scored.version,
                    "variant": variant,
                    "flags": flags,
                }
        answered = {variant for _, variant, _ in parts}
        # A `PredictResponse` written straight to JSON: every field is already of its schema type, and
        # building one pydantic object per row for BentoML to serialise cost more than the network forward.
        body = {
            "predictions": predictions,
            "model_name": served.name,
            "model_version": served.version,
            "variant": answered.pop() if len(answered) == 1 else "mixed",
        }
        return Response(orjson.dumps(body), media_type="application/json")  # type: ignore[return-value]

    def _score(
        self, model: ServedModel, raw: list[dict[str, Any]] | None, request: BaseModel, picked: list[int]
    ) -> ScoredRows | None:
        """Score rows ``picked`` of the request with ``model``: the champion's validated rows when ``raw`` is
        None, else ``raw`` validated by ``model``'s own request model (None when they do not validate)."""
        if raw is None:
            validated = [request.rows[i] for i in picked]
        else:
            try:
                validated = model.request_model.model_validate({"rows": raw}).rows
            except ValidationError as exc:
                logger.warning(
                    "%s v%s cannot score these rows (%d errors): the champion answers",
                    model.name,
                    model.version,
                    exc.error_count(),
                )
                return None
        columns = model.columns
        # The fast path: validated rows straight to encoded arrays by the fitted transform, no DataFrame.
        numeric, categorical = rows_to_arrays(validated, columns)
        scorer = model.scorer
        scores = scorer.predict_proba_encoded(scorer.transform.encode_rows(numeric, categorical))
        contacts = (
            scorer.decision.decide(scores).tolist() if scorer.decision is not None else [None] * len(scores)
        )
        flags = range_flags(numeric, scorer, self.config.out_of_range_margin)
        # Logged features as validated (None for missing), built column-wise from what was already extracted.
        names = [c.name for c in columns if c.kind == "numeric"] + [
            c.name for c in columns if c.kind == "categorical"
        ]
        numeric_values = (
            np.where(np.isnan(numeric), None, numeric).tolist() if numeric.size else [[]] * len(validated)
        )
        features = [
            dict(zip(names, [*n, *c], strict=True))
            for n, c in zip(
                numeric_values,
                zip(*categorical, strict=True) if categorical else [()] * len(validated),
                strict=True,
            )
        ]
        return ScoredRows(model.name, model.version, scores.tolist(), contacts, flags, features)

    def _observe(self, model: ServedModel, variant: str, scored: ScoredRows, started: float | None) -> None:
        metrics, labels = self.metrics, (model.name, variant)
        metrics.rows.labels(*labels, model.version).inc(len(scored.scores))
        observe_all(metrics.scores.labels(*labels), np.asarray(scored.scores, dtype=np.float64))
        for row_flags in scored.flags:
            for flag in row_flags:
                metrics.out_of_range.labels(*labels, flag.removeprefix("out_of_range:")).inc()
        if started is not None:
            metrics.latency.labels(*labels).observe(time.perf_counter() - started)

    @bentoml.api(route="/explain")
    async def explain(
        self,
        rows: Annotated[list[dict[str, Any]], Field(description="Rows to explain: feature name -> value.")],
    ) -> ExplainResponse:
        """Per-row attributions of the champion's score to each raw feature (integrated gradients from the
        baseline row: numerics at their training medians, categoricals missing). They add up to
        ``score - baseline_score`` up to ``gap``. At most ``serving.max_explain_rows`` rows per request."""
        served = self.served
        if served is None:
            return self._waiting()  # type: ignore[return-value]
        request = served.explain_model.model_validate({"rows": rows})
        numeric, categorical = rows_to_arrays(request.rows, served.columns)
        encoded = served.scorer.transform.encode_rows(numeric, categorical)
        ids = request_ids(request.rows)
        return ExplainResponse(
            explanations=[
                RowExplanation(
                    request_id=request_id,
                    score=e.score,
                    baseline_score=e.baseline_score,
                    attributions=e.attributions,
                    gap=e.gap,
                )
                for request_id, e in zip(ids, explain_rows(served.scorer, encoded), strict=True)
            ],
            model_name=served.name,
            model_version=served.version,
        )

    @bentoml.api(route="/metadata")
    async def metadata(self) -> ModelMetadata:
        """What is being served: model name and version, where it came from, the feature schema, the Bento,
        whether the registry is followed and which versions were refused."""
        served = self.served
        if served is None:
            return self._waiting()  # type: ignore[return-value]
        follower = self.follower
        return ModelMetadata(
            model_name=served.name,
            model_version=served.version,
            bento_model_tag=self.model_tag,
            bento_tag=self.bento_tag,
            source=served.source,
            following=None
            if follower is None
            else f"{follower.name}@{follower.alias} every {follower.interval:g} s",
            refused=[{"version": r.version, "reason": r.reason} for r in self.refusals],
            ab=None
            if self.ab.mode == "off"
            else {
                "mode": self.ab.mode,
                "challenger_share": self.ab.challenger_share,
                "key": self.ab.key or served.entity_column,
                "candidate_version": None if self.candidate is None else self.candidate.version,
            },
            variant=VARIANT,
            max_rows=self.config.max_batch_size,
            features=[FeatureSchema(name=c.name, kind=c.kind) for c in served.columns],
            metadata=served.metadata,
            decision=None if served.scorer.decision is None else served.scorer.decision.to_dict(),
        )


TabularModelService.add_asgi_middleware(RequestGuardMiddleware)
TabularModelService.add_asgi_middleware(BearerTokenMiddleware)
