"""The champion and the A/B candidate: each a `FollowedAlias`, the model served under one variant and kept on
one registry alias.

The champion follows ``champion`` when ``MLFLOW_TRACKING_URI`` is set and ``serving.follow_registry`` is on;
the candidate follows ``candidate`` (set only by ``mlops ab start``) when ``serving.ab.mode`` is ab or shadow.
A moved alias is fetched, verified (`serving.registry.fetch_verified`) and swapped in without a restart; a
version that fails is refused with the reason and the served one keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from models.artifact.scorer import TabularScorer
from serving.config import ServingConfig
from serving.registry import Refusal, RegistryFollower
from serving.served import ServedModel
from serving.settings import LOGGER_NAME, TRACKING_URI_ENV

logger = logging.getLogger(LOGGER_NAME)


class FollowedAlias:
    """The model served as ``variant`` (champion, challenger or shadow), kept on the registry's ``alias`` of
    ``model_name`` once `follow` starts a `RegistryFollower` on it.

    ``model`` is None until a first version is served, and again after the alias is removed when
    ``drop_when_gone``. It is replaced whole in one assignment, so a request that reads it once is scored by
    one version from start to end. ``gauge`` (``mlops_served_model``) shows 1 for the version served, 0 for
    the one it replaced; ``quantiles`` (``mlops_reference_score_quantile``) the served version's reference
    score quantiles (the served gauge says which version is current); a refused version goes to ``refuse``.
    """

    def __init__(
        self,
        alias: str,
        variant: str,
        *,
        model_name: str,
        entity_column: str | None,
        config: ServingConfig,
        gauge: Any,
        refuse: Callable[[Refusal], None],
        drop_when_gone: bool = False,
        quantiles: Any = None,
    ) -> None:
        self.alias, self.variant, self.model_name = alias, variant, model_name
        self.entity_column, self.config = entity_column, config
        self._gauge, self._refuse, self._drop_when_gone = gauge, refuse, drop_when_gone
        self._quantiles = quantiles
        self.model: ServedModel | None = None
        self.follower: RegistryFollower | None = None

    def serve(self, model: ServedModel) -> None:
        """Serve ``model`` from the next request on; export its reference score quantiles, if it has them."""
        old, self.model = self.model, model
        if old is not None:
            self._gauge.labels(old.name, self.variant, old.version).set(0)
        self._gauge.labels(model.name, self.variant, model.version).set(1)
        if self._quantiles is not None:
            for quantile, value in (model.reference_quantiles or {}).items():
                self._quantiles.labels(model.name, self.variant, model.version, quantile).set(value)

    def follow(self, tracking_uri: str) -> None:
        """Poll the alias every ``serving.poll_interval_seconds`` from now on, in a daemon thread."""
        self.follower = RegistryFollower(
            tracking_uri,
            self.model_name,
            self.alias,
            self.config.poll_interval_seconds,
            None if self.model is None else self.model.version,
            swap=self._swap,
            refuse=self._refuse,
            missing=self._drop if self._drop_when_gone else None,
        )
        self.follower.start()

    def stop(self) -> None:
        """Stop polling (the model keeps serving)."""
        if self.follower is not None:
            self.follower.stop()

    @property
    def following(self) -> str | None:
        """``name@alias every N s`` while followed; None otherwise."""
        follower = self.follower
        return None if follower is None else f"{follower.name}@{follower.alias} every {follower.interval:g} s"

    def _swap(
        self, version: str, scorer: TabularScorer, reference_quantiles: dict[str, float] | None
    ) -> None:
        self.serve(
            ServedModel.from_registry(
                scorer,
                name=self.model_name,
                version=version,
                entity_column=self.entity_column,
                config=self.config,
                reference_quantiles=reference_quantiles,
            )
        )

    def _drop(self) -> None:
        old, self.model = self.model, None
        if old is not None:
            logger.info("the %s alias is gone: %s v%s no longer serves", self.alias, old.name, old.version)
            self._gauge.labels(old.name, self.variant, old.version).set(0)


def follow_registry(
    champion: FollowedAlias, candidate: FollowedAlias, config: ServingConfig, tracking_uri: str | None
) -> None:
    """Start the followers the configuration asks for (see the module doc), saying why one does not start."""
    if config.follow_registry and tracking_uri:
        champion.follow(tracking_uri)
    else:
        logger.info(
            "not following the registry (%s): serving the Bento's model only",
            "serving.follow_registry is off" if tracking_uri else f"{TRACKING_URI_ENV} is not set",
        )
    if config.ab.mode == "off":
        return
    if tracking_uri:
        candidate.follow(tracking_uri)
    else:
        logger.warning(
            "serving.ab.mode is %s but %s is not set: no candidate to serve", config.ab.mode, TRACKING_URI_ENV
        )
