"""Packaging for BentoML: the scorer as a model in the local model store, then an offline Bento serving it.

Both stores live under ``BENTOML_HOME``, which BentoML reads once per process, at its first store access: the
caller sets it before that (a process that needs two homes must use subprocesses). The Bento build
options come from ``serving/bentofile.yaml`` (the same file users build with by hand); `build_bento` adds the
model, the Bento name, labels and the serving config.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import bentoml
import yaml

from models.artifact.blend import Blend
from models.artifact.scorer import (
    CALIBRATION_FILE,
    DECISION_FILE,
    LOOKUP_FILE,
    NETWORK_FILE,
    TRANSFORM_FILE,
    WEIGHTS_FILE,
    TabularScorer,
)
from models.governance.names import Alias
from serving.config import ServingConfig

REPO_ROOT = (
    Path(__file__).resolve().parents[1]
)  # build context: `models/`, `monitoring/`, `serving/` below it
BENTOFILE = Path(__file__).with_name("bentofile.yaml")

MODEL_ALIAS = Alias.CHAMPION.value  # the Bento's model answers to this name inside the served Bento
SERVING_CONFIG_ARG = "serving_config"  # Bento argument carrying ServingConfig into the service

# Metadata keys written by `save_model` and read by the service.
MODEL_NAME_KEY = "model_name"
MODEL_VERSION_KEY = "model_version"
ENTITY_COLUMN_KEY = "entity_id_column"  # the request field logged as the entity id ("" or absent: none)
FEATURE_SCHEMA_KEY = "feature_schema"
# The version's `monitoring.score_quantiles` tag as JSON ("" or absent: registered without one).
REFERENCE_QUANTILES_KEY = "reference_score_quantiles"
SCORER_DIGEST_KEY = "scorer_sha256"
_RESERVED_KEYS = (FEATURE_SCHEMA_KEY, SCORER_DIGEST_KEY)
_SCORER_FILES = (TRANSFORM_FILE, NETWORK_FILE, WEIGHTS_FILE)
# Written by current scorers; hashed when present, so older models (without them) still verify.
_OPTIONAL_SCORER_FILES = (CALIBRATION_FILE, DECISION_FILE, LOOKUP_FILE)
_BENTOFILE_KEYS = ("service", "include", "exclude", "python", "description", "docker")


class ModelIntegrityError(RuntimeError):
    """The scorer files of a stored model do not match the digest recorded when it was saved."""


def scorer_files(directory: Path) -> list[str]:
    """The files of the scorer saved in ``directory``, relative to it, in a fixed order: the network's, the
    optional ones present, and a blend's (its weights and each member's model file)."""
    present = [name for name in _OPTIONAL_SCORER_FILES if (Path(directory) / name).is_file()]
    return [*_SCORER_FILES, *present, *Blend.files(Path(directory))]


def scorer_digest(directory: Path) -> str:
    """SHA-256 over the scorer's files (name and bytes, fixed order): detects a corrupted or swapped model."""
    digest = hashlib.sha256()
    for name in scorer_files(directory):
        digest.update(name.encode() + b"\0")
        digest.update((Path(directory) / name).read_bytes())
    return digest.hexdigest()


def verify_scorer_files(directory: Path, expected_digest: str | None) -> None:
    """Raise `ModelIntegrityError` unless the files in `directory` hash to `expected_digest`."""
    if expected_digest is None:
        raise ModelIntegrityError(f"model at {directory} has no {SCORER_DIGEST_KEY!r} in its metadata")
    actual = scorer_digest(directory)
    if actual != expected_digest:
        raise ModelIntegrityError(
            f"model files at {directory} hash to {actual}, metadata says {expected_digest}"
        )


