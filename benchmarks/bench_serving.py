"""Serving throughput and latency: our Bento against `mlflow models serve`, the BentoML ceiling and the limit.

One run, on 127.0.0.1, each server with one worker, all four serving the same scorer (trained here on
20,000 generated leads with `configs/crm_leads.yaml`'s model section, registered in a temporary MLflow
store):

    ours      `bentoml serve` of the Bento `serving.packaging.build_bento` builds (validation, the fast
              encoding path, the decision rule, the prediction log, metrics, bearer token), `{"rows": [...]}`
    blend     the same Bento of a blend champion: the same network blended with CatBoost and LightGBM fitted
              on the same training rows, weights fitted on the validation rows (`model.ensemble: always`, as
              the pipeline builds it on a table too large to cross-validate); what a blend costs per request
    peer      `mlflow models serve` of the same registered version, its fastest format
              (`{"inputs": {column: [values]}}`)
    ceiling   a lean BentoML service doing only the network forward on pre-encoded rows (async API,
              tracing and metrics off: benchmarks/serving_peers.py)
    limit     a bare ASGI app under uvicorn doing the JSON parse and the same forward
    by-id     our Bento of a model trained from the CRM feature service (`configs/crm_feature_store.yaml`'s
              features: a generated CRM source ending now, its tables built, applied and materialised into
              the SQLite online store), one server answering both full rows and rows that carry only
              `lead_id` (the service reads the rest from the online store in process)
    by-id-redis the same Bento with the online store on a real `redis-server` (Debian's; loopback, a
              password), as on the server stack (`mlops up`): the same features materialised there

Our Bentos here are built with `serving.max_in_flight` 1024, so that none sheds load: this comparison
measures throughput and latency; shedding is `--capacity`'s. Load: Debian's `wrk` (a compiled client:
`apt-get install wrk`), 32 connections on one thread for `--seconds` (60) per server and request size (1 row, 64 rows); its CPU share of the machine is printed, so
a client-bound figure shows. Per server and size: requests/s, p50/p99 latency and non-2xx answers, plus
the single-request p50 over 400 sequential requests on one keep-alive connection. Then the ratios and the
targets on 2 cores: single-row p50 <= 2 ms (ours, and the blend); ours >= 0.75x the ceiling; ours >= 3x the
peer; 0 errors.
By id: single-request p50 <= 2 ms (on Redis <= 2.5 ms) and 1-row throughput >= 0.7x the same server's full
rows.

Capacity (`--capacity`, instead of the comparison): our Bento built with `serving.workers` 1 and then 2 (and the
default `serving.max_in_flight`). Per worker count, wrk connections step up (`--step-seconds` each) to the knee,
the most connections whose p99 is within the SLO (`serving.slo.latency_p99_seconds`) with nothing shed; then 4x
the knee's connections twice: clients that retry at once (wrk's way, the worst case) and clients that wait the
`Retry-After` of a 503 (a Lua `delay()`): the share of 200s and 503s, wrk's p99 over every answer, and the
answered requests' p99 server-side (BentoML's request-duration histogram of the 200s, interpolated as Prometheus'
`histogram_quantile` does). Last, `--soak-seconds` (120) at 32 connections on the 2-worker server: the resident
memory of its processes (the `bentoml serve` process and its workers) sampled every 5 s.

Run after install: .venv/bin/python benchmarks/bench_serving.py [--seconds 60] [--servers ours peer ...] [--smoke]
                   .venv/bin/python benchmarks/bench_serving.py --capacity [--step-seconds 10] [--soak-seconds 120]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN = "bench-token"
CONNECTIONS = 32
SERVERS = ("ours", "blend", "peer", "ceiling", "limit", "by-id", "by-id-redis")
BY_ID = ("by-id", "by-id-redis")
TARGETS = {
    "single_p50_ms": 2.0,
    "redis_p50_ms": 2.5,
    "vs_ceiling": 0.75,
    "vs_peer": 3.0,
    "by_id_vs_full": 0.7,
}
REDIS_PASSWORD = "bench-redis-password"
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local f = io.open("%(body)s", "rb"); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99), summary.duration))
end
"""
# Clients that honour Retry-After: after a 503, the next request of the thread waits for it (wrk calls delay()
# before a connection's next request; with one thread, a 503 delays the next request sent, whichever the
# connection: the count of waits matches the count of 503s).
WRK_BACKOFF = """
local waits = 0
response = function(status, headers, body)
  if status == 503 then waits = waits + 1000 * (tonumber(headers["Retry-After"]) or 1) end
end
delay = function()
  if waits > 0 then local d = math.min(waits, 1000); waits = waits - d; return d end
  return 0
end
"""
CONNECTION_STEPS = (2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)
PACKAGE = """
import json, sys
from serving.config import ServingConfig
from serving.packaging import build_bento, save_model
from tasks.registry import load_scorer
uri, name = sys.argv[1:3]
scorer = load_scorer(uri, f"models:/{name}/1")
tag = save_model(scorer, name=name, metadata={"model_name": name, "model_version": "1", "entity_id_column": "lead_id"})
print(json.dumps({"bento": str(build_bento(tag, service_name=name, config=ServingConfig(max_in_flight=1024)))}))
"""
PACKAGE_DIR = """
import json, sys
from pathlib import Path
from models.artifact.scorer import TabularScorer
from serving.config import ServingConfig
from serving.packaging import build_bento, save_model
folder, name = sys.argv[1:3]
scorer = TabularScorer.load(Path(folder))
config = ServingConfig.model_validate_json(sys.argv[3]) if len(sys.argv) > 3 else ServingConfig(max_in_flight=1024)
tag = save_model(scorer, name=name, metadata={"model_name": name, "model_version": "1", "entity_id_column": "lead_id"})
print(json.dumps({"bento": str(build_bento(tag, service_name=name, config=config))}))
"""


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    requests: int
    client_cpu_share: float  # of all cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not ready:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Prepared:
    uri: str  # the temporary MLflow store's tracking URI
    bento: str  # our Bento of the network
    scorer_dir: Path  # the network's saved scorer
    rows: pd.DataFrame  # validation rows, the requests' source
    blend_bento: str = ""  # our Bento of the blend champion (only when measured)


