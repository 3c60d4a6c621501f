"""Training throughput: bare PyTorch loop vs our Lightning path vs Lightning with a default DataLoader.

Same TabularNet, data, batch size (512), optimizer (fused AdamW) and thread count in all three; only
training batches are timed (no setup, no validation), as wall time and as this process's CPU time. On a
shared machine wall time swings with other tenants' load while CPU time of a one-thread process does not,
so the CPU-time ratio is the stable figure on CPU (on a GPU, read the wall-time one).

What limits (b)/(a) on CPU: with fused AdamW, the bare step of this net takes about 2.4 ms; Lightning's
automatic-optimization loop adds about 0.4-0.5 ms of Python per step that no public setting removes
(hook dispatch to module and callbacks, each setting `_current_fx_name` through `nn.Module.__setattr__`
about 44 times a step; the optimizer closure and precision-plugin wrappers; progress counters; the
prefetching fetcher; batch-to-device traversal; a signature inspection of `training_step`). Levers
already taken in `train_model`: whole-batch dataset (no per-row collate), no per-step `self.log`,
on-device metric accumulation, one torch thread, no sanity check, 16k-row validation batches, in-memory
best weights instead of checkpoint files, no progress bar or model summary. Measured and not taken:
manual optimization (+2%, more code in the module), a `__setattr__` fast path for `_current_fx_name`
(+3%, relies on a Lightning-private name).

Run: .venv/bin/python benchmarks/bench_train_throughput.py [--rows 200000] [--smoke]
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from models.features.config import FeatureConfig
from models.features.transform import EncodedFeatures, FeatureTransform
from models.nn.batches import TensorBatches
from models.nn.config import ModelConfig
from models.nn.module import TabularClassifier
from models.training.fit import CPU_TORCH_THREADS, quiet_lightning, resolve_device, train_model

N_NUMERIC, N_CATEGORICAL = 24, 8


@dataclass(frozen=True)
class Throughput:
    wall: float  # samples per wall-clock second
    cpu: float  # samples per CPU second of this process


class TrainBatchTimer(Callback):
    """Wall and CPU seconds spent in training batches (from epoch start to validation or epoch end)."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self._open: tuple[float, float] | None = None

    def _start(self) -> None:
        self._open = (time.perf_counter(), time.process_time())

    def _stop(self, pl_module: L.LightningModule) -> None:
        if self._open is not None:
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize(pl_module.device)
            self.wall += time.perf_counter() - self._open[0]
            self.cpu += time.process_time() - self._open[1]
            self._open = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop(pl_module)  # no-op when validation already closed the interval

    def throughput(self, samples: int) -> Throughput:
        return Throughput(wall=samples / self.wall, cpu=samples / self.cpu)


