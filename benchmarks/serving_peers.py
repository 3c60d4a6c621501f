"""The two reference servers of `bench_serving.py`, each doing only the network forward on pre-encoded rows.

- ``LeanService``: the BentoML ceiling. A BentoML service as lean as BentoML allows (an ``async`` API,
  tracing excluded on every path, metrics off), taking ``{"numeric": [[...]], "categorical": [[...]]}`` (the
  encoded arrays) and returning the scores. ``bentoml serve benchmarks.serving_peers:LeanService``.
- ``bare_app``: the limit. A bare ASGI callable (no framework) doing the JSON parse and the same forward.
  ``uvicorn benchmarks.serving_peers:bare_app``.

Both load the scorer saved under ``$BENCH_SCORER_DIR`` (a `TabularScorer.save` folder) once per process and
run the forward on as many PyTorch threads as our service does (`ServingConfig.torch_threads`), so the three
differ only in what surrounds the forward.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import bentoml
import torch

from models.artifact.scorer import TabularScorer
from serving.config import ServingConfig


@cache
def _scorer() -> TabularScorer:
    torch.set_num_threads(ServingConfig().torch_threads)
    return TabularScorer.load(Path(os.environ["BENCH_SCORER_DIR"]))


def _forward(numeric: list[list[float]], categorical: list[list[int]]) -> list[float]:
    scorer = _scorer()
    x_num = torch.tensor(numeric, dtype=torch.float32)
    x_cat = torch.tensor(categorical, dtype=torch.int64)
    with torch.inference_mode():
        logits = scorer.net(x_num, x_cat).double().numpy()
    return torch.sigmoid(torch.from_numpy(scorer.calibration.apply(logits))).tolist()


@bentoml.service(tracing={"excluded_urls": ["/"]}, metrics={"enabled": False})
class LeanService:
    def __init__(self) -> None:
        _scorer()

    @bentoml.api(route="/forward")
    async def forward(self, numeric: list[list[float]], categorical: list[list[int]]) -> list[float]:
        return _forward(numeric, categorical)


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST /forward with the same JSON body as `LeanService`; nothing else."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            if message["type"] == "lifespan.startup":
                _scorer()
                await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = json.loads(b"".join(chunks))
    payload = json.dumps(_forward(body["numeric"], body["categorical"])).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": payload})


__all__ = ["LeanService", "bare_app"]
