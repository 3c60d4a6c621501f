"""A running Bento follows the registry: a moved champion alias is served without a restart or a failed
request, `mlops rollback` moves it back (recorded, refused for versions that never passed a gate), and a
version whose files were damaged after registration is refused while the old one keeps serving.

Real components: an `mlflow server` (the local stack's command), `bentoml serve` of a built Bento, the
session's Prefect server (the rollback flow and its event), and the `mlops` CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infra.home import ProjectHome
from infra.stack import SERVICES, credentials, prepare
from models.artifact.scorer import WEIGHTS_FILE, TabularScorer
from models.data.synthetic import LeadSchema, generate_leads
from models.governance.names import Alias

from helpers.bento import package_bento
from helpers.cli import mlops_in_process
from helpers.processes import free_port, stop_process, wait_http, wait_until
from helpers.registry import register_version, tiny_scorer

pytestmark = pytest.mark.integration

SCHEMA = LeadSchema()
FEATURES = [*SCHEMA.numeric, *SCHEMA.categorical]
BIN = Path(sys.executable).parent
MODEL, TOKEN = "crm-follow", "follow-secret"
SWITCH_TIMEOUT_S = 60  # the poll interval is 0.5 s; a download, digest and smoke check take a few seconds


@dataclass
class Registry:
    url: str
    home: ProjectHome
    versions: dict[str, str] = field(default_factory=dict)  # label -> version

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(self.url)

    def register(self, scorer: TabularScorer, decision: str) -> str:
        return register_version(self.url, self.home, scorer, MODEL, decision)

    def point_champion(self, version: str) -> None:
        self.client().set_registered_model_alias(MODEL, Alias.CHAMPION, version)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    home = ProjectHome(tmp_path_factory.mktemp("follow") / "home")
    port = free_port()
    spec = SERVICES["mlflow"].spec(
        home, {"prefect": free_port(), "mlflow": port, "evidently": free_port()}, None
    )
    env = prepare(home, spec, os.environ)  # its folders, auth config and admin password, as `mlops up` does
    home.root.mkdir(parents=True, exist_ok=True)
    log = home.root / "mlflow.log"
    # Every client here (the registry calls, the Bento's follower, `mlops rollback`) signs in as the admin:
    # the credential is in this process's environment for the module, then each variable as it was.
    with pytest.MonkeyPatch.context() as environment:
        for key, value in credentials(home, "mlflow").items():
            environment.setenv(key, value)
        with log.open("w") as handle:
            proc = subprocess.Popen(
                spec.command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_http(f"{spec.url}/health", timeout=120, proc=proc, log=log)
            yield Registry(spec.url, home)
        finally:
            stop_process(proc)


@dataclass(frozen=True)
class Service:
    """The served Bento: its URL, the folder it was packaged and started in, and its tag."""

    url: str
    root: Path  # holds its BENTOML_HOME (bentoml/), its home and its log
    bento: str


@pytest.fixture(scope="module")
def service(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    registry.versions["good-1"] = registry.register(tiny_scorer(1), "approved")
    # The moves go from a network to a blend and back; the A/B and shadow candidate is a blend.
    registry.versions["good-2"] = registry.register(tiny_scorer(2, blend=True), "approved")
    registry.versions["rejected"] = registry.register(tiny_scorer(3, blend=True), "rejected")
    registry.point_champion(registry.versions["good-1"])
    root = tmp_path_factory.mktemp("follow-serve")
    env = {
        **os.environ,
        "BENTOML_HOME": str(root / "bentoml"),
        "MLOPS_HOME": str(root / "home"),
        "MLFLOW_TRACKING_URI": registry.url,
        "MLOPS_SERVING_TOKEN": TOKEN,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    packaged = package_bento(
        *("--registry", registry.url, "--name", MODEL, "--version", registry.versions["good-1"]),
        *("--serving-config", json.dumps({"poll_interval_seconds": 0.5})),
        cwd=root,
        env=env,
        timeout=240,
    )
    assert packaged.returncode == 0, packaged.stderr[-3000:]
    bento = json.loads(packaged.stdout.strip().splitlines()[-1])["bento"]
    port = free_port()
    log = root / "serve.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [str(BIN / "bentoml"), "serve", bento, "--host", "127.0.0.1", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/readyz", timeout=120, proc=proc, log=log)
        yield Service(url, root, bento)
    finally:
        stop_process(proc)


def _call(url: str, path: str, body: Any | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method="POST" if data is not None else "GET")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:  # refused or reset: a failed request as a client sees it
        return 0, str(err)


class LoadLoop:
    """Scores one row after another in a thread, recording each answer's status and model version."""

    def __init__(self, url: str) -> None:
        rows = generate_leads(8, seed=11)[FEATURES].to_dict(orient="records")
        self.body = {
            "rows": [
                {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in rows
            ]
        }
        self.url = url
        self.answers: list[tuple[int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            status, body = _call(self.url, "/predict", self.body)
            self.answers.append((status, body["model_version"] if status == 200 else None))

    def __enter__(self) -> LoadLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def wait_for_version(self, version: str) -> None:
        wait_until(
            lambda: self.answers and self.answers[-1][1] == version,
            SWITCH_TIMEOUT_S,
            f"v{version} served",
            interval=0.2,
            describe=lambda: f"still serving {self.answers[-1:]}",
        )


def _rollback(registry: Registry, *args: str):
    env = {"MLFLOW_TRACKING_URI": registry.url, "MLOPS_HOME": str(registry.home.root)}
    return mlops_in_process(env, "rollback", "--model", MODEL, *args)


def test_moves_rollback_and_refusals_while_traffic_flows(
    registry: Registry, service: Service, prefect_server: str
) -> None:
    v1, v2, rejected = (registry.versions[k] for k in ("good-1", "good-2", "rejected"))
    with LoadLoop(service.url) as load:
        load.wait_for_version(v1)
        # The pipeline promotes v2: the service swaps it in, no restart.
        registry.client().set_registered_model_alias(MODEL, Alias.PREVIOUS_CHAMPION, v1)
        registry.point_champion(v2)
        load.wait_for_version(v2)

        # A refusal names why and moves nothing (the other refusals: tests/unit/test_rollback.py).
        refused = _rollback(registry, "--to", rejected, "--reason", "try it")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert (
            f"v{rejected} cannot become champion again: it was rejected at its promotion gate"
            in refused.stdout + refused.stderr
        )
        assert registry.client().get_model_version_by_alias(MODEL, Alias.CHAMPION).version == v2

        # The operator rolls back: to the previous champion by default, recorded on both versions.
        rolled = _rollback(registry, "--reason", "conversion dropped after v2", "--by", "ops-oncall")
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        assert f"champion is v{v1} again (was v{v2}" in rolled.stdout + rolled.stderr
        client = registry.client()
        assert client.get_model_version_by_alias(MODEL, Alias.CHAMPION).version == v1
        assert client.get_model_version_by_alias(MODEL, Alias.PREVIOUS_CHAMPION).version == v2
        restored, demoted = client.get_model_version(MODEL, v1).tags, client.get_model_version(MODEL, v2).tags
        assert (
            restored["rollback.restored_by"] == "ops-oncall" and restored["rollback.replaced_version"] == v2
        )
        assert demoted["rollback.demoted_reason"] == "conversion dropped after v2"
        load.wait_for_version(v1)

        # v2's files damaged after registration: the alias moves to it, the service refuses and keeps v1.
        source = client.get_model_version(MODEL, v2).source
        weights = [
            p for p in registry.home.mlflow_artifacts.rglob(WEIGHTS_FILE) if _belongs(p, source, client)
        ]
        assert len(weights) == 1, weights
        weights[0].write_bytes(weights[0].read_bytes()[:-8] + b"corrupt!")
        registry.point_champion(v2)

        def refusing() -> tuple[int, Any] | None:
            status = _call(service.url, "/metadata", {})
            return status if status[1]["refused"] else None

        status = wait_until(refusing, SWITCH_TIMEOUT_S, f"the damaged v{v2} refused", interval=0.5)
        refused = status[1]["refused"]
        assert [r["version"] for r in refused] == [v2] and "hash to" in refused[0]["reason"], refused
        assert status[1]["model_version"] == v1 and status[1]["following"].startswith(f"{MODEL}@champion")
        time.sleep(2)  # more polls: still the old one
        assert load.answers[-1] == (200, v1)

    statuses = [s for s, _ in load.answers]
    assert statuses and set(statuses) == {200}, [a for a in load.answers if a[0] != 200][:5]
    seen = [v for _, v in load.answers]
    switches = [v for i, v in enumerate(seen) if i == 0 or v != seen[i - 1]]
    assert switches == [v1, v2, v1], switches  # and never the damaged v2 again
    metrics = urllib.request.urlopen(f"{service.url}/metrics", timeout=10).read().decode()
    assert f'mlops_model_refused_total{{model_name="{MODEL}",model_version="{v2}"}}' in metrics
    # Each version swapped in exported its reference score quantiles (what the score-shift alert compares).
    for version in (v1, v2):
        reference = [
            line
            for line in metrics.splitlines()
            if line.startswith("mlops_reference_score_quantile{")
            and f'model_version="{version}"' in line
            and 'variant="champion"' in line
        ]
        assert len(reference) == 3, metrics


def _belongs(path: Path, source: str, client) -> bool:
    """Whether an artifact file on the server's disk is part of the logged model ``source`` points at."""
    model_id = source.rstrip("/").split("/")[-1]
    return model_id in path.parts or any(model_id in part for part in path.parts)


@pytest.fixture(scope="module")
def ab_services(registry: Registry, service: Service) -> Iterator[dict]:
    """The same Bento served twice more, switched by $MLOPS_SERVING_AB: an A/B split (30% challenger by
    lead id) and shadow mode; each with its own home (prediction log), in the folder ``service`` uses."""
    root = service.root
    started: dict[str, tuple[subprocess.Popen, str, Path]] = {}
    try:
        for mode, ab in (("ab", {"mode": "ab", "challenger_share": 0.3}), ("shadow", {"mode": "shadow"})):
            home = root / f"home-{mode}"
            env = {
                **os.environ,
                "BENTOML_HOME": str(root / "bentoml"),
                "MLOPS_HOME": str(home),
                "MLFLOW_TRACKING_URI": registry.url,
                "MLOPS_SERVING_TOKEN": TOKEN,
                "MLOPS_SERVING_AB": json.dumps(ab),
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
            port = free_port()
            log = root / f"serve-{mode}.log"
            with log.open("w") as handle:
                proc = subprocess.Popen(
                    [
                        str(BIN / "bentoml"),
                        "serve",
                        service.bento,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                    ],
                    cwd=root,
                    env=env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started[mode] = (proc, f"http://127.0.0.1:{port}", home)
        for proc, url, _ in started.values():
            wait_http(f"{url}/readyz", timeout=120, proc=proc)
        yield {mode: (url, home) for mode, (_, url, home) in started.items()}
    finally:
        for proc, _, _ in started.values():
            stop_process(proc)


def _rows(ids: list[str]) -> list[dict]:
    base = generate_leads(1, seed=5)[FEATURES].to_dict(orient="records")[0]
    base = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in base.items()}
    return [{**base, "lead_id": lead} for lead in ids]


def _variants(url: str, ids: list[str], size: int = 250) -> dict[str, tuple[str, str]]:
    """lead id -> (variant, model version) of each answer, sent in requests of ``size`` rows."""
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        status, body = _call(url, "/predict", {"rows": _rows(chunk)})
        assert status == 200, body
        for lead, prediction in zip(chunk, body["predictions"], strict=True):
            found[lead] = (prediction["variant"], prediction["model_version"])
    return found


def _wait_candidate(url: str, version: str | None) -> None:
    last: dict[str, Any] = {}  # /metadata's latest `ab`, named if the wait times out

    def candidate_is_version() -> bool:
        last.update(ab=_call(url, "/metadata", {})[1]["ab"])
        return last["ab"]["candidate_version"] == version

    wait_until(
        candidate_is_version,
        SWITCH_TIMEOUT_S,
        f"candidate_version {version!r} in {url}/metadata",
        interval=0.5,
        describe=lambda: str(last["ab"]),
    )


def _served_variants(url: str) -> tuple[str, list[tuple[str, str, str]]]:
    """/metadata's ``variant`` and its ``variants`` as (variant, alias, model version)."""
    metadata = _call(url, "/metadata", {})[1]
    return metadata["variant"], [(v["variant"], v["alias"], v["model_version"]) for v in metadata["variants"]]


def test_ab_split_and_shadow_follow_the_candidate_alias(
    registry: Registry, ab_services: dict, tmp_path: Path, prefect_server: str
) -> None:
    from monitoring.prediction_log import log_files, read_records

    (ab_url, ab_home), (shadow_url, shadow_home) = ab_services["ab"], ab_services["shadow"]
    # The version the services serve: the first test left the alias on a damaged version they refuse.
    champion = _call(ab_url, "/metadata", {})[1]["model_version"]
    candidate = registry.versions["rejected"]
    env = {"MLFLOW_TRACKING_URI": registry.url, "MLOPS_HOME": str(ab_home)}
    started = mlops_in_process(
        env, "ab", "start", "--model", MODEL, "--version", candidate, "--reason", "live trial", "--by", "ops"
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert registry.client().get_model_version(MODEL, candidate).tags["approval.ab.approver"] == "ops"
    for url in (ab_url, shadow_url):
        _wait_candidate(url, candidate)
    # /metadata lists what serves: the champion, and the candidate as challenger (A/B) or shadow.
    for url, variant, answering in ((ab_url, "challenger", "mixed"), (shadow_url, "shadow", "champion")):
        assert _served_variants(url) == (
            answering,
            [("champion", "champion", champion), (variant, "candidate", candidate)],
        )

    # A/B: 10,000 leads, each always answered by the same variant, about 30% by the challenger.
    ids = [f"lead-{i}" for i in range(10_000)]
    first = _variants(ab_url, ids)
    again = _variants(ab_url, list(reversed(ids)), size=199)  # other requests, other order: same routing
    assert first == again
    share = sum(v == "challenger" for v, _ in first.values()) / len(ids)
    assert abs(share - 0.3) < 0.02, share  # binomial s.e. at 10k is 0.0046: within 4 s.e.
    assert {first[i] for i in ids} == {("champion", champion), ("challenger", candidate)}
    logged = [r for r in read_records(log_files(ab_home / "predictions")) if r.entity_id in first]
    assert {(r.entity_id, r.variant, r.model_version) for r in logged} == {(i, *first[i]) for i in ids}

    # Shadow: the candidate scores every row and is logged; only the champion answers.
    answers = _variants(shadow_url, ids[:50])
    assert set(answers.values()) == {("champion", champion)}
    shadow_log = list(read_records(log_files(shadow_home / "predictions")))
    assert sorted((r.variant, r.model_version) for r in shadow_log) == sorted(
        [("champion", champion)] * 50 + [("shadow", candidate)] * 50
    )

    # The report reads the A/B log; with outcomes joined by lead id it tests and recommends.
    labels = tmp_path / "outcomes.csv"
    rng = np.random.default_rng(0)
    labels.write_text("lead_id,converted\n" + "".join(f"{i},{int(rng.random() < 0.2)}\n" for i in ids))
    config = Path(__file__).resolve().parents[2] / "configs" / "crm_leads.yaml"
    report = mlops_in_process(
        env, "ab", "report", "--model", MODEL, "--labels", str(labels), "--config", str(config)
    )
    assert report.returncode == 0, report.stdout + report.stderr
    for text in ("champion", "challenger", "always-valid", "recommendation: "):
        assert text in report.stdout + report.stderr, report.stdout + report.stderr

    stopped = mlops_in_process(env, "ab", "stop", "--model", MODEL, "--reason", "done")
    assert stopped.returncode == 0 and f"candidate v{candidate} removed" in stopped.stdout + stopped.stderr, (
        stopped.stdout + stopped.stderr
    )
    _wait_candidate(ab_url, None)
    assert {v for v, _ in _variants(ab_url, ids[:500]).values()} == {"champion"}
    assert _served_variants(ab_url) == ("champion", [("champion", "champion", champion)])
