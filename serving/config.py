"""Typed parameters of the serving layer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from monitoring.alerting import SLOConfig
from monitoring.config import PredictionLogConfig


class ABConfig(BaseModel):
    """A second model beside the champion: the version the ``candidate`` alias names (set only by
    ``mlops ab start``, recorded like a gate decision)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["off", "ab", "shadow"] = Field(
        default="off",
        description="ab: a stable share of entities is scored (and answered) by the candidate as `challenger`; "
        "shadow: the candidate scores every request too, logged as `shadow`, never returned.",
    )
    challenger_share: float = Field(
        default=0.1, gt=0.0, lt=1.0, description="Share of entities the challenger answers."
    )
    key: str | None = Field(
        default=None,
        description="Request field whose value routes a row (a stable hash: the same lead always sees the same "
        "variant); null = the config's id column (data.id_column). Rows without it go to the champion.",
    )


class ServingConfig(BaseModel):
    """How the champion is packaged and served with BentoML."""

    model_config = ConfigDict(extra="forbid")

    bento_name: str | None = Field(
        default=None, description="Bento and service name; null uses the registered model's name."
    )
    token_env: str = Field(
        default="MLOPS_SERVING_TOKEN", description="Environment variable holding the bearer token."
    )
    port: int = Field(
        default=3000, ge=1, le=65535, description="Port in the `bentoml serve` command printed after a run."
    )
    max_batch_size: int = Field(default=256, ge=1, description="Most rows one request may carry.")
    out_of_range_margin: float = Field(
        default=0.5,
        ge=0.0,
        description="A numeric value beyond the training range by more than this many times the range's width "
        "is scored but flagged (`out_of_range:<column>` in the response and the prediction log).",
    )
    max_explain_rows: int = Field(
        default=16,
        ge=1,
        description="Most rows one /explain request may carry (each costs 64 forward passes).",
    )
    max_string_length: int = Field(
        default=256, ge=1, description="Longest string a categorical value or an id may be; longer is a 400."
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted; larger is a 413."
    )
    follow_registry: bool = Field(
        default=True,
        description="With MLFLOW_TRACKING_URI set where it runs, the service polls the registry's champion "
        "alias and swaps in a moved one (verified first) without a restart.",
    )
    poll_interval_seconds: float = Field(
        default=30.0, ge=0.2, description="How often each worker reads the followed alias."
    )
    torch_threads: int = Field(
        default=1,
        ge=1,
        description="PyTorch intra-op threads per worker. A forward of up to max_batch_size rows takes well under "
        "a millisecond on one thread; a second thread only contends with the worker's event loop and the other "
        "workers (scale with more workers instead).",
    )

    workers: int = Field(
        default=1,
        ge=1,
        description="Worker processes of the service (BentoML's `workers`): each scores on one core, so up to "
        "the cores the service may use. Measured on 2 cores: docs/operations/capacity.md.",
    )
    max_in_flight: int = Field(
        default=16,
        ge=1,
        description="Requests one worker holds at once in its APIs. Past it a request is answered at once with "
        "503 and `Retry-After` (counted by the error-ratio rule and `mlops_requests_shed_total`) instead of "
        "queueing without bound. 16: on 2 cores one worker's p99 stays within the 100 ms SLO up to about 24 "
        "connections; with 16, 96 connections get their answers within it and the rest a fast 503 "
        "(docs/operations/capacity.md).",
    )
    retry_after_seconds: int = Field(
        default=1, ge=1, description="`Retry-After` of a request shed past `max_in_flight`."
    )
    prediction_log: PredictionLogConfig = Field(
        default_factory=PredictionLogConfig,
        description="Size rotation and retention of the prediction log the service writes.",
    )

    stale_features: Literal["score", "refuse"] = Field(
        default="score",
        description="A row scored by entity id whose online features are older than their view's ttl: `score` "
        "it, flagged `stale:<view>` (response, prediction log, metric), or `refuse` the request with a 422 "
        "naming the entity and the view.",
    )

    ab: ABConfig = Field(
        default_factory=ABConfig, description="A/B split or shadow scoring with the candidate alias."
    )
    slo: SLOConfig = Field(
        default_factory=SLOConfig,
        description="Service-level objectives and alert thresholds the Prometheus rules are rendered from "
        "(`mlops alerts rules`).",
    )
