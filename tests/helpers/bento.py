"""A scorer packaged as a Bento, in an interpreter of its own: BentoML fixes its home (``BENTOML_HOME``)
at its first use in a process, so the tests never package in theirs.

``package_bento`` runs this module as a script (``python -m helpers.bento``), which packages either a
scorer saved in a folder (``--scorer DIR``) or a registered version loaded from an MLflow server
(``--registry TRACKING_URI``, version ``--version`` of model ``--name``), and prints one JSON line:
``{"model": <BentoML model tag>, "bento": <Bento tag>}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def serve_bento(
    bento: str, env: Mapping[str, str], log: Path, cwd: Path, timeout: float = 180
) -> tuple[subprocess.Popen, int]:
    """`bentoml serve` of ``bento`` on a free loopback port, as its own process group (stop it with
    ``helpers.processes.stop_process``), its output in ``log``; returns once ``/readyz`` answers."""
    from helpers.processes import free_port, wait_http

    port = free_port()
    with log.open("w") as handle:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "bentoml"),
                "serve",
                bento,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=dict(env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=timeout, proc=server, log=log)
    except BaseException:
        from helpers.processes import stop_process

        stop_process(server)
        raise
    return server, port


def package_bento(
    *args: str, cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """``python -m helpers.bento *args`` in ``cwd`` with ``env`` (and the tests' folder on PYTHONPATH, so
    that ``helpers`` imports from any working directory); its output captured as text."""
    pythonpath = os.pathsep.join(path for path in (str(TESTS), env.get("PYTHONPATH", "")) if path)
    return subprocess.run(
        [sys.executable, "-m", "helpers.bento", *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def package(
    *,
    name: str,
    version: str,
    scorer_dir: Path | None = None,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    service_name: str | None = None,
    entity_id_column: str = "lead_id",
    serving_config: Mapping[str, object] | None = None,
    reference_quantiles: str | None = None,
) -> dict[str, str]:
    """Save the scorer as BentoML model ``name`` (metadata: registry name and version, ``run_id`` if given,
    the entity id column) and build Bento ``service_name`` (default ``name``) serving it with
    ``serving_config`` (the ServingConfig's fields); the two tags. The scorer is the one saved in
    ``scorer_dir``, or else version ``version`` of ``name`` in the registry at ``tracking_uri``."""
    from serving.config import ServingConfig
    from serving.packaging import build_bento, save_model

    if scorer_dir is not None:
        from models.artifact.scorer import TabularScorer

        scorer = TabularScorer.load(scorer_dir)
    elif tracking_uri is not None:
        from tasks.registry import load_scorer

        scorer = load_scorer(tracking_uri, f"models:/{name}/{version}")
    else:
        raise ValueError("give scorer_dir or tracking_uri")
    metadata = {"model_name": name, "model_version": version}
    if run_id is not None:
        metadata["run_id"] = run_id
    metadata["entity_id_column"] = entity_id_column
    if reference_quantiles is not None:  # as registration saves them: JSON of {quantile: score}
        from serving.packaging import REFERENCE_QUANTILES_KEY

        metadata[REFERENCE_QUANTILES_KEY] = reference_quantiles
    tag = save_model(scorer, name=name, metadata=metadata)
    config = ServingConfig(**(serving_config or {}))
    bento = build_bento(tag, service_name=service_name or name, config=config)
    return {"model": str(tag), "bento": str(bento)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers.bento", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--scorer", type=Path, help="folder of a saved scorer")
    source.add_argument("--registry", metavar="TRACKING_URI", help="MLflow server holding version --version")
    parser.add_argument("--name", required=True, help="BentoML model name and registered model name")
    parser.add_argument("--version", required=True, help="registered model version (metadata, and loaded)")
    parser.add_argument("--run-id", help="MLflow run id recorded in the model's metadata")
    parser.add_argument("--service-name", help="the Bento's name (default: --name)")
    parser.add_argument("--entity-id-column", default="lead_id")
    parser.add_argument("--serving-config", type=json.loads, default={}, help="ServingConfig fields, as JSON")
    parser.add_argument("--reference-quantiles", help="held-out score quantiles, JSON {quantile: score}")
    options = parser.parse_args(argv)
    tags = package(
        name=options.name,
        version=options.version,
        scorer_dir=options.scorer,
        tracking_uri=options.registry,
        run_id=options.run_id,
        service_name=options.service_name,
        entity_id_column=options.entity_id_column,
        serving_config=options.serving_config,
        reference_quantiles=options.reference_quantiles,
    )
    print(json.dumps(tags))


if __name__ == "__main__":
    main()
