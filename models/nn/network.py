"""Plain PyTorch tabular networks (no Lightning here): feature embeddings, then an MLP or a TabM ensemble.

Inputs are the fitted transform's standardised numerics and categorical indices. Three choices shape
the network (all in `ModelConfig`, all searchable):

- numeric embeddings (Gorishniy et al. 2022, "On Embeddings for Numerical Features in Tabular Deep
  Learning"): each numeric column is fed as is (`none`), or mapped to a `num_embedding_dim`-vector by a
  piecewise-linear encoding over quantile bins of the training split (`piecewise_linear`, the paper's
  PLE, version "B" of `rtdl_num_embeddings`) or by periodic features (`periodic`);
- categorical embeddings: one table per column, its width growing with the column's cardinality;
- the backbone: an MLP (`ensemble_size` 1) or TabM (Gorishniy et al. 2024): `ensemble_size` MLPs that
  share their weight matrices and differ by BatchEnsemble's per-member scalings (`tabm`'s
  `LinearBatchEnsemble`), trained jointly, their probabilities averaged.

`forward` returns one logit per row (the ensemble's mean probability as a logit): what scoring, serving
and validation use. `member_logits` returns every member's logit: what training's loss uses, so each
member learns on its own (TabM's recipe).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import rtdl_num_embeddings
import tabm
import torch
from torch import nn

NumEmbedding = Literal["none", "piecewise_linear", "periodic"]


def embedding_dims(cardinalities: list[int], embedding_dim: int) -> list[int]:
    """Width per categorical column: fast.ai's rule 1.6 * cardinality^0.56, capped at `embedding_dim`.

    Width grows sub-linearly with the number of levels: a 4-level column gets 3 dimensions, a 50-level
    one 14; the cap bounds high-cardinality columns (ids, zip codes).
    """
    return [max(1, min(embedding_dim, round(1.6 * cardinality**0.56))) for cardinality in cardinalities]


def quantile_bins(x_num: np.ndarray, n_bins: int) -> list[list[float]]:
    """Piecewise-linear bin edges per numeric column: distinct quantiles of the training split (values it takes).

    A column with fewer distinct values gets fewer bins (a binary flag: one); a constant column gets
    one bin around its value, so the encoding stays defined (it carries no signal either way).
    """
    # x_num: [n, n_numeric] float32, standardised, no missing values (the transform imputed them)
    assert x_num.ndim == 2 and n_bins >= 1
    quantiles = np.linspace(0.0, 1.0, n_bins + 1)
    bins = []
    for j in range(x_num.shape[1]):
        column = x_num[:, j].astype(np.float64)
        # "lower": every edge is a value the column takes, so a flag gets the edges 0 and 1, not an
        # interpolated 0.3 that splits nothing.
        edges = np.unique(np.quantile(column, quantiles, method="lower")) if len(column) else np.zeros(1)
        if len(edges) < 2:
            edges = np.array([edges[0] - 1.0, edges[0] + 1.0])
        bins.append([float(e) for e in edges])
    return bins


class TabularNet(nn.Module):
    """Numeric and categorical embeddings, concatenated, then an MLP or a TabM ensemble to one logit.

    No batch/layer norm: inputs are already standardised and the net is shallow; BatchNorm would add
    per-step cost and make single-row serving depend on running statistics without improving AUC here.
    With `ensemble_size` 1 and no numeric embedding this is the plain MLP of earlier versions, with the
    same parameter names, so their saved weights still load.
    """

    def __init__(
        self,
        n_numeric: int,
        cardinalities: list[int],
        hidden_sizes: list[int],
        embedding_dim: int,
        dropout: float,
        ensemble_size: int = 1,
        num_embedding: NumEmbedding = "none",
        num_embedding_dim: int = 16,
        bins: list[list[float]] | None = None,
    ) -> None:
        super().__init__()
        assert n_numeric >= 0 and all(c >= 1 for c in cardinalities)
        assert n_numeric + len(cardinalities) > 0, "need at least one feature column"
        assert ensemble_size >= 1 and len(hidden_sizes) >= 1
        self.n_numeric = n_numeric
        self.cardinalities = list(cardinalities)
        self.hidden_sizes = list(hidden_sizes)
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.ensemble_size = ensemble_size
        self.num_embedding: NumEmbedding = num_embedding if n_numeric else "none"
        self.num_embedding_dim = num_embedding_dim
        self.bins = [list(b) for b in bins] if bins is not None and self.num_embedding != "none" else None

        dims = embedding_dims(self.cardinalities, embedding_dim)
        self.embeddings = nn.ModuleList(
            nn.Embedding(cardinality, dim) for cardinality, dim in zip(self.cardinalities, dims, strict=True)
        )
        self.num_embeddings = self._numeric_module()
        numeric_width = num_embedding_dim if self.num_embeddings is not None else 1
        feature_widths = dims + [numeric_width] * n_numeric  # one chunk per input column, in input order
        width = sum(feature_widths)

        if ensemble_size == 1:
            layers: list[nn.Module] = []
            for hidden in self.hidden_sizes:
                layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
                width = hidden
            layers.append(nn.Linear(width, 1))
            self.mlp = nn.Sequential(*layers)
        else:
            # TabM's initialisation: the first layer's input scalings random per member (normal with
            # numeric embeddings, random signs without), chunked by input column; all others ones.
            first = "normal" if self.num_embeddings is not None else "random-signs"
            layers = [tabm.EnsembleView(k=ensemble_size)]
            for index, hidden in enumerate(self.hidden_sizes):
                layers += [
                    tabm.LinearBatchEnsemble(
                        width,
                        hidden,
                        k=ensemble_size,
                        scaling_init=(first, "ones") if index == 0 else "ones",
                        first_scaling_init_chunks=feature_widths if index == 0 else None,
                    ),
                    nn.ReLU(),
                    nn.Dropout(dropout),
                ]
                width = hidden
            layers.append(tabm.LinearEnsemble(width, 1, k=ensemble_size))
            self.mlp = nn.Sequential(*layers)

    def _numeric_module(self) -> nn.Module | None:
        if self.num_embedding == "none":
            return None
        if self.num_embedding == "periodic":
            return rtdl_num_embeddings.PeriodicEmbeddings(self.n_numeric, self.num_embedding_dim, lite=False)
        if self.bins is None or len(self.bins) != self.n_numeric:
            raise ValueError("piecewise_linear numeric embeddings need bin edges for every numeric column")
        with warnings.catch_warnings():
            # A binary or constant column has one bin: a min-max scaling, which is what it should get.
            warnings.filterwarnings("ignore", message=r".*has just two bin edges.*")
            return rtdl_num_embeddings.PiecewiseLinearEmbeddings(
                [torch.tensor(b, dtype=torch.float32) for b in self.bins],
                self.num_embedding_dim,
                activation=False,
                version="B",
            )

    def architecture(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable: `TabularNet(**net.architecture())` rebuilds it."""
        return {
            "n_numeric": self.n_numeric,
            "cardinalities": list(self.cardinalities),
            "hidden_sizes": list(self.hidden_sizes),
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
            "ensemble_size": self.ensemble_size,
            "num_embedding": self.num_embedding,
            "num_embedding_dim": self.num_embedding_dim,
            "bins": None if self.bins is None else [list(b) for b in self.bins],
        }

    def member_logits(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        # x_num: [B, n_numeric] float, x_cat: [B, n_categorical] long -> logits [B, ensemble_size]
        parts = [embedding(x_cat[:, j]) for j, embedding in enumerate(self.embeddings)]  # each [B, dim_j]
        if self.n_numeric:
            numeric = x_num if self.num_embeddings is None else self.num_embeddings(x_num).flatten(1)
            parts.append(numeric)  # [B, n_numeric * numeric_width]; last, as earlier versions fed it
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # [B, d_in]
        out = self.mlp(x)  # MLP: [B, 1]; TabM: [B, k, 1]
        return out.reshape(len(x), self.ensemble_size)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        members = self.member_logits(x_num, x_cat)  # [B, k]
        if self.ensemble_size == 1:
            return members[:, 0]  # [B]
        # logit(mean_k sigmoid(z)) = log mean p - log mean (1 - p); the log k terms cancel. Stable for any z.
        log_p = torch.logsumexp(nn.functional.logsigmoid(members), dim=1)
        log_q = torch.logsumexp(nn.functional.logsigmoid(-members), dim=1)
        return log_p - log_q  # [B]


class FoldEnsemble(nn.Module):
    """The K networks of a cross-validation, one per fold, scoring as one: their mean probability.

    Each member was trained on K-1 folds and early-stopped on the remaining one, so together they have
    seen all of train+validation; averaging them also smooths the fold-to-fold noise of a small table.
    """

    def __init__(self, members: list[dict[str, Any]]) -> None:
        super().__init__()
        assert len(members) >= 1
        self.members = nn.ModuleList(TabularNet(**member) for member in members)

    def architecture(self) -> dict[str, Any]:
        return {"members": [member.architecture() for member in self.members]}

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([member(x_num, x_cat) for member in self.members], dim=1)  # [B, K]
        log_p = torch.logsumexp(nn.functional.logsigmoid(logits), dim=1)
        log_q = torch.logsumexp(nn.functional.logsigmoid(-logits), dim=1)
        return log_p - log_q  # [B] logit of the mean probability


def build_net(config: dict[str, Any]) -> TabularNet | FoldEnsemble:
    """The network an `architecture()` dict describes."""
    return FoldEnsemble(config["members"]) if "members" in config else TabularNet(**config)


def describe(config: dict[str, Any]) -> str:
    """An `architecture()` dict in words, e.g. "TabM (k=8) [128, 128], piecewise-linear numeric embeddings"."""
    if "members" in config:
        return f"ensemble of {len(config['members'])} fold models, each {describe(config['members'][0])}"
    k = config.get("ensemble_size", 1)
    backbone = f"TabM (k={k})" if k > 1 else "MLP"
    embedding = config.get("num_embedding", "none")
    numeric = "raw numerics" if embedding == "none" else f"{embedding.replace('_', '-')} numeric embeddings"
    return f"{backbone} {config['hidden_sizes']}, {numeric}, categorical embeddings up to {config['embedding_dim']} wide"
