"""The service's outermost middleware answers every request it lets in, even when the API did not.

BentoML's timeout middleware (outside ours) holds a request until its first response message or its traffic
timeout; a request left unanswered (its client gone) would hold the worker's graceful shutdown that long.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from serving.middleware import OverloadMiddleware
from serving.settings import LOGGER_NAME


def _call(app: Any, inbound: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbound.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    asyncio.run(OverloadMiddleware(app, max_in_flight=4, retry_after=1)(scope, receive, send))
    return sent


def test_a_request_whose_client_left_unanswered_gets_a_499() -> None:
    async def gives_up_on_disconnect(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.disconnect"

    sent = _call(gives_up_on_disconnect, [{"type": "http.disconnect"}])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 499


def test_an_api_that_returns_without_answering_is_a_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def forgets(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()

    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        sent = _call(forgets, [{"type": "http.request", "body": b"{}", "more_body": False}])
    assert sent[0]["status"] == 500
    assert "POST /predict returned without a response" in caplog.text


def test_an_answered_request_is_passed_through_unchanged() -> None:
    async def answers(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = _call(answers, [])
    assert [(m["type"], m.get("status")) for m in sent] == [
        ("http.response.start", 200),
        ("http.response.body", None),
    ]
