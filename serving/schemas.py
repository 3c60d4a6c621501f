"""The service's request and response models.

Requests: ``{"rows": [{feature: value, ...}, ...]}``, every row validated by a pydantic model generated from
the scorer's feature columns (`build_request_model`, once per served version). Every feature key is required
(``null`` means missing: the model imputes it); keys that are not features are ignored, so clients may send
whole CRM records and keep working when a retrained model drops a feature. ``request_id`` (or ``id``) is
optional per row; a random 128-bit hex id is generated otherwise. Numeric features take JSON numbers (not
strings or booleans); categorical features take strings, numbers or booleans, passed unchanged to the fitted
transform, which casts them to str exactly as it did in training (``3`` and ``3.0`` both become ``"3"``).
Malformed requests get HTTP 400 with pydantic's details, each error's ``loc`` naming the field, e.g.
``["rows", 0, "deal_size"]``. ``NaN``/``Infinity`` literals are 400s naming the field (not "missing"), and so
is a string longer than ``serving.max_string_length``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    create_model,
)
from pydantic_core import PydanticCustomError

from models.artifact.scorer import FeatureColumn

# --- requests ---------------------------------------------------------------------------------------------


def _too_long(max_chars: int) -> PydanticCustomError:
    """Pydantic's own error for an over-long string, so clients see the usual type and message."""
    return PydanticCustomError(
        "string_too_long", "String should have at most {max_length} characters", {"max_length": max_chars}
    )


def _category_validator(max_chars: int):
    """Validator of one categorical value: a string of at most ``max_chars``, a finite number, a boolean or
    null, passed on unchanged (the transform casts it to str as in training)."""

    def validate(value: object) -> str | int | float | bool | None:
        if isinstance(value, str):
            if len(value) > max_chars:
                raise _too_long(max_chars)
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
            raise _too_long(max_chars)
        return value

    return validate


# JSON numbers (ints too), finite: NaN and Infinity literals are 400s naming the field, not "missing".
NumericValue = Annotated[float, Strict(), AllowInfNan(False)] | None
AnyValue = str | int | float | bool | None


def build_request_model(
    columns: list[FeatureColumn], max_rows: int, entity_column: str | None = None, max_chars: int = 256
) -> type[BaseModel]:
    """Pydantic model of a predict request body for these feature columns (built once per served version).

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


# --- responses --------------------------------------------------------------------------------------------


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
    method: str = Field(description="How the attributions were computed (models.artifact.explain.method).")


class FeatureSchema(BaseModel):
    name: str
    kind: str


class ServedVariant(BaseModel):
    variant: str = Field(
        description="champion; challenger (A/B: answers its share of the routed entities) or shadow (scores "
        "every row, logged, never returned)."
    )
    alias: str = Field(description="The registry alias this variant's model follows: champion or candidate.")
    model_name: str
    model_version: str
    source: str = Field(description="Where the model came from: the Bento's model or a registry version.")


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
    variant: str = Field(
        description="Who answers /predict: champion, or mixed while an A/B challenger answers a share of the "
        "entities (as /predict says of a response holding both)."
    )
    variants: list[ServedVariant] = Field(
        description="Every model serving now, champion first: the challenger (A/B) or shadow only while the "
        "candidate alias names a version that passed the checks."
    )
    max_rows: int
    features: list[FeatureSchema]
    metadata: dict[str, Any] = Field(description="Metadata saved with the model (run id, ...).")
    decision: dict[str, Any] | None = Field(
        default=None,
        description="The contact rule saved with the model: threshold, how it was chosen, capacity.",
    )
