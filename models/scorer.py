"""The saved model: fitted transform + network, used unchanged by training, batch scoring and serving."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from models.features import FeatureTransform
from models.network import TabularNet

TRANSFORM_FILE = "transform.json"
NETWORK_FILE = "network.json"
WEIGHTS_FILE = "weights.pt"
_SCORING_BATCH_ROWS = 65_536  # bounds peak memory on large frames; big enough to amortise per-call cost


@dataclass(frozen=True)
class FeatureColumn:
    """An input column the model needs and how it is encoded."""

    name: str
    kind: Literal["numeric", "categorical"]


class TabularScorer:
    """Turns a raw frame into probabilities; fp32 on CPU in eval mode so saved and loaded copies agree
    bit for bit.

    The scorer owns `net`: it is moved to CPU fp32 and put in eval mode here.
    """

    def __init__(self, transform: FeatureTransform, net: TabularNet, net_config: dict[str, Any]) -> None:
        assert net_config == net.architecture(), "net_config must describe net"
        self.transform = transform
        self.net = net.to(device="cpu", dtype=torch.float32).eval()
        self.net_config = dict(net_config)

    @property
    def feature_columns(self) -> list[FeatureColumn]:
        """Input columns in model order: numerics first, then categoricals."""
        spec = self.transform.spec
        return [FeatureColumn(name, "numeric") for name in spec.numeric] + [
            FeatureColumn(name, "categorical") for name in spec.categorical
        ]

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """P(label = 1) per row as float64 [n] in [0, 1]; raises `MissingColumnsError` on absent columns."""
        encoded = self.transform.transform(df)
        x_num = torch.from_numpy(encoded.numeric)  # [n, n_num] float32
        x_cat = torch.from_numpy(encoded.categorical)  # [n, n_cat] int64
        logits = np.empty(len(encoded), dtype=np.float64)  # [n]
        with torch.inference_mode():
            for start in range(0, len(encoded), _SCORING_BATCH_ROWS):
                stop = start + _SCORING_BATCH_ROWS
                logits[start:stop] = self.net(x_num[start:stop], x_cat[start:stop]).numpy()
        return torch.sigmoid(torch.from_numpy(logits)).numpy()  # float64 sigmoid, stable for any logit

    def score_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` with a ``score`` column (P(label = 1)) appended: batch scoring of a table."""
        return df.assign(score=self.predict_proba(df))

    def save(self, directory: Path) -> None:
        """Write `transform.json`, `network.json` (constructor arguments) and `weights.pt` (state_dict)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / TRANSFORM_FILE).write_text(json.dumps(self.transform.to_dict(), indent=2))
        (directory / NETWORK_FILE).write_text(json.dumps(self.net_config, indent=2))
        torch.save(self.net.state_dict(), directory / WEIGHTS_FILE)

    @classmethod
    def load(cls, directory: Path) -> TabularScorer:
        """Rebuild a scorer written by `save`; weights are loaded with `weights_only=True` (no pickle code)."""
        directory = Path(directory)
        transform = FeatureTransform.from_dict(json.loads((directory / TRANSFORM_FILE).read_text()))
        net_config = json.loads((directory / NETWORK_FILE).read_text())
        net = TabularNet(**net_config)
        net.load_state_dict(torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        return cls(transform, net, net_config)