def prepare(work: Path, rows: int = 20_000, blend: bool = False) -> Prepared:
    """Train, register and package the scorer (and with ``blend`` the blend champion built on it)."""
    import yaml

    from models.data.synthetic import LeadSchema, generate_leads
    from models.features.transform import FeatureTransform
    from models.nn.config import ModelConfig
    from models.training.fit import train_model
    from tasks.registry import register_challenger
    from tasks.tracking import TrackingTarget, log_model

    schema = LeadSchema()
    leads = generate_leads(rows, seed=0)
    train, val = leads.iloc[: rows * 4 // 5], leads.iloc[rows * 4 // 5 :]
    config = yaml.safe_load((REPO / "configs" / "crm_leads.yaml").read_text())
    from models.features.config import FeatureConfig

    transform = FeatureTransform.fit(
        train, FeatureConfig(numeric=list(schema.numeric), categorical=list(schema.categorical))
    )
    model = ModelConfig.model_validate({**config.get("model", {}), "max_epochs": 3}).for_data(
        len(train), float(train[schema.target].mean())
    )
    scorer = train_model(
        transform.transform(train),
        train[schema.target].to_numpy(),
        transform.transform(val),
        val[schema.target].to_numpy(),
        transform=transform,
        config=model,
        seed=0,
    ).scorer
    scorer.save(work / "scorer")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    target = TrackingTarget.for_store(uri, "bench", work / "mlartifacts")
    client = target.client()
    experiment = client.create_experiment("bench", artifact_location=str(work / "mlartifacts"))
    run_id = client.create_run(experiment).info.run_id
    register_challenger.fn(target, "bench", log_model.fn(target, run_id, scorer, val.head(5)), run_id, {})
    prepared = Prepared(uri, package(work, PACKAGE, uri, "bench"), work / "scorer", val)
    if blend:
        folder = blended(work, scorer, transform, train, val, model, schema.target)
        prepared.blend_bento = package(work, PACKAGE_DIR, str(folder), "bench-blend")
    return prepared


def blended(
    work: Path, scorer, transform, train: pd.DataFrame, val: pd.DataFrame, model, target: str
) -> Path:
    """The network blended with CatBoost and LightGBM as the pipeline blends on a large table: the trees
    fitted on the training rows (early stopping on an inner split of them), the weights and the calibration
    on the validation rows; `model.ensemble: always`, so the blend is built whatever its gain. Saved."""
    from models.data.config import SplitConfig
    from models.evaluation.config import EvaluationConfig
    from models.training.baselines import fit_baselines
    from models.training.selection import finalize_model
    from models.training.sweep import SweepResult

    y_train, y_val = train[target].to_numpy(), val[target].to_numpy()
    trees = fit_baselines(transform, train, y_train, 0, names=("catboost", "lightgbm"))
    network = SweepResult("bench", "0", {}, 0.0, scorer, [], 0.0, False, str(work))
    final = finalize_model(
        network,
        train,
        y_train,
        val,
        y_val,
        transform=transform,
        model=model.model_copy(update={"ensemble": "always"}),
        split=SplitConfig(cv_folds=0),
        business=None,
        evaluation=EvaluationConfig(n_bootstrap=100),
        cv_seed=0,
        business_seed=0,
        baselines=trees,
    )
    assert final.scorer.blend is not None, "ensemble: always builds a blend"
    print(
        f"blend: {final.scorer.blend.describe()} (fit: {', '.join(f'{t.name} {t.fit_seconds:.1f} s' for t in trees)})"
    )
    final.scorer.save(work / "blend-scorer")
    return work / "blend-scorer"


def package(work: Path, script: str, *args: str) -> str:
    """Run a packaging script in its own interpreter (BentoML fixes its home once per process); the Bento."""
    packaged = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=work,
        env={**os.environ, "BENTOML_HOME": str(work / "bentoml")},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(packaged.stdout.strip().splitlines()[-1])["bento"]


@dataclass
class ByIdModel:
    """A model trained from the CRM feature service, its Bento, project home and request bodies."""

    bento: str
    home: Path
    full_rows: list[dict]  # the leads' features as the online store serves them now
    ids: list[str]
    redis: dict[str, str]  # the variables pointing a client at the Redis online store; empty without one


def prepare_by_id(work: Path, leads: int, redis: str | None, sqlite: bool = True) -> ByIdModel:
    """Generate a CRM source ending now, build, apply and materialise its features, train on the point-in-time
    training frame, and package the model with its feature lookup. The features are materialised into the
    SQLite online store (unless ``sqlite`` is false) and, with ``redis`` (host:port of a running redis-server),
    applied and materialised there too, as a client of the stack does."""
    from datetime import UTC, datetime

    from flows.config import load_config
    from models.data.crm import generate_crm, label_spine, start_ending_at, write_crm
    from models.features.config import FeatureConfig
    from models.features.transform import FeatureTransform
    from models.nn.config import ModelConfig
    from models.training.fit import train_model
    from tasks.feature_store import (
        apply_repository,
        build_activity_table,
        feature_lookup,
        features_by_id,
        historical_frame,
        load_repository,
        plan_materialization,
        use_wal_journal,
        write_online_store,
    )

    home = work / "crm-home"
    os.environ["MLOPS_HOME"] = str(home)  # the repository's paths (and Feast's config) read it
    now = datetime.now(UTC)
    source = generate_crm(leads, seed=0, start=start_ending_at(now))
    spine = label_spine(source, seed=0)
    write_crm(source, spine, work / "crm")
    config = load_config(REPO / "configs" / "crm_feature_store.yaml", home=home)
    store = config.feature_store
    assert store is not None
    repository = load_repository.fn(store.repo)
    build_activity_table.fn(work / "crm", repository)
    apply_repository.fn(repository)
    if sqlite:  # what `mlops features materialize` writes, unchecked
        use_wal_journal.fn(store.repo)
        write_online_store.fn(store.repo, plan_materialization.fn(store.repo, now))
    frame = historical_frame.fn(store.repo, spine, store.service, "as_of").data
    cut = len(frame) * 4 // 5
    train, val = frame.iloc[:cut], frame.iloc[cut:]
    transform = FeatureTransform.fit(
        train, FeatureConfig(numeric=config.features.numeric, categorical=config.features.categorical)
    )
    model = ModelConfig.model_validate({**config.model.model_dump(), "max_epochs": 3}).for_data(
        len(train), float(train["converted"].mean())
    )
    scorer = train_model(
        transform.transform(train),
        train["converted"].to_numpy(),
        transform.transform(val),
        val["converted"].to_numpy(),
        transform=transform,
        config=model,
        seed=0,
    ).scorer.with_lookup(feature_lookup(store.repo, store.service, "lead_id"))
    scorer.save(work / "crm-scorer")
    stack: dict[str, str] = {}
    if redis is not None:
        from models.features.store import REDIS_PASSWORD_VARIABLE, REDIS_VARIABLE

        stack = {REDIS_VARIABLE: redis, REDIS_PASSWORD_VARIABLE: REDIS_PASSWORD}
        os.environ.update(stack)  # the repository's config now names Redis (and a registry of its own)
        try:
            apply_repository.fn(repository)
            write_online_store.fn(store.repo, plan_materialization.fn(store.repo, now))
        finally:
            for variable in stack:
                os.environ.pop(variable)
    ids = spine["lead_id"].head(64).tolist()
    full = features_by_id.fn(store.repo, pd.DataFrame({"lead_id": ids}), store.service, "lead_id", now)
    names = [c.name for c in scorer.feature_columns]
    records = full[["lead_id", *names]].astype(object).where(full[["lead_id", *names]].notna(), None)
    return ByIdModel(
        package(work, PACKAGE_DIR, str(work / "crm-scorer"), "bench-crm"),
        home,
        records.to_dict(orient="records"),
        ids,
        stack,
    )


def start_redis(work: Path) -> tuple[subprocess.Popen, str]:
    """A redis-server on a free loopback port, its password through stdin (never a command line), nothing
    persisted; the process and its host:port."""
    program = shutil.which("redis-server")
    if program is None:
        sys.exit("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    with (work / "redis.log").open("w") as log:
        proc = subprocess.Popen(
            [program, "-"],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    assert proc.stdin is not None
    proc.stdin.write(f'bind 127.0.0.1\nport {port}\nrequirepass {REDIS_PASSWORD}\nsave ""\nappendonly no\n')
    proc.stdin.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"127.0.0.1:{port}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(proc)
    sys.exit(f"redis-server did not start: {(work / 'redis.log').read_text()[-1000:]}")


def bodies(server: str, rows: pd.DataFrame, scorer_dir: Path) -> bytes:
    from models.artifact.scorer import TabularScorer

    features = [c.name for c in TabularScorer.load(scorer_dir).feature_columns]
    if server in ("ours", "blend"):
        records = rows[features].astype(object).where(rows[features].notna(), None).to_dict(orient="records")
        return json.dumps({"rows": records}).encode()
    if server == "peer":
        columns = {c: [None if pd.isna(v) else v for v in rows[c].tolist()] for c in features}
        return json.dumps({"inputs": columns}).encode()
    encoded = TabularScorer.load(scorer_dir).transform.transform(rows)
    return json.dumps(
        {"numeric": encoded.numeric.tolist(), "categorical": encoded.categorical.tolist()}
    ).encode()


def start(
    server: str, work: Path, prepared: Prepared, by_id: ByIdModel | None = None
) -> tuple[subprocess.Popen, str, str]:
    """The server, its base URL and the path to POST to."""
    port = free_port()
    env = {
        **os.environ,
        "BENTOML_HOME": str(work / "bentoml"),
        "MLOPS_HOME": str(work / "home"),
        "MLOPS_SERVING_TOKEN": TOKEN,
        "BENCH_SCORER_DIR": str(prepared.scorer_dir),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "DO_NOT_TRACK": "1",
        "BENTOML_DO_NOT_TRACK": "true",
        "PYTHONPATH": str(REPO),
    }
    env.pop("MLFLOW_TRACKING_URI", None)  # ours: serve the Bento's model, no registry polling
    host = ["--host", "127.0.0.1", "--port", str(port)]
    commands = {
        "ours": ([str(BIN / "bentoml"), "serve", prepared.bento, *host], "/predict", "/readyz"),
        "blend": ([str(BIN / "bentoml"), "serve", prepared.blend_bento, *host], "/predict", "/readyz"),
        **{
            name: (
                [str(BIN / "bentoml"), "serve", by_id.bento if by_id else "", *host],
                "/predict",
                "/readyz",
            )
            for name in BY_ID
        },
        "peer": (
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                "models:/bench/1",
                "--env-manager",
                "local",
                "-w",
                "1",
                *host,
            ],
            "/invocations",
            "/ping",
        ),
        "ceiling": (
            [str(BIN / "bentoml"), "serve", "benchmarks.serving_peers:LeanService", *host],
            "/forward",
            "/readyz",
        ),
        "limit": (
            [
                str(BIN / "uvicorn"),
                "benchmarks.serving_peers:bare_app",
                "--workers",
                "1",
                "--no-access-log",
                "--log-level",
                "warning",
                *host,
            ],
            "/forward",
            None,
        ),
    }
    command, path, ready = commands[server]
    if server == "peer":
        env["MLFLOW_TRACKING_URI"] = prepared.uri
    if server in BY_ID and by_id is not None:
        env["MLOPS_HOME"] = str(by_id.home)  # where the feature store's registry and online store live
    if server == "by-id-redis" and by_id is not None:
        env.update(by_id.redis)
    log = work / f"{server}.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    if ready is None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
    else:
        wait_ready(url + ready, proc, log)
    return proc, url, path


def single_p50(url: str, path: str, body: bytes, n: int = 400) -> float:
    parts = urllib.request.urlparse(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    times = []
    for i in range(n + 20):
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}{path}: {response.status}")
        if i >= 20:  # warm-up
            times.append(time.perf_counter() - started)
    connection.close()
    return statistics.median(times) * 1000


def load(
    url: str,
    path: str,
    body: bytes,
    seconds: int,
    work: Path,
    connections: int = CONNECTIONS,
    backoff: bool = False,
) -> Load:
    body_file = work / "body.json"
    body_file.write_bytes(body)
    script = work / "bench.lua"
    script.write_text(WRK_SCRIPT % {"token": TOKEN, "body": body_file} + (WRK_BACKOFF if backoff else ""))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url + path,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    requests, status_errors, socket_errors, p50_us, p99_us, duration_us = map(int, line.split()[1:])
    return Load(
        requests / (duration_us / 1e6),
        p50_us / 1000,
        p99_us / 1000,
        status_errors,
        socket_errors,
        requests,
        cpu / wall / (os.cpu_count() or 1),
    )


def metric_samples(url: str, name: str, **match: str) -> dict[str, float]:
    """``{label set: value}`` of the samples of ``name`` on ``url``/metrics whose labels include ``match``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels, value = line[len(name) + 1 :].rsplit("} ", 1)
        pairs = dict(part.split("=", 1) for part in labels.split(","))
        pairs = {k: v.strip('"') for k, v in pairs.items()}
        if all(pairs.get(k) == v for k, v in match.items()):
            samples[labels] = samples.get(labels, 0.0) + float(value)
    return samples


def answered(url: str) -> tuple[dict[str, float], dict[float, float]]:
    """/predict requests by status code so far, and the 200s' request-duration buckets (upper bound: count)."""
    by_code: dict[str, float] = {}
    for labels, value in metric_samples(url, "bentoml_service_request_total", endpoint="/predict").items():
        code = labels.split('http_response_code="', 1)[1].split('"', 1)[0]
        by_code[code] = by_code.get(code, 0.0) + value
    buckets: dict[float, float] = {}
    for labels, value in metric_samples(
        url, "bentoml_service_request_duration_seconds_bucket", endpoint="/predict", http_response_code="200"
    ).items():
        bound = float(labels.split('le="', 1)[1].split('"', 1)[0])
        buckets[bound] = buckets.get(bound, 0.0) + value
    return by_code, buckets


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' ``histogram_quantile`` on cumulative ``{upper bound: count}`` buckets: linear within the
    bucket that holds the rank (the +Inf bucket answers its lower bound)."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


def tree_rss_mb(root: int) -> float:
    """Resident memory of process ``root`` and all its descendants (from /proc), in MB."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def capacity(args: argparse.Namespace, work: Path, scorer_dir: Path, rows: pd.DataFrame) -> None:
    """The knee at 1 and 2 workers, 4x its connections with and without clients that wait, and the soak."""
    from serving.config import ServingConfig

    defaults = ServingConfig()
    slo_ms = defaults.slo.latency_p99_seconds * 1000
    body = bodies("ours", rows.head(1), scorer_dir)
    print(
        f"capacity: SLO p99 <= {slo_ms:.0f} ms, serving.max_in_flight {defaults.max_in_flight} per worker, "
        f"{args.step_seconds} s per step, {os.cpu_count()} cores"
    )
    for workers in (1, 2):
        bento = package(work, PACKAGE_DIR, str(scorer_dir), "bench", json.dumps({"workers": workers}))
        proc, url, path = start("ours", work, Prepared("", bento, scorer_dir, rows))
        try:
            load(url, path, body, 2, work, 8)  # warm-up
            print(f"\n{workers} worker(s)\n{'conns':>6}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
            knee, misses = None, 0
            for connections in CONNECTION_STEPS:
                r = load(url, path, body, args.step_seconds, work, connections)
                print(f"{connections:>6}{r.rps:>9,.0f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{r.non_2xx:>9}")
                if r.p99_ms <= slo_ms and r.non_2xx == 0 and r.socket_errors == 0:
                    knee, misses = connections, 0
                else:
                    misses += 1
                    if misses == 2:
                        break
            if knee is None:
                print(f"knee: none (p99 over {slo_ms:.0f} ms from {CONNECTION_STEPS[0]} connections)")
                continue
            print(
                f"knee at {workers} worker(s): {knee} connections (p99 within {slo_ms:.0f} ms, nothing shed)"
            )
            for backoff in (False, True):
                codes_before, buckets_before = answered(url)
                r = load(url, path, body, args.step_seconds, work, 4 * knee, backoff=backoff)
                codes_after, buckets_after = answered(url)
                codes = {k: codes_after[k] - codes_before.get(k, 0.0) for k in codes_after}
                buckets = {k: buckets_after[k] - buckets_before.get(k, 0.0) for k in buckets_after}
                total = sum(codes.values()) or 1.0
                shares = ", ".join(f"{k}: {v / total:.0%}" for k, v in sorted(codes.items()) if v)
                clients = "clients waiting Retry-After" if backoff else "clients retrying at once"
                print(
                    f"4x knee ({4 * knee} connections, {clients}): {total:,.0f} answers ({shares}); "
                    f"200s {codes.get('200', 0.0) / args.step_seconds:,.0f}/s; wrk p99 over all {r.p99_ms:.1f} ms; "
                    f"answered p99 (server) {histogram_quantile(0.99, buckets) * 1000:.1f} ms"
                )
            if workers == 2:
                soak(args, work, proc, url, path, body)
        finally:
            stop(proc)


def soak(
    args: argparse.Namespace, work: Path, proc: subprocess.Popen, url: str, path: str, body: bytes
) -> None:
    """``args.soak_seconds`` of load at 32 connections, the server's resident memory every 5 s."""
    import threading

    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not done.wait(5.0 if samples else 0.0):
            samples.append((time.monotonic() - started, tree_rss_mb(proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    r = load(url, path, body, args.soak_seconds, work, CONNECTIONS)
    done.set()
    sampler.join()
    start_mb, end_mb = samples[0][1], samples[-1][1]
    peak = max(mb for _, mb in samples)
    print(
        f"soak {args.soak_seconds} s at {CONNECTIONS} connections, 2 workers: {r.rps:,.0f} rps, p99 {r.p99_ms:.1f} ms, "
        f"non-2xx {r.non_2xx}; resident memory {start_mb:.0f} MB at start, {end_mb:.0f} MB at the end "
        f"({end_mb - start_mb:+.0f} MB, {(end_mb - start_mb) / start_mb:+.1%}), peak {peak:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="load per server and request size")
    parser.add_argument(
        "--single-requests", type=int, default=400, help="one-at-a-time requests timed for the single p50"
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=SERVERS,
        default=list(SERVERS),
        help="servers to measure (default: all)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="2,000 training rows, 1 s of load and 40 single requests on the by-id server on Redis (our Bento, full rows and ids; the "
        "SQLite store's by-id path is the same code, run end to end by the tests): checks that it runs",
    )
    parser.add_argument(
        "--capacity", action="store_true", help="the knee, 4x the knee and the soak (module doc) instead"
    )
    parser.add_argument("--step-seconds", type=int, default=10, help="load per capacity step")
    parser.add_argument("--soak-seconds", type=int, default=120, help="length of the soak")
    args = parser.parse_args()
    if args.capacity:
        if shutil.which("wrk") is None:
            sys.exit("wrk is not installed: apt-get install wrk")
        with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
            work = Path(tmp)
            prepared = prepare(work, 2_000 if args.smoke else 20_000)
            capacity(args, work, prepared.scorer_dir, prepared.rows)
        return
    if args.smoke:
        args.seconds, args.servers, args.single_requests = 1, ["by-id-redis"], 40
    if shutil.which("wrk") is None:
        sys.exit(
            "wrk is not installed: apt-get install wrk (a compiled load client, so the client is not the bottleneck)"
        )
    results: dict[tuple[str, int], Load] = {}
    singles: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        size = 2_000 if args.smoke else 20_000
        prepared = (
            prepare(work, size, blend="blend" in args.servers)
            if set(args.servers) - set(BY_ID)
            else Prepared("", "", work, pd.DataFrame())
        )
        redis_proc, redis = start_redis(work) if "by-id-redis" in args.servers else (None, None)
        try:
            by_id = (
                prepare_by_id(work, size, redis, sqlite="by-id" in args.servers)
                if set(BY_ID) & set(args.servers)
                else None
            )
            measure(args, work, prepared, by_id, results, singles)
        finally:
            if redis_proc is not None:
                stop(redis_proc)
    report(args, results, singles)


def measure(
    args: argparse.Namespace,
    work: Path,
    prepared: Prepared,
    by_id: ByIdModel | None,
    results: dict[tuple[str, int], Load],
    singles: dict[str, float],
) -> None:
    """Each server of ``args.servers`` in turn: its single-request p50 and its load figures per size."""
    scorer_dir, rows = prepared.scorer_dir, prepared.rows
    for server in args.servers:
        proc, url, path = start(server, work, prepared, by_id)
        try:
            if server in BY_ID:
                assert by_id is not None
                bodies_by_kind = {
                    "full": by_id.full_rows,
                    "ids": [{"lead_id": i} for i in by_id.ids],
                }
                # Each size's two kinds back to back: the figures compared are measured in the same state
                # (the prediction log grows by every answered row, a million of them in a minute at 64 rows).
                for kind, records in bodies_by_kind.items():
                    singles[f"{server} {kind}"] = single_p50(
                        url, path, json.dumps({"rows": records[:1]}).encode(), args.single_requests
                    )
                for size in (1, 64):
                    for kind, records in bodies_by_kind.items():
                        body = json.dumps({"rows": records[:size]}).encode()
                        results[f"{server} {kind}", size] = load(url, path, body, args.seconds, work)
                continue
            one = bodies(server, rows.head(1), scorer_dir)
            singles[server] = single_p50(url, path, one, args.single_requests)
            for size in (1, 64):
                body = one if size == 1 else bodies(server, rows.head(64), scorer_dir)
                results[server, size] = load(url, path, body, args.seconds, work)
        finally:
            stop(proc)


def report(args: argparse.Namespace, results: dict[tuple[str, int], Load], singles: dict[str, float]) -> None:
    """The table of every load, the single-request p50s, the ratios and the targets."""
    print(f"{CONNECTIONS} connections, {args.seconds} s each, one worker per server, {os.cpu_count()} cores")
    print(
        f"{'server':<18}{'rows':>5}{'rps':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'sock err':>9}{'client cpu':>11}"
    )
    for (server, size), r in results.items():
        print(
            f"{server:<18}{size:>5}{r.rps:>10,.0f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{r.non_2xx:>9}{r.socket_errors:>9}"
            f"{r.client_cpu_share:>10.0%}"
        )
    for server, p50 in singles.items():
        print(f"single-request p50 {server:<17} {p50:6.2f} ms")
    for server in ("ours", "blend"):
        if server in singles:
            print(
                f"target single-row p50 <= {TARGETS['single_p50_ms']} ms: {server} {singles[server]:.2f} ms "
                f"(ratio {singles[server] / TARGETS['single_p50_ms']:.2f})"
            )
    if "ours" in singles and "blend" in singles:
        print(f"blend's cost per single request: {singles['blend'] - singles['ours']:+.2f} ms p50 over ours")
    for size in (1, 64):
        if ("ours", size) in results and ("blend", size) in results:
            ratio = results["blend", size].rps / results["ours", size].rps
            print(f"{size:>2} rows: blend / ours    {ratio:5.2f}x")
    for size in (1, 64):
        ours = results.get(("ours", size))
        if ours is None:
            continue
        for other, target in (
            ("ceiling", TARGETS["vs_ceiling"]),
            ("peer", TARGETS["vs_peer"]),
            ("limit", None),
        ):
            if (other, size) in results:
                ratio = ours.rps / results[other, size].rps
                goal = f" (target >= {target})" if target else ""
                print(f"{size:>2} rows: ours / {other:<7} {ratio:5.2f}x{goal}")
    for server, target in (("by-id", TARGETS["single_p50_ms"]), ("by-id-redis", TARGETS["redis_p50_ms"])):
        if f"{server} ids" not in singles:
            continue
        p50 = singles[f"{server} ids"]
        print(
            f"target {server} p50 <= {target} ms: {p50:.2f} ms "
            f"(ratio {p50 / target:.2f}; full rows on the same server {singles[f'{server} full']:.2f} ms)"
        )
        for size in (1, 64):
            ratio = results[f"{server} ids", size].rps / results[f"{server} full", size].rps
            goal = f" (target >= {TARGETS['by_id_vs_full']})" if size == 1 else ""
            print(f"{size:>2} rows: {server} by id / full rows {ratio:5.2f}x{goal}")
    errors = sum(r.non_2xx + r.socket_errors for r in results.values())
    print(f"errors over all runs: {errors} (target 0)")


if __name__ == "__main__":
    main()
