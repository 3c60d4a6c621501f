"""The blended ensemble inside a saved model: the network's logit and gradient-boosted trees' margins, weighted.

A blend scores a row as ``network_weight * network_logit + sum_k weight_k * margin_k + intercept``, where
``margin_k`` is member k's raw score (its log-odds) averaged over its models (one per cross-validation fold,
or the one fitted on the training split). The scorer's calibration then maps that logit to a probability,
as it does the network's alone. Weights are fitted by ``models.training.blend``; here they are only applied.

Members are saved in their libraries' own formats (CatBoost's ``.cbm``, LightGBM's text model), never
pickled: ``blend.json`` names the files and holds the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.features.transform import EncodedFeatures

BLEND_FILE = "blend.json"  # absent: the network alone
MEMBERS_DIR = "blend_members"
PARALLEL_ROWS = 10_000  # fewer rows are scored on one thread
TreeKind = Literal["catboost", "lightgbm"]


def catboost_frame(encoded: EncodedFeatures) -> pd.DataFrame:
    """CatBoost takes categorical columns as integers or strings, not floats: a frame with both kinds."""
    columns = {f"n{j}": encoded.numeric[:, j] for j in range(encoded.numeric.shape[1])}
    columns |= {f"c{j}": encoded.categorical[:, j] for j in range(encoded.categorical.shape[1])}
    return pd.DataFrame(columns, index=pd.RangeIndex(len(encoded)))


def tree_matrix(encoded: EncodedFeatures) -> np.ndarray:
    """LightGBM's (and scikit-learn's) input: numerics, then the categorical indices as numbers."""
    return np.hstack([encoded.numeric, encoded.categorical.astype(np.float32)])


@dataclass
class TreeModel:
    """One fitted gradient-boosted tree model scoring encoded rows: its raw margin (log-odds), float64 [n]."""

    kind: TreeKind
    model: Any  # catboost.CatBoostClassifier, or lightgbm.Booster

    def margin(self, encoded: EncodedFeatures) -> np.ndarray:
        # One thread for a request's few rows (a served worker's budget, no thread pool to wake up); the
        # libraries' default (every core) for a batch.
        threads = 1 if len(encoded) < PARALLEL_ROWS else -1
        if self.kind == "catboost":
            raw = self.model.predict(
                catboost_frame(encoded), prediction_type="RawFormulaVal", thread_count=threads
            )
            return np.asarray(raw, dtype=np.float64)
        raw = self.model.predict(tree_matrix(encoded), raw_score=True, num_threads=max(threads, 0))
        return np.asarray(raw, dtype=np.float64)

    def save(self, path: Path) -> None:
        if self.kind == "catboost":
            self.model.save_model(str(path), format="cbm")
        else:
            self.model.save_model(str(path))

    @classmethod
    def load(cls, kind: TreeKind, path: Path) -> TreeModel:
        if kind == "catboost":
            from catboost import CatBoostClassifier

            model = CatBoostClassifier()
            model.load_model(str(path), format="cbm")
            return cls(kind, model)
        import lightgbm

        return cls(kind, lightgbm.Booster(model_file=str(path)))


@dataclass
class BlendMember:
    """A blended baseline: its name, its weight and its models (margins averaged)."""

    name: str
    kind: TreeKind
    weight: float
    models: list[TreeModel]
    _scoring: list[TreeModel] | None = field(default=None, init=False, repr=False, compare=False)

    def margin(self, encoded: EncodedFeatures) -> np.ndarray:
        return np.mean([model.margin(encoded) for model in self.scoring()], axis=0)

    def __getstate__(self) -> dict:
        """Pickled (Prefect's persisted results, its cache keys) without the merged model, which CatBoost
        cannot serialise; it is merged again on first use."""
        return self.__dict__ | {"_scoring": None}

    def scoring(self) -> list[TreeModel]:
        """The models that score: CatBoost fold models merged in memory into one whose margin is their mean
        (CatBoost's ``sum_models`` keeping every model's categorical statistics: raw scores add up exactly).
        A CatBoost call costs about 0.4 ms whatever the model (measured, one row), so one merged model
        instead of five takes 1.6 ms off every request. The fold models themselves are what is saved:
        CatBoost cannot save such a merged model (its statistics tables clash)."""
        if self._scoring is None:
            self._scoring = self.models
            if self.kind == "catboost" and len(self.models) > 1:
                from catboost import sum_models

                merged = sum_models(
                    [m.model for m in self.models],
                    weights=[1.0 / len(self.models)] * len(self.models),
                    ctr_merge_policy="KeepAllTables",
                )
                self._scoring = [TreeModel(self.kind, merged)]
        return self._scoring


@dataclass
class Blend:
    """Weights on the network's logit and on each member's margin, and the intercept."""

    network_weight: float
    intercept: float
    members: list[BlendMember]

    def combine(self, network_logits: np.ndarray, encoded: EncodedFeatures) -> np.ndarray:
        """The blend's logit per row, float64 [n]."""
        out = self.network_weight * np.asarray(network_logits, dtype=np.float64) + self.intercept
        for member in self.members:
            if member.weight != 0.0:
                out = out + member.weight * member.margin(encoded)
        return out

    def describe(self) -> str:
        """``network 0.62, catboost 0.41, lightgbm 0.00, intercept -0.13``."""
        parts = [f"network {self.network_weight:.3f}"] + [f"{m.name} {m.weight:.3f}" for m in self.members]
        return ", ".join(parts) + f", intercept {self.intercept:+.3f}"

    def save(self, directory: Path) -> None:
        folder = directory / MEMBERS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        members = []
        for member in self.members:
            files = []
            for i, model in enumerate(member.models):
                name = f"{member.name}-{i}.{'cbm' if member.kind == 'catboost' else 'txt'}"
                model.save(folder / name)
                files.append(name)
            members.append(
                {"name": member.name, "kind": member.kind, "weight": member.weight, "files": files}
            )
        document = {"network_weight": self.network_weight, "intercept": self.intercept, "members": members}
        (directory / BLEND_FILE).write_text(json.dumps(document, indent=2))

    @staticmethod
    def files(directory: Path) -> list[str]:
        """The blend's files in a saved model folder, relative to it (none for a network alone)."""
        path = directory / BLEND_FILE
        if not path.is_file():
            return []
        members = json.loads(path.read_text())["members"]
        return [BLEND_FILE, *(f"{MEMBERS_DIR}/{name}" for m in members for name in m["files"])]

    @classmethod
    def load(cls, directory: Path) -> Blend | None:
        """The blend saved in ``directory``; None when the model is the network alone."""
        path = directory / BLEND_FILE
        if not path.is_file():
            return None
        document = json.loads(path.read_text())
        members = [
            BlendMember(
                m["name"],
                m["kind"],
                float(m["weight"]),
                [TreeModel.load(m["kind"], directory / MEMBERS_DIR / name) for name in m["files"]],
            )
            for m in document["members"]
        ]
        return cls(float(document["network_weight"]), float(document["intercept"]), members)