def synthetic_data(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Frame of N_NUMERIC normal columns and N_CATEGORICAL 20-level string columns; label nonlinear."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, N_NUMERIC))
    levels = rng.integers(0, 20, size=(rows, N_CATEGORICAL))
    logit = numeric[:, 0] * numeric[:, 1] + np.sin(numeric[:, 2]) + (levels[:, 0] % 3 == 0) - 0.5
    y = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    frame = pd.DataFrame(numeric, columns=[f"n{i}" for i in range(N_NUMERIC)])
    for j in range(N_CATEGORICAL):
        frame[f"c{j}"] = pd.Categorical.from_codes(levels[:, j], [f"c{j}_{v}" for v in range(20)])
    return frame, y


def bare_loop(
    train: EncodedFeatures, y: np.ndarray, module: TabularClassifier, epochs: int, seed: int
) -> Throughput:
    """Reference: plain PyTorch over the same index-sliced batches."""
    module.train()
    # The module's own optimizer settings (fused AdamW), without a Trainer's learning-rate schedule.
    optimizer = torch.optim.AdamW(
        module.parameters(),
        lr=module.hparams.learning_rate,
        weight_decay=module.hparams.weight_decay,
        fused=True,
    )
    batches = TensorBatches.from_features(train, y, batch_size=512, shuffle=True, seed=seed)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        module.on_train_epoch_start()
        for batch in batches:
            loss = module.training_step(batch, 0)  # the same loss as the Lightning path computes
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    samples = len(y) * epochs
    return Throughput(wall=samples / (time.perf_counter() - wall), cpu=samples / (time.process_time() - cpu))


def lightning_default_loader(
    train: EncodedFeatures, y: np.ndarray, module: TabularClassifier, config: ModelConfig, epochs: int
) -> Throughput:
    """Context: the textbook setup, `DataLoader(TensorDataset, batch_size=512, shuffle=True)`."""
    dataset = TensorDataset(
        torch.from_numpy(train.numeric), torch.from_numpy(train.categorical), torch.from_numpy(y)
    )
    timer = TrainBatchTimer()
    accelerator, precision = resolve_device(config)
    with quiet_lightning(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*no `val_dataloader`.*")  # validation is not timed here
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            precision=precision,
            max_epochs=epochs,
            callbacks=[timer],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            limit_val_batches=0,
        )
        trainer.fit(module, train_dataloaders=DataLoader(dataset, batch_size=512, shuffle=True))
    return timer.throughput(len(y) * epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="training rows")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per run")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved runs of (a) and (b); best is kept"
    )
    parser.add_argument("--seed", type=int, default=0, help="data and model seed")
    parser.add_argument("--skip-default-loader", action="store_true", help="skip the slow path (c)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes (2,000 rows, 1 epoch, 1 repeat): checks it runs"
    )
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.epochs, args.repeats = 2_000, 1, 1
    # train_model pins CPU_TORCH_THREADS on CPU; the other paths get the same.
    torch.set_num_threads(CPU_TORCH_THREADS)

    frame, y = synthetic_data(args.rows + args.rows // 10, args.seed)
    spec = FeatureConfig(
        numeric=[f"n{i}" for i in range(N_NUMERIC)], categorical=[f"c{j}" for j in range(N_CATEGORICAL)]
    )
    transform = FeatureTransform.fit(frame.iloc[: args.rows], spec)
    train, val = transform.transform(frame.iloc[: args.rows]), transform.transform(frame.iloc[args.rows :])
    y_train, y_val = y[: args.rows], y[args.rows :]
    # patience > epochs: every run trains the same number of epochs
    config = ModelConfig(max_epochs=args.epochs, early_stopping_patience=args.epochs + 1, batch_size=512)
    print(
        f"rows={args.rows} features={N_NUMERIC} numeric + {N_CATEGORICAL} categorical batch={config.batch_size} "
        f"hidden={config.hidden_sizes} epochs={args.epochs} repeats={args.repeats} torch_threads={CPU_TORCH_THREADS}"
    )

    resolved = config.for_data(len(y_train), float(np.mean(y_train)))  # as train_model resolves it

    def fresh_module() -> TabularClassifier:
        L.seed_everything(args.seed, verbose=False)
        return TabularClassifier.from_config(
            transform.n_numeric, transform.cardinalities, resolved, train.numeric
        )

    # Interleaved repeats, best of each: the least disturbed run is the closest to the intrinsic cost.
    bare_runs: list[Throughput] = []
    ours_runs: list[Throughput] = []
    for _ in range(args.repeats):
        bare_runs.append(bare_loop(train, y_train, fresh_module(), args.epochs, args.seed))
        timer = TrainBatchTimer()
        result = train_model(
            train, y_train, val, y_val, transform=transform, config=config, seed=args.seed, callbacks=[timer]
        )
        ours_runs.append(timer.throughput(len(y_train) * result.epochs_trained))
    bare = Throughput(max(r.wall for r in bare_runs), max(r.cpu for r in bare_runs))
    ours = Throughput(max(r.wall for r in ours_runs), max(r.cpu for r in ours_runs))

    def line(label: str, t: Throughput, extra: str = "") -> None:
        print(f"{label:<44} wall {t.wall:>9,.0f} samples/s   cpu {t.cpu:>9,.0f} samples/s  {extra}")

    line("(a) bare PyTorch loop, sliced tensors", bare)
    line(
        "(b) train_model (Lightning + TensorBatches)",
        ours,
        f"(val AUC {result.best_val_auc:.3f}, {result.device}, {result.precision})",
    )
    if not args.skip_default_loader:
        default = lightning_default_loader(train, y_train, fresh_module(), config, args.epochs)
        line(
            "(c) Lightning + DataLoader(TensorDataset)",
            default,
            f"({default.cpu / bare.cpu:.2f}x of (a), cpu)",
        )
    print(f"ratio (b)/(a): cpu time {ours.cpu / bare.cpu:.2f}   wall time {ours.wall / bare.wall:.2f}")


if __name__ == "__main__":
    main()
