"""A short measured training run of the real Lightning module: throughput and fixed per-epoch costs."""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from models.features.transform import EncodedFeatures, FeatureTransform
from models.nn.batches import TensorBatches, batch_loader
from models.nn.config import ModelConfig
from models.nn.module import TabularClassifier
from models.training.fit import _VAL_BATCH_ROWS, CPU_TORCH_THREADS, quiet_lightning

# Steps run before the timed window: first-call allocations, kernel selection and the epoch's shuffle.
WARMUP_STEPS = 5


@dataclass(frozen=True)
class Profile:
    """Measured on the actual device: training throughput and fixed per-epoch costs."""

    samples_per_second: float
    validation_seconds: float  # one validation pass over val_rows, Lightning loop included
    checkpoint_seconds: float  # one Lightning checkpoint written to local disk
    shuffle_seconds: float  # the per-epoch gather of the training tensors in a new order


class _StepTimer(Callback):
    """Times optimiser steps `warmup` .. `warmup + steps - 1` (device work finished, not just queued)."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup = warmup
        self.steps = steps
        self.start = 0.0
        self.seconds = 0.0
        self.rows = 0

    def _now(self, pl_module: L.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    # The global step, not batch_idx: a small training set wraps into several epochs.
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self.warmup:
            self.start = self._now(pl_module)
        if trainer.global_step >= self.warmup:
            self.rows += batch[2].shape[0]

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # global_step has already advanced past this batch's optimiser step here.
        if trainer.global_step == self.warmup + self.steps:
            self.seconds = self._now(pl_module) - self.start


def profile_training(
    train: EncodedFeatures,
    val_rows: int,
    *,
    transform: FeatureTransform,
    model: ModelConfig,
    accelerator: str,
    precision: str,
    steps: int,
    seed: int,
) -> Profile:
    """Time `steps` training steps (after `WARMUP_STEPS`), one validation pass and one checkpoint write.

    Runs the real `TabularClassifier` in a Lightning `Trainer` exactly as `train_model` configures it
    (device, precision, CPU thread count, `TensorBatches` on the device), because Lightning's per-step hooks
    cost about as much as the step itself for this small net: a bare PyTorch loop would overstate the
    throughput by about 1.7x. Labels are random (speed does not depend on them); the global RNG state is
    restored afterwards.
    """
    on_cuda = accelerator in ("gpu", "cuda") and torch.cuda.is_available()
    device = "cuda" if on_cuda else "cpu"
    warmup = WARMUP_STEPS
    batches = warmup + steps
    rows = min(len(train), batches * model.batch_size)
    features = EncodedFeatures(numeric=train.numeric[:rows], categorical=train.categorical[:rows])
    val_count = max(1, min(val_rows, len(train)))
    val_features = EncodedFeatures(
        numeric=train.numeric[:val_count], categorical=train.categorical[:val_count]
    )
    labels = np.random.default_rng(seed).integers(0, 2, size=len(train)).astype(np.float32)
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]), quiet_lightning(), tempfile.TemporaryDirectory() as scratch:
        # Validation is timed separately below, with `trainer.validate`.
        warnings.filterwarnings("ignore", message=r".*`validation_step` but have no `val_dataloader`.*")
        torch.manual_seed(seed)
        if not on_cuda:
            torch.set_num_threads(CPU_TORCH_THREADS)
        try:
            train_batches = TensorBatches.from_features(
                features, labels[:rows], batch_size=model.batch_size, shuffle=True, seed=seed, device=device
            )
            val_batches = TensorBatches.from_features(
                val_features,
                labels[:val_count],
                batch_size=max(model.batch_size, _VAL_BATCH_ROWS),
                shuffle=False,
                device=device,
            )
            module = TabularClassifier.from_config(
                transform.n_numeric, transform.cardinalities, model, train.numeric
            )
            timer = _StepTimer(warmup, steps)
            trainer = L.Trainer(
                accelerator="gpu" if on_cuda else "cpu",
                devices=1,
                precision=precision,
                max_steps=batches,
                max_epochs=-1,
                limit_val_batches=0,
                callbacks=[timer],
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                enable_checkpointing=False,
                num_sanity_val_steps=0,
                default_root_dir=scratch,
            )
            trainer.fit(module, train_dataloaders=batch_loader(train_batches))
            assert timer.seconds > 0, "profiling run ended before the timed window"

            start = time.perf_counter()
            trainer.validate(module, dataloaders=batch_loader(val_batches), verbose=False)
            validation_seconds = time.perf_counter() - start

            start = time.perf_counter()
            trainer.save_checkpoint(Path(scratch) / "profile.ckpt")
            checkpoint_seconds = time.perf_counter() - start

            full = TensorBatches.from_features(
                train, labels, batch_size=model.batch_size, shuffle=True, seed=seed, device=device
            )
            start = time.perf_counter()
            next(iter(full))  # the shuffle gathers the whole training set once per epoch
            if on_cuda:
                torch.cuda.synchronize()
            shuffle_seconds = time.perf_counter() - start
        finally:
            torch.set_num_threads(threads)
    return Profile(
        samples_per_second=timer.rows / timer.seconds,
        validation_seconds=validation_seconds,
        checkpoint_seconds=checkpoint_seconds,
        shuffle_seconds=shuffle_seconds,
    )
