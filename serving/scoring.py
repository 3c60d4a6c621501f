"""Scoring validated rows with one served model, and writing what the answers become: the response body,
the prediction-log lines and the metrics.

Column-wise throughout (one list entry per row) and without pydantic objects on the way out: at 64 rows,
per-row objects cost more than the network's forward pass.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np
import orjson
from pydantic import BaseModel, ValidationError

from models.governance.names import Variant
from serving.encoding import range_flags, rows_to_arrays
from serving.metrics import observe_all
from serving.served import ServedModel
from serving.settings import LOGGER_NAME

logger = logging.getLogger(LOGGER_NAME)


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
        self,
        request_ids: list[str],
        entity_ids: list[str | None],
        variant: str,
        timestamp: str,
        feature_ages: list[dict[str, float]] | None = None,
    ) -> list[dict[str, Any]]:
        """One `PredictionRecord`-shaped dict per row (`PredictionLog.append_dicts`); ``feature_ages`` per row
        when the rows were read by entity id."""
        name, version = self.model_name, self.version
        ages = feature_ages if feature_ages is not None else [{}] * len(request_ids)
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
                "feature_ages": a,
            }
            for r, e, s, f, fl, a in zip(
                request_ids, entity_ids, self.scores, self.features, self.flags, ages, strict=True
            )
        ]

    def observe(self, metrics: SimpleNamespace, variant: str, started: float | None) -> None:
        """Count the rows, their scores and flags in ``metrics`` (`serving.metrics.service_metrics`); with
        ``started`` (a `time.perf_counter` value), the handler's latency too."""
        labels = (self.model_name, variant)
        metrics.rows.labels(*labels, self.version).inc(len(self.scores))
        observe_all(metrics.scores.labels(*labels), np.asarray(self.scores, dtype=np.float64))
        for row_flags in self.flags:
            for flag in row_flags:
                metrics.out_of_range.labels(*labels, flag.removeprefix("out_of_range:")).inc()
        if started is not None:
            metrics.latency.labels(*labels).observe(time.perf_counter() - started)


class Answer(NamedTuple):
    """Some rows of a request, answered by one variant: their positions in the request and their scores."""

    positions: list[int]
    variant: str
    scored: ScoredRows


def score_rows(model: ServedModel, rows: list[BaseModel], margin: float) -> ScoredRows:
    """Score ``rows`` validated by ``model``'s request model; flag numerics ``margin`` ranges out."""
    columns = model.columns
    # The fast path: validated rows straight to encoded arrays by the fitted transform, no DataFrame.
    numeric, categorical = rows_to_arrays(rows, columns)
    scorer = model.scorer
    scores = scorer.predict_proba_encoded(scorer.transform.encode_rows(numeric, categorical))
    contacts = (
        scorer.decision.decide(scores).tolist() if scorer.decision is not None else [None] * len(scores)
    )
    flags = range_flags(numeric, scorer, margin)
    # Logged features as validated (None for missing), built column-wise from what was already extracted.
    names = [c.name for c in columns if c.kind == "numeric"] + [
        c.name for c in columns if c.kind == "categorical"
    ]
    numeric_values = np.where(np.isnan(numeric), None, numeric).tolist() if numeric.size else [[]] * len(rows)
    features = [
        dict(zip(names, [*n, *c], strict=True))
        for n, c in zip(
            numeric_values,
            zip(*categorical, strict=True) if categorical else [()] * len(rows),
            strict=True,
        )
    ]
    return ScoredRows(model.name, model.version, scores.tolist(), contacts, flags, features)


def score_raw(model: ServedModel, raw: list[dict[str, Any]], margin: float) -> ScoredRows | None:
    """Score raw request rows validated by ``model``'s own request model (a challenger or shadow may read
    another schema than the champion); None, with a warning, when they do not validate."""
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
    return score_rows(model, validated, margin)


def score_split(
    served: ServedModel,
    challenger: ServedModel | None,
    raw: list[dict[str, Any]],
    validated: list[BaseModel],
    variants: list[str] | None,
    margin: float,
) -> list[Answer]:
    """Score each row with the variant ``variants`` names for it (None: the champion for all): the champion
    ``served`` (``validated`` holds the rows as its request model read them) or ``challenger`` (from the
    ``raw`` rows). Rows the challenger cannot read are answered by the champion."""
    if variants is None or challenger is None:
        return [
            Answer(list(range(len(validated))), Variant.CHAMPION.value, score_rows(served, validated, margin))
        ]
    answers: list[Answer] = []
    for variant in (Variant.CHAMPION.value, Variant.CHALLENGER.value):
        picked = [i for i, v in enumerate(variants) if v == variant]
        if not picked:
            continue
        scored = (
            score_raw(challenger, [raw[i] for i in picked], margin)
            if variant == Variant.CHALLENGER.value
            else None
        )
        if scored is None:  # the champion's rows, or the challenger could not read them
            variant, scored = (
                Variant.CHAMPION.value,
                score_rows(served, [validated[i] for i in picked], margin),
            )
        answers.append(Answer(picked, variant, scored))
    return answers


def predict_response_json(answers: list[Answer], request_ids: list[str], served: ServedModel) -> bytes:
    """The `serving.schemas.PredictResponse` of ``answers`` as JSON, written without building it: every field
    is already of its schema type, and building one pydantic object per row for BentoML to serialise cost
    more than the network's forward pass."""
    predictions: list[dict[str, Any]] = [{}] * len(request_ids)
    for picked, variant, scored in answers:
        for i, score, contact, flags in zip(
            picked, scored.scores, scored.contacts, scored.flags, strict=True
        ):
            predictions[i] = {
                "request_id": request_ids[i],
                "score": score,
                "contact": contact,
                "model_version": scored.version,
                "variant": variant,
                "flags": flags,
            }
    answered = {answer.variant for answer in answers}
    body = {
        "predictions": predictions,
        "model_name": served.name,
        "model_version": served.version,
        "variant": answered.pop() if len(answered) == 1 else "mixed",
    }
    return orjson.dumps(body)