def save_model(
    scorer: TabularScorer,
    *,
    name: str,
    metadata: dict[str, str | int | float],
    labels: dict[str, str] | None = None,
) -> bentoml.Tag:
    """Save `scorer` as a new version of BentoML model `name` in the local model store; return its tag.

    `name` must be a valid BentoML tag name (lower-case letters, digits, ``-``, ``_``, ``.``). `metadata`
    should carry ``model_name`` / ``model_version`` (the registry's name and version, served as the
    prediction's ``model_version``) and e.g. ``run_id``; the feature schema and a digest of the scorer files
    (checked when the service loads the model) are added here.
    """
    clashes = [key for key in _RESERVED_KEYS if key in metadata]
    if clashes:
        raise ValueError(f"metadata keys {clashes} are reserved: save_model writes them")
    with tempfile.TemporaryDirectory(prefix="mlops-scorer-") as tmp:
        staged = Path(tmp)
        scorer.save(staged)
        full_metadata: dict[str, Any] = {
            **metadata,
            FEATURE_SCHEMA_KEY: [{"name": c.name, "kind": c.kind} for c in scorer.feature_columns],
            SCORER_DIGEST_KEY: scorer_digest(staged),
        }
        with bentoml.models.create(name, labels=labels, metadata=full_metadata) as model:
            for file_name in scorer_files(staged):
                (Path(model.path) / file_name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(staged / file_name, Path(model.path) / file_name)
    return model.tag


def load_bentofile(path: Path = BENTOFILE) -> dict[str, Any]:
    """Build options of `serving/bentofile.yaml` that `build_bento` passes on (not `models`: it adds its own)."""
    spec = yaml.safe_load(Path(path).read_text())
    unknown = set(spec) - set(_BENTOFILE_KEYS) - {"models", "name", "labels"}
    if unknown:
        raise ValueError(f"{path}: keys {sorted(unknown)} are not passed on by build_bento")
    return {key: spec[key] for key in _BENTOFILE_KEYS if key in spec}


def pin_installed(packages: list[str]) -> list[str]:
    """``name`` -> ``name==<version installed here>``; entries with a specifier, or not installed, unchanged.

    A Bento's container then gets the versions the model was trained and tested with, without locking
    (which would resolve against a package index).
    """
    pinned = []
    for requirement in packages:
        name = requirement.strip()
        if name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                name = f"{name}=={importlib.metadata.version(name)}"
        pinned.append(name)
    return pinned


def build_bento(
    model_tag: bentoml.Tag | str,
    *,
    service_name: str,
    config: ServingConfig | None = None,
    labels: dict[str, str] | None = None,
    version: str | None = None,
) -> bentoml.Tag:
    """Build Bento `service_name` serving model `model_tag`, offline, from any working directory.

    The model is referenced under the alias ``champion`` (what the service loads); as usual in BentoML 1.4 it
    stays in the model store of the same ``BENTOML_HOME`` (``bentoml export`` / ``containerize`` pack it).
    `config` travels as a Bento argument (the service reads its token variable and row limit from it), and
    packages are pinned to the versions installed here (`pin_installed`) but not locked, so nothing is
    resolved against a package index.
    ``bentoml serve <returned tag>`` runs it.
    """
    model = bentoml.models.get(model_tag)  # fails early, naming the tag, if the model is not in the store
    metadata = model.info.metadata
    config = config or ServingConfig()
    options = load_bentofile()
    python = dict(options.get("python") or {})
    python["packages"] = pin_installed(list(python.get("packages") or []))
    bento = bentoml.bentos.build(
        **(options | {"python": python}),
        name=service_name,
        labels={
            "model_name": str(metadata.get(MODEL_NAME_KEY, model.tag.name)),
            "model_version": str(metadata.get(MODEL_VERSION_KEY, model.tag.version)),
            "bento_model": model.tag.name,
            "bento_model_version": str(model.tag.version),
            **(labels or {}),
        },
        models=[{"tag": str(model.tag), "alias": MODEL_ALIAS}],
        version=version,
        build_ctx=str(REPO_ROOT),
        args={SERVING_CONFIG_ARG: json.loads(config.model_dump_json())},
    )
    return bento.tag
