"""BentoML service: the champion `TabularScorer` behind ``/predict``, ``/explain`` and ``/metadata``, and in
A/B or shadow mode the candidate beside it.

What is served changes while the service runs:

1. At start-up, the model of the store (`serving.served.model_in_store`): ``MLOPS_BENTO_MODEL=name:version``
   when set, otherwise the Bento's model (alias ``champion``), its files checked against the digest saved
   with it. If that fails, ``__init__`` raises and BentoML restarts the worker forever without becoming
   ready: whatever starts the server must time out on ``/readyz``. With no model in the store and
   ``MLOPS_SERVING_CHAMPION_OF=<registered model>`` set (the server stack's service, started before any
   champion exists), nothing yet: ``/livez`` answers, ``/readyz`` and every scoring path answer 503 until the
   registry's ``champion`` alias of that model exists (``MLOPS_SERVING_ENTITY_COLUMN`` names the entity id
   field in that mode).
2. Then, with ``MLFLOW_TRACKING_URI`` set and ``serving.follow_registry`` on, each worker polls the
   registry's ``champion`` alias every ``serving.poll_interval_seconds`` and serves a moved one once it is
   fetched and verified, without a restart (`serving.following`); a version that fails is refused and the
   served one keeps serving.
3. With ``serving.ab.mode`` ab or shadow, the ``candidate`` alias is followed the same way: as challenger it
   answers a stable share of the entities (`serving.routing`), as shadow it scores every row, logged and
   never returned.

A request reads the served models once and is scored by those versions from start to end. Requests and
their 400s: `serving.schemas`; auth (401), body size (413) and type (415): `serving.middleware`. Every scored
row is appended to ``$MLOPS_HOME/predictions/`` (`monitoring.prediction_log`); Prometheus ``/metrics`` adds
the service's own metrics (`serving.metrics`).
"""

from __future__ import annotations

import gc
import logging
import math
import os
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import bentoml
import orjson
import torch
from pydantic import Field
from starlette.responses import Response

from models.artifact.explain import explain as explain_rows
from models.artifact.explain import method as explain_method
from models.governance.names import Alias, Variant
from monitoring.prediction_log import PredictionLog
from serving.encoding import entity_ids, request_ids, rows_to_arrays
from serving.features import Completed, FeatureStoreUnavailable, LookupRefused, stale_rows
from serving.following import FollowedAlias, follow_registry
from serving.metrics import observe_lookups, service_metrics
from serving.middleware import BearerTokenMiddleware, OverloadMiddleware, RequestGuardMiddleware
from serving.registry import Refusal
from serving.routing import assign_variants
from serving.schemas import (
    ExplainResponse,
    FeatureSchema,
    ModelMetadata,
    PredictResponse,
    RowExplanation,
    ServedVariant,
)
from serving.scoring import predict_response_json, score_raw, score_split
from serving.served import ServedModel, model_in_store
from serving.settings import (
    ENTITY_ENV,
    HOME_ENV,
    LOGGER_NAME,
    WAIT_ENV,
    prediction_log_dir,
    service_name,
    serving_config,
    tracking_uri,
)

logger = logging.getLogger(LOGGER_NAME)


