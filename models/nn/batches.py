"""In-memory batch dataset: whole batches by slicing, one permutation per epoch, no per-row collate."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from models.features.transform import EncodedFeatures

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # x_num [B, n_num], x_cat [B, n_cat], y [B]


class TensorBatches(IterableDataset):
    """Yields `(x_num, x_cat, y)` batches as contiguous slices of tensors held whole.

    With `shuffle`, each pass (epoch) draws a new permutation from a generator seeded once, gathers the
    tensors once with it, then slices; so an epoch costs one gather plus views, where a map-style
    dataset with a default `DataLoader` pays an index, a Python call and a collate per row. Use with
    `DataLoader(ds, batch_size=None)` (see `batch_loader`). Tensors may live on the GPU: then Lightning's
    transfer to the device is a no-op.
    """

    def __init__(
        self,
        x_num: torch.Tensor,
        x_cat: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
    ) -> None:
        super().__init__()
        assert len(x_num) == len(x_cat) == len(y), "row counts differ"
        assert batch_size >= 1
        self.x_num = x_num  # [N, n_num] float32
        self.x_cat = x_cat  # [N, n_cat] int64
        self.y = y  # [N] float32
        self.batch_size = batch_size
        self.shuffle = shuffle
        self._generator = torch.Generator().manual_seed(seed)  # CPU generator: same order on any device

    @classmethod
    def from_features(
        cls,
        features: EncodedFeatures,
        y: np.ndarray,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> TensorBatches:
        """Copy arrays into tensors on `device` once, up front."""
        return cls(
            torch.as_tensor(features.numeric, device=device),
            torch.as_tensor(features.categorical, device=device),
            torch.as_tensor(np.asarray(y, dtype=np.float32), device=device),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
        )

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)  # batches per epoch, last one may be short

    def __iter__(self) -> Iterator[Batch]:
        x_num, x_cat, y = self.x_num, self.x_cat, self.y
        if self.shuffle:
            permutation = torch.randperm(len(y), generator=self._generator).to(y.device)
            x_num, x_cat, y = x_num[permutation], x_cat[permutation], y[permutation]
        for start in range(0, len(y), self.batch_size):
            stop = start + self.batch_size
            yield x_num[start:stop], x_cat[start:stop], y[start:stop]


def batch_loader(dataset: TensorBatches) -> DataLoader:
    """A `DataLoader` that passes the dataset's batches through untouched (no sampler, no collate)."""
    return DataLoader(dataset, batch_size=None, shuffle=False, num_workers=0)
