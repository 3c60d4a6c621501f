"""The stack's Feast UI: ``python -m infra.stack.feast_ui --host 127.0.0.1 --port 8888 --repo feature_repo/crm``.

``feast ui`` reads a repository's feature_store.yaml as written: the embedded stores in the home. This reads
it as every client of the stack does (``models.features.store.on_stack``): ``${MLOPS_HOME}`` expanded, the
registry in Postgres when ``MLOPS_FEAST_REGISTRY`` is set, the online store on the stack's Redis. Then it
serves Feast's own UI app, whose ``/health`` answers 200 once the registry can be read.

The UI has no authentication: anyone who reaches its port reads every definition, and its REST API can
push rows into the stores. ``mlops up`` binds it to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from models.features.store import on_stack

if TYPE_CHECKING:  # Feast is imported where it is used (5 s)
    from feast import FeatureStore

# How stale the UI's registry may be. Feast's default cache keeps a file registry 10 minutes (the clients' SQL
# registry a minute): a definition applied, or a view materialised, would not show for that long. Re-reading a
# small registry every few seconds while someone browses costs nothing.
UI_REGISTRY_TTL_SECONDS = 5


def ui_config(raw: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The UI's repository config: ``raw`` (a feature_store.yaml, variables expanded) on the stack's stores as
    ``environ`` names them, as clients read it, with the registry re-read every few seconds."""
    config = on_stack(dict(raw), environ)
    registry = config.get("registry")
    registry = {"path": registry} if isinstance(registry, str) else dict(registry or {})
    config["registry"] = {**registry, "cache_ttl_seconds": UI_REGISTRY_TTL_SECONDS}
    return config


def _store(repo: Path) -> FeatureStore:
    """The repository's store as the UI serves it: its config read as the stack's clients read it."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    text = os.path.expandvars((repo / "feature_store.yaml").read_text())
    config = RepoConfig(**ui_config(yaml.safe_load(text), os.environ))
    config.repo_path = repo
    if config.registry.registry_type == "file":
        # A fresh home: nothing applied yet. Feast creates the registry's file, not its folder.
        Path(config.registry.path).parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=config)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m infra.stack.feast_ui", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", required=True, help="Address to bind (127.0.0.1: the UI has no login).")
    parser.add_argument("--port", type=int, required=True, help="Port to serve the UI on.")
    parser.add_argument(
        "--repo", type=Path, required=True, help="Feast repository folder (feature_store.yaml)."
    )
    args = parser.parse_args(argv)
    _store(args.repo.resolve()).serve_ui(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
