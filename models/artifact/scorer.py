"""The saved model: fitted transform + network, used unchanged by training, batch scoring and serving."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from models.artifact.blend import Blend
from models.artifact.calibrator import TemperatureScaling
from models.artifact.decision import DecisionRule
from models.features.store import FeatureLookup
from models.features.transform import EncodedFeatures, FeatureTransform
from models.nn.network import FoldEnsemble, TabularNet, build_net

TRANSFORM_FILE = "transform.json"
NETWORK_FILE = "network.json"
WEIGHTS_FILE = "weights.pt"
CALIBRATION_FILE = "calibration.json"  # absent in models saved before calibration: the identity
DECISION_FILE = "decision.json"  # absent: no decision rule saved, scores only
LOOKUP_FILE = "feature_lookup.json"  # present when trained from a feature service: scoring by entity id
_SCORING_BATCH_ROWS = 65_536  # bounds peak memory on large frames; big enough to amortise per-call cost


@dataclass(frozen=True)
class FeatureColumn:
    """An input column the model needs and how it is encoded."""

    name: str
    kind: Literal["numeric", "categorical"]


class TabularScorer:
    """Turns a raw frame into calibrated probabilities (and contact decisions); fp32 on CPU in eval mode
    so saved and loaded copies agree bit for bit.

    The scorer owns `net`: it is moved to CPU fp32 and put in eval mode here. `calibration` maps the
    network's logits to probabilities (identity until fitted); `decision` is the saved contact rule. With a
    `blend`, the logits are the blend's (the network's and gradient-boosted trees' log-odds, weighted:
    `models.artifact.blend`) and the calibration maps those.
    """

    def __init__(
        self,
        transform: FeatureTransform,
        net: TabularNet | FoldEnsemble,
        net_config: dict[str, Any],
        calibration: TemperatureScaling | None = None,
        decision: DecisionRule | None = None,
        lookup: FeatureLookup | None = None,
        blend: Blend | None = None,
    ) -> None:
        assert net_config == net.architecture(), "net_config must describe net"
        self.transform = transform
        self.net = net.to(device="cpu", dtype=torch.float32).eval()
        self.net_config = dict(net_config)
        self.calibration = calibration or TemperatureScaling()
        self.decision = decision
        self.lookup = lookup
        self.blend = blend

    def _with(self, **changes: Any) -> TabularScorer:
        parts = {
            "calibration": self.calibration,
            "decision": self.decision,
            "lookup": self.lookup,
            "blend": self.blend,
        }
        return TabularScorer(self.transform, self.net, self.net_config, **(parts | changes))

    def with_blend(self, blend: Blend | None, calibration: TemperatureScaling) -> TabularScorer:
        """The network blended with tree models (None: the network alone), with the calibration of that
        blend's logits (the network is shared, not copied)."""
        return self._with(blend=blend, calibration=calibration)

    def with_calibration(self, calibration: TemperatureScaling) -> TabularScorer:
        """The same network and transform with another calibration (the network is shared, not copied)."""
        return self._with(calibration=calibration)

    def with_decision(self, decision: DecisionRule) -> TabularScorer:
        """The same model with a contact rule to save and serve."""
        return self._with(decision=decision)

    def with_lookup(self, lookup: FeatureLookup) -> TabularScorer:
        """The same model, reading its features from ``lookup``'s feature service when scored by entity id."""
        return self._with(lookup=lookup)

    @property
    def feature_columns(self) -> list[FeatureColumn]:
        """Input columns in model order: numerics first, then categoricals."""
        spec = self.transform.spec
        return [FeatureColumn(name, "numeric") for name in spec.numeric] + [
            FeatureColumn(name, "categorical") for name in spec.categorical
        ]

    def logits(self, df: pd.DataFrame) -> np.ndarray:
        """The model's raw logits per row (the network's, or its blend's), float64 [n], before calibration."""
        return self.logits_encoded(self.transform.transform(df))

    def logits_encoded(self, encoded: EncodedFeatures) -> np.ndarray:
        """Raw logits of rows already encoded by this scorer's transform, float64 [n]: the blend's when there
        is one."""
        logits = self.network_logits_encoded(encoded)
        return logits if self.blend is None else self.blend.combine(logits, encoded)

    def network_logits_encoded(self, encoded: EncodedFeatures) -> np.ndarray:
        """The network's own raw logits of encoded rows, float64 [n] (blend or not)."""
        x_num = torch.from_numpy(encoded.numeric)  # [n, n_num] float32
        x_cat = torch.from_numpy(encoded.categorical)  # [n, n_cat] int64
        logits = np.empty(len(encoded), dtype=np.float64)  # [n]
        with torch.inference_mode():
            for start in range(0, len(encoded), _SCORING_BATCH_ROWS):
                stop = start + _SCORING_BATCH_ROWS
                logits[start:stop] = self.net(x_num[start:stop], x_cat[start:stop]).numpy()
        return logits

    def predict_proba(self, df: pd.DataFrame, *, calibrated: bool = True) -> np.ndarray:
        """P(label = 1) per row as float64 [n] in [0, 1]; raises `MissingColumnsError` on absent columns.

        `calibrated=False` gives the network's own probabilities (for the before/after comparison).
        """
        return self.predict_proba_encoded(self.transform.transform(df), calibrated=calibrated)

    def predict_proba_encoded(self, encoded: EncodedFeatures, *, calibrated: bool = True) -> np.ndarray:
        """`predict_proba` of rows already encoded by this scorer's transform (the serving path)."""
        logits = self.logits_encoded(encoded)
        if calibrated:
            logits = self.calibration.apply(logits)
        return torch.sigmoid(torch.from_numpy(logits)).numpy()  # float64 sigmoid, stable for any logit

    def score_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` with a ``score`` column (calibrated P(label = 1)) appended, and a ``contact`` column when
        the model has a decision rule: batch scoring of a table (the whole table is one batch)."""
        scores = self.predict_proba(df)
        if self.decision is None:
            return df.assign(score=scores)
        return df.assign(score=scores, contact=self.decision.decide(scores))

    def save(self, directory: Path) -> None:
        """Write `transform.json`, `network.json` (constructor arguments), `weights.pt` (state_dict),
        `calibration.json` and, when there is a rule, `decision.json`; with a lookup, `feature_lookup.json`;
        with a blend, `blend.json` and its members' model files."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / TRANSFORM_FILE).write_text(json.dumps(self.transform.to_dict(), indent=2))
        (directory / NETWORK_FILE).write_text(json.dumps(self.net_config, indent=2))
        torch.save(self.net.state_dict(), directory / WEIGHTS_FILE)
        (directory / CALIBRATION_FILE).write_text(json.dumps(self.calibration.to_dict(), indent=2))
        if self.decision is not None:
            (directory / DECISION_FILE).write_text(json.dumps(self.decision.to_dict(), indent=2))
        if self.lookup is not None:
            (directory / LOOKUP_FILE).write_text(json.dumps(self.lookup.to_dict(), indent=2))
        if self.blend is not None:
            self.blend.save(directory)

    @classmethod
    def load(cls, directory: Path) -> TabularScorer:
        """Rebuild a scorer written by `save`; weights are loaded with `weights_only=True` (no pickle code)."""
        directory = Path(directory)
        transform = FeatureTransform.from_dict(json.loads((directory / TRANSFORM_FILE).read_text()))
        net_config = json.loads((directory / NETWORK_FILE).read_text())
        net = build_net(net_config)
        net.load_state_dict(torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        calibration = decision = lookup = None
        if (directory / CALIBRATION_FILE).is_file():
            calibration = TemperatureScaling.from_dict(json.loads((directory / CALIBRATION_FILE).read_text()))
        if (directory / DECISION_FILE).is_file():
            decision = DecisionRule.from_dict(json.loads((directory / DECISION_FILE).read_text()))
        if (directory / LOOKUP_FILE).is_file():
            lookup = FeatureLookup.from_dict(json.loads((directory / LOOKUP_FILE).read_text()))
        return cls(transform, net, net_config, calibration, decision, lookup, Blend.load(directory))
