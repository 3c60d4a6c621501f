"""`train_model`: seeded Lightning fit of `TabularClassifier` with early stopping on validation AUC."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping
from lightning.pytorch.loggers import Logger

from models.artifact.scorer import TabularScorer
from models.features.transform import EncodedFeatures, FeatureTransform
from models.nn.batches import TensorBatches, batch_loader
from models.nn.config import ModelConfig
from models.nn.module import TabularClassifier

MONITOR = "val/roc_auc"
# Validation has no backward pass: bigger batches cut per-step overhead at no accuracy cost.
_VAL_BATCH_ROWS = 16_384
# Torch intra-op threads during a CPU fit. Measured on a 2-core machine (bare loop of the benchmark's net,
# batch 512): 1 thread about 200-210k samples/s, 2 threads 80-130k; per-op threading overhead outweighs the
# gain on 512 x 128 matmuls. Parallelism belongs at the trial level (Ray), not inside one small fit.
CPU_TORCH_THREADS = 1


@dataclass
class TrainingResult:
    """Outcome of one fit; `module` and `scorer` carry the best-epoch weights."""

    module: TabularClassifier
    scorer: TabularScorer
    best_val_auc: float
    best_epoch: int  # 0-based
    epochs_trained: int
    history: list[dict[str, float]]  # per epoch: epoch, train/loss, val/loss, val/roc_auc
    train_seconds: float  # wall time of `Trainer.fit`, validation included
    samples_per_second: float  # training rows per second over training batches only (no validation)
    device: str
    precision: str


class BestWeightsInMemory(Checkpoint):
    """Keeps a CPU copy of the best epoch's weights, records per-epoch metrics and training-batch time.

    A `Checkpoint` subclass on purpose: Lightning runs checkpoint callbacks' `on_train_epoch_end` after the
    module's, so `train/loss` of the epoch is already in `callback_metrics`; and no files are written.
    """

    def __init__(self, monitor: str = MONITOR) -> None:
        self.monitor = monitor
        self.best_score = -float("inf")
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, float]] = []
        self.train_batch_seconds = 0.0
        self._epoch_start = 0.0

    def _now(self, pl_module: L.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # kernels are async: time finished work only
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = self._now(pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.train_batch_seconds += self._now(pl_module) - self._epoch_start

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
        self.history.append({"epoch": float(trainer.current_epoch), **metrics})
        score = metrics.get(self.monitor, float("nan"))
        if score > self.best_score:  # NaN never improves
            self.best_score = score
            self.best_epoch = trainer.current_epoch
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}


def resolve_device(config: ModelConfig) -> tuple[str, str]:
    """(accelerator, precision) for Lightning: GPU when present under "auto"; bf16-mixed where supported."""
    accelerator = config.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    on_cuda = accelerator in ("gpu", "cuda") and torch.cuda.is_available()
    precision = config.precision
    if precision == "auto":
        precision = "bf16-mixed" if on_cuda and torch.cuda.is_bf16_supported() else "32"
    return accelerator, "32-true" if precision == "32" else precision


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's info logs and known-benign warnings for the duration of a fit only."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            # The data already sits in memory as whole batches; worker processes would only add cost.
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            # TensorBatches is single-process by design; the warning is about num_workers > 1.
            warnings.filterwarnings("ignore", message=r".*`IterableDataset` has `__len__` defined.*")
            # Raised inside Lightning 2.6 by torch 2.13's pytree; nothing a caller can act on.
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _check_labels(y: np.ndarray, features: EncodedFeatures, split: str) -> None:
    if y.ndim != 1 or len(y) != len(features):
        raise ValueError(f"{split}: labels must be 1-D with one per row ({len(features)}), got {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{split}: labels must be 0/1")


def train_model(
    train: EncodedFeatures,
    y_train: np.ndarray,
    val: EncodedFeatures,
    y_val: np.ndarray,
    *,
    transform: FeatureTransform,
    config: ModelConfig,
    seed: int,
    callbacks: list[Callback] | None = None,
    enable_progress_bar: bool = False,
    default_root_dir: Path | None = None,
    logger: Logger | bool = False,
    ckpt_path: str | None = None,
) -> TrainingResult:
    """Fit a `TabularClassifier`, stop early on `val/roc_auc`, and return the best epoch's weights.

    Same seed, same data and same device give identical weights on CPU. `callbacks` are added to the
    trainer (e.g. a Ray Tune reporter reading `val/roc_auc` and `val/loss` from `callback_metrics` at
    validation end; `train/loss` is logged afterwards, at train epoch end). `ckpt_path` resumes the fit
    from a Lightning checkpoint (weights, optimiser, loop and callback state), e.g. a retried sweep trial.
    """
    y_train = np.asarray(y_train)
    y_val = np.asarray(y_val)
    _check_labels(y_train, train, "train")
    _check_labels(y_val, val, "val")
    if len(np.unique(y_val)) < 2:
        raise ValueError("val: labels hold a single class, ROC AUC (the early-stopping metric) is undefined")

    config = config.for_data(len(y_train), float(np.mean(y_train)))
    L.seed_everything(seed, workers=True, verbose=False)
    accelerator, precision = resolve_device(config)
    on_cuda = accelerator in ("gpu", "cuda") and torch.cuda.is_available()
    data_device = "cuda" if on_cuda else "cpu"  # moved once here; Lightning's per-batch transfer is a no-op
    train_loader = batch_loader(
        TensorBatches.from_features(
            train, y_train, batch_size=config.batch_size, shuffle=True, seed=seed, device=data_device
        )
    )
    val_loader = batch_loader(
        TensorBatches.from_features(
            val, y_val, batch_size=max(config.batch_size, _VAL_BATCH_ROWS), shuffle=False, device=data_device
        )
    )
    module = TabularClassifier.from_config(
        transform.n_numeric, transform.cardinalities, config, train.numeric
    )

    best = BestWeightsInMemory()
    stopper = EarlyStopping(monitor=MONITOR, mode="max", patience=config.early_stopping_patience)
    with quiet_lightning():  # Trainer() itself logs device availability
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            precision=precision,
            max_epochs=config.max_epochs,
            callbacks=[best, stopper, *(callbacks or [])],
            logger=logger,
            enable_progress_bar=enable_progress_bar,
            enable_model_summary=False,
            enable_checkpointing=True,  # satisfied by BestWeightsInMemory: no checkpoint files
            num_sanity_val_steps=0,
            default_root_dir=default_root_dir,
        )
        threads = torch.get_num_threads()
        if data_device == "cpu":
            torch.set_num_threads(CPU_TORCH_THREADS)
        try:
            start = time.perf_counter()
            trainer.fit(
                module, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=ckpt_path
            )
            train_seconds = time.perf_counter() - start
        finally:
            torch.set_num_threads(threads)  # process-wide setting: restore the caller's

    assert best.best_state is not None, "no epoch produced a finite val/roc_auc"
    module.load_state_dict(best.best_state)
    module = module.to("cpu").eval()
    epochs = len(best.history)
    return TrainingResult(
        module=module,
        scorer=TabularScorer(transform, module.net, module.net.architecture()),
        best_val_auc=best.best_score,
        best_epoch=best.best_epoch,
        epochs_trained=epochs,
        history=best.history,
        train_seconds=train_seconds,
        samples_per_second=len(y_train) * epochs / max(best.train_batch_seconds, 1e-9),
        device=str(trainer.strategy.root_device),
        precision=precision,
    )
