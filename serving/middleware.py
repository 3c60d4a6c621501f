"""ASGI middleware in front of the service's APIs: load shedding past the in-flight limit, bearer-token auth,
and refusal of bodies that are not JSON or too large, before anything is parsed."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from typing import Any

from starlette.responses import JSONResponse

from serving.metrics import service_metrics
from serving.settings import LOGGER_NAME, OPEN_PATHS, serving_config

logger = logging.getLogger(LOGGER_NAME)


class OverloadMiddleware:
    """ASGI middleware: at most ``ServingConfig.max_in_flight`` requests inside this worker's APIs at once;
    past that, an immediate 503 with ``Retry-After`` instead of a place in an unbounded queue.

    A request is counted from when its task first runs here, and yields to the event loop once before going
    on, so requests that arrived together are all counted before any of them is served (a handler that never
    awaits would otherwise finish before the next request is counted). Requests still being read, or queued
    in BentoML's own middleware, are not counted: the limit is below the connection count at which latency
    breaks the SLO (docs/operations/capacity.md has the measurements). A shed request is counted in
    ``mlops_requests_shed_total`` and, as a 5xx, in BentoML's ``bentoml_service_request_total`` that the
    error-ratio rule reads; ``mlops_requests_in_flight_peak`` is the most this worker held. Probes and
    /metrics (`OPEN_PATHS`) are never shed.
    """

    def __init__(self, app: Any, max_in_flight: int | None = None, retry_after: int | None = None) -> None:
        self.app = app
        self.limit = max_in_flight if max_in_flight is not None else serving_config().max_in_flight
        self.retry_after = str(
            retry_after if retry_after is not None else serving_config().retry_after_seconds
        )
        self.in_flight = 0
        self.peak = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            service_metrics().shed.labels(scope["path"]).inc()
            response = JSONResponse(
                {
                    "error": f"overloaded: this worker holds {self.in_flight} requests, its limit "
                    f"(serving.max_in_flight); retry after {self.retry_after} s"
                },
                status_code=503,
                headers={"Retry-After": self.retry_after},
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        if self.in_flight > self.peak:
            self.peak = self.in_flight
            service_metrics().in_flight_peak.set(self.peak)
        try:
            await asyncio.sleep(0)
            await _answered(self.app, scope, receive, send)
        finally:
            self.in_flight -= 1


async def _answered(app: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Run ``app``; if it returns without starting a response, send one: 499 when the client went away
    (its request read a disconnect), else 500.

    BentoML's timeout middleware, outside ours, holds each request until its first ``send`` or its traffic
    timeout (30 s): a request whose client disconnected, answered by nobody, would be held that long and
    hold a graceful shutdown with it (measured: a Bento stopped after a load test took 30 s to exit, 1 s
    with this). Sending to a client that is gone is a no-op in uvicorn; the status is what the metrics see.
    """
    started = disconnected = False

    async def watched_receive() -> dict[str, Any]:
        nonlocal disconnected
        message = await receive()
        disconnected = disconnected or message["type"] == "http.disconnect"
        return message

    async def watched_send(message: dict[str, Any]) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    await app(scope, watched_receive, watched_send)
    if not started:
        if not disconnected:
            logger.error("%s %s returned without a response", scope.get("method"), scope["path"])
        status = 499 if disconnected else 500
        await JSONResponse({"error": "no response"}, status_code=status)(scope, watched_receive, send)


class BearerTokenMiddleware:
    """ASGI middleware: 401 unless ``Authorization: Bearer <token>`` matches the configured token.

    The token is read from the variable named by ``ServingConfig.token_env`` (default ``MLOPS_SERVING_TOKEN``)
    when the app is built (worker start-up); no token, no auth, and start-up says so. Health and metrics
    paths (`OPEN_PATHS`) are always open.
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
