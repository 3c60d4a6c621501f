"""Plain PyTorch MLP over standardised numerics and embedded categoricals (no Lightning here)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def embedding_dims(cardinalities: list[int], embedding_dim: int) -> list[int]:
    """Width per categorical column: a column never gets more dimensions than about half its levels."""
    return [max(1, min(embedding_dim, (cardinality + 1) // 2)) for cardinality in cardinalities]


class TabularNet(nn.Module):
    """Embeddings per categorical column, concatenated with numerics, then an MLP to one logit.

    No batch/layer norm: inputs are already standardised and the net is shallow; BatchNorm would add
    per-step cost and make single-row serving depend on running statistics without improving AUC here.
    """

    def __init__(
        self,
        n_numeric: int,
        cardinalities: list[int],
        hidden_sizes: list[int],
        embedding_dim: int,
        dropout: float,
    ) -> None:
        super().__init__()
        assert n_numeric >= 0 and all(c >= 1 for c in cardinalities)
        assert n_numeric + len(cardinalities) > 0, "need at least one feature column"
        self.n_numeric = n_numeric
        self.cardinalities = list(cardinalities)
        self.hidden_sizes = list(hidden_sizes)
        self.embedding_dim = embedding_dim
        self.dropout = dropout

        dims = embedding_dims(self.cardinalities, embedding_dim)
        self.embeddings = nn.ModuleList(
            nn.Embedding(cardinality, dim) for cardinality, dim in zip(self.cardinalities, dims, strict=True)
        )
        layers: list[nn.Module] = []
        width = n_numeric + sum(dims)
        for hidden in self.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def architecture(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable: `TabularNet(**net.architecture())` rebuilds it."""
        return {
            "n_numeric": self.n_numeric,
            "cardinalities": list(self.cardinalities),
            "hidden_sizes": list(self.hidden_sizes),
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
        }

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        # x_num: [B, n_numeric] float, x_cat: [B, n_categorical] long -> logits [B]
        parts = [embedding(x_cat[:, j]) for j, embedding in enumerate(self.embeddings)]  # each [B, dim_j]
        if self.n_numeric:
            parts.append(x_num)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # [B, n_numeric + sum(dims)]
        return self.mlp(x).squeeze(-1)  # [B]