# Tracing excluded on every path: no exporter is configured, so spans were pure cost (turning them off gave
# about 40% more requests/s here). BentoML's access log off: the prediction log already records every scored
# row with its request id. Metrics stay on: /metrics serves ours too.
@bentoml.service(
    name=service_name(),
    workers=serving_config().workers,
    traffic={"timeout": 30},
    tracing={"excluded_urls": ["/"]},
    logging={"access": {"enabled": False}},
)
class TabularModelService:
    """Scores CRM rows with the champion (and the candidate, in A/B or shadow mode), following the registry's
    aliases as the module doc says."""

    def __init__(self) -> None:
        self.config = serving_config()
        self.ab = self.config.ab
        torch.set_num_threads(self.config.torch_threads)  # this worker process only
        context = bentoml.server_context
        has_bento = context.bento_version not in ("", "not available")
        self.bento_tag = f"{context.bento_name}:{context.bento_version}" if has_bento else None
        log_dir = prediction_log_dir()
        if log_dir is None:
            logger.warning(
                "%s is not set: predictions are NOT logged (monitoring will see nothing)", HOME_ENV
            )
        retention = self.config.prediction_log
        self.prediction_log = (
            None
            if log_dir is None
            else PredictionLog(
                log_dir,
                max_file_bytes=retention.max_file_bytes,
                max_total_bytes=retention.max_total_bytes,
            )
        )
        self.metrics = service_metrics()
        self.refusals: list[Refusal] = []
        registry = tracking_uri()
        model = model_in_store(can_follow=self.config.follow_registry and registry is not None)
        first = None if model is None else ServedModel.from_bento(model, self.config)
        self.model_tag = None if model is None else str(model.tag)
        if first is None:
            self.model_name = os.environ[WAIT_ENV].strip()
            self.entity_column = os.environ.get(ENTITY_ENV) or None
            logger.warning(
                "no model in the store: not ready until %s@%s exists in the registry",
                self.model_name,
                Alias.CHAMPION,
            )
        else:
            self.model_name, self.entity_column = first.name, first.entity_column
        self.champion = self._followed(Alias.CHAMPION, Variant.CHAMPION)
        self.candidate = self._followed(
            Alias.CANDIDATE,
            Variant.SHADOW if self.ab.mode == "shadow" else Variant.CHALLENGER,
            drop_when_gone=True,  # `mlops ab stop` removes the alias: the candidate stops serving
        )
        if first is not None:
            self.champion.serve(first)
            logger.info(
                "serving %s version %s (%s, Bento %s)",
                first.name,
                first.version,
                first.source,
                self.bento_tag,
            )
        follow_registry(self.champion, self.candidate, self.config, registry)
        # Everything allocated so far (torch, pandas, BentoML, the model) lives as long as the worker: moved
        # out of the collector's reach, so that a full collection scans only what requests allocate.
        gc.collect()
        gc.freeze()

    def _followed(self, alias: Alias, variant: Variant, *, drop_when_gone: bool = False) -> FollowedAlias:
        return FollowedAlias(
            alias.value,
            variant.value,
            model_name=self.model_name,
            entity_column=self.entity_column,
            config=self.config,
            gauge=self.metrics.served,
            quantiles=self.metrics.reference_quantile,
            refuse=self._refuse,
            drop_when_gone=drop_when_gone,
        )

    def __is_ready__(self) -> bool:
        """BentoML's /readyz: ready once a model is served (at once, unless waiting for a first champion)."""
        return self.champion.model is not None

    def _refuse(self, refusal: Refusal) -> None:
        self.refusals.append(refusal)
        self.metrics.refused.labels(self.model_name, refusal.version).inc()

    def _complete(
        self, served: ServedModel, rows: list[dict[str, Any]], now: datetime
    ) -> Completed | Response:
        """``rows`` with the features they leave out read by entity id through the served model's feature
        service (`serving.features`), or the 4xx/503 that answers the request instead."""
        assert served.features is not None
        try:
            completed = served.features.complete(rows, now)
        except LookupRefused as exc:
            return _json_error(exc.body(), exc.status)
        except FeatureStoreUnavailable as exc:
            logger.error("%s", exc)
            retry = {"Retry-After": str(max(1, math.ceil(self.config.poll_interval_seconds)))}
            return _json_error({"error": str(exc)}, 503, retry)
        if self.config.stale_features == "refuse":
            refused = stale_rows(completed, served.features.entity)
            if refused is not None:
                return _json_error(refused.body(), refused.status)
        return completed

    def _waiting(self) -> Response:
        """The answer of every scoring path before a first champion: a 503 that says what the service waits for
        (as a response: BentoML replaces the message of a raised 5xx with a generic one)."""
        error = (
            f"no champion of {self.model_name} yet: this service serves {self.model_name}@{Alias.CHAMPION} "
            "as soon as the registry has one"
        )
        retry = str(max(1, math.ceil(self.config.poll_interval_seconds)))
        return _json_error({"error": error}, 503, {"Retry-After": retry})

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """Stop following the registry, then flush and close the prediction log."""
        self.champion.stop()
        self.candidate.stop()
        if self.prediction_log is not None:
            self.prediction_log.close()

    # `async def`: scoring up to max_batch_size rows with a small MLP takes about a millisecond, less than a
    # thread hand-off, and an async API served about 60% more requests/s than a sync one here. No adaptive
    # batching: requests already carry rows in batches, and short batching windows made BentoML shed load
    # with 503s. The body is a `PredictResponse` written straight to JSON (`predict_response_json`), so the
    # schema is declared as the output spec and the method returns the response itself.
    @bentoml.api(route="/predict", output_spec=PredictResponse)
    async def predict(
        self,
        rows: Annotated[list[dict[str, Any]], Field(description="Rows to score: feature name -> value.")],
    ) -> Response:
        """Score each row; validation errors are raised as pydantic errors, which BentoML answers with 400."""
        started = time.perf_counter()
        served, candidate = self.champion.model, self.candidate.model  # one pair of versions per request
        if served is None:
            return self._waiting()
        moment = datetime.now(UTC)  # one time for the request's rows: the default as_of and the log's
        completed = None
        if served.features is not None:  # trained from a feature service: rows may carry only the entity id
            completed = self._complete(served, rows, moment)
            if isinstance(completed, Response):
                return completed
            rows = completed.rows
        request = served.request_model.model_validate({"rows": rows})
        margin = self.config.out_of_range_margin
        ids = request_ids(request.rows)
        entities = entity_ids(request.rows, served.columns, served.entity_column)
        challenger = candidate if self.ab.mode == "ab" else None
        variants = None if challenger is None else assign_variants(self.ab, served, request.rows, entities)
        answers = score_split(served, challenger, rows, request.rows, variants, margin)
        now = moment.isoformat()
        lines: list[dict[str, Any]] = []
        for picked, variant, scored in answers:
            ages = None
            if completed is not None and completed.looked_up:
                ages = [completed.ages[i] for i in picked]
                for j, i in enumerate(picked):  # the lookup's flags first, then the scorer's
                    scored.flags[j] = completed.flags[i] + scored.flags[j]
            lines += scored.log_lines(
                [ids[i] for i in picked], [entities[i] for i in picked], variant, now, ages
            )
        if candidate is not None and self.ab.mode == "shadow":
            shadow = score_raw(candidate, rows, margin)
            if shadow is not None:  # scored on every request, logged, never returned
                lines += shadow.log_lines(ids, entities, Variant.SHADOW.value, now)
                shadow.observe(self.metrics, Variant.SHADOW.value, None)
        if self.prediction_log is not None:
            self.prediction_log.append_dicts(lines)
        if completed is not None and completed.looked_up:
            observe_lookups(self.metrics, served.name, completed)
        timed: set[str] = set()  # the request's latency once per variant, also when two answers share one
        for _, variant, scored in answers:
            scored.observe(self.metrics, variant, None if variant in timed else started)
            timed.add(variant)
        return Response(predict_response_json(answers, ids, served), media_type="application/json")

    @bentoml.api(route="/explain", output_spec=ExplainResponse)
    async def explain(
        self,
        rows: Annotated[list[dict[str, Any]], Field(description="Rows to explain: feature name -> value.")],
    ) -> ExplainResponse | Response:
        """Per-row attributions of the champion's score to each raw feature, from the baseline row (numerics at
        their training medians, categoricals missing): integrated gradients for a network, permutation Shapley
        values for a blend (``method`` says which). They add up to ``score - baseline_score`` up to ``gap``.
        At most ``serving.max_explain_rows`` rows per request."""
        served = self.champion.model
        if served is None:
            return self._waiting()
        if served.features is not None:
            completed = self._complete(served, rows, datetime.now(UTC))
            if isinstance(completed, Response):
                return completed
            rows = completed.rows
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
            method=explain_method(served.scorer),
        )

    @bentoml.api(route="/metadata", output_spec=ModelMetadata)
    async def metadata(self) -> ModelMetadata | Response:
        """What is being served: the champion's name and version, where it came from, its feature schema, the
        Bento, every variant serving now, whether the registry is followed and which versions were refused."""
        served, candidate = self.champion.model, self.candidate.model
        if served is None:
            return self._waiting()
        slots = [(self.champion, served)] + ([] if candidate is None else [(self.candidate, candidate)])
        challenging = candidate is not None and self.ab.mode == "ab"
        return ModelMetadata(
            model_name=served.name,
            model_version=served.version,
            bento_model_tag=self.model_tag,
            bento_tag=self.bento_tag,
            source=served.source,
            following=self.champion.following,
            refused=[{"version": r.version, "reason": r.reason} for r in self.refusals],
            ab=None
            if self.ab.mode == "off"
            else {
                "mode": self.ab.mode,
                "challenger_share": self.ab.challenger_share,
                "key": self.ab.key or served.entity_column,
                "candidate_version": None if candidate is None else candidate.version,
            },
            variant="mixed" if challenging else Variant.CHAMPION.value,
            variants=[
                ServedVariant(
                    variant=slot.variant,
                    alias=slot.alias,
                    model_name=model.name,
                    model_version=model.version,
                    source=model.source,
                )
                for slot, model in slots
            ],
            max_rows=self.config.max_batch_size,
            features=[FeatureSchema(name=c.name, kind=c.kind) for c in served.columns],
            metadata=served.metadata,
            decision=None if served.scorer.decision is None else served.scorer.decision.to_dict(),
        )


def _json_error(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    """An error answered as a response (BentoML replaces the message of a raised 5xx with a generic one)."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


TabularModelService.add_asgi_middleware(OverloadMiddleware)  # the outermost of ours: shedding costs least
TabularModelService.add_asgi_middleware(RequestGuardMiddleware)
TabularModelService.add_asgi_middleware(BearerTokenMiddleware)
