"""Pre-flight estimate of a sweep's compute, memory, wall time, cost and storage, for the approver.

Two halves: analytic figures from the architecture (parameters, FLOPs, memory, storage) and a short
measured profiling run of the real `TabularClassifier` (TabularNet + fused AdamW inside Lightning, fed by
the same `TensorBatches` path) on the actual training tensors and the device a sweep trial would use.
Wall time comes from a small simulation of ASHA over the sweep's trials and concurrency slots, fed with
the measured epoch time. `compare` checks the estimate against what the sweep then really used.
"""

from __future__ import annotations

import heapq
import math
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from models.batches import TensorBatches, batch_loader
from models.config import ModelConfig
from models.features import EncodedFeatures, FeatureTransform
from models.lightning_module import TabularClassifier
from models.network import embedding_dims
from models.params import ChoiceParam, EstimateConfig, IntParam, SweepConfig, UniformParam
from models.sweep import CHECKPOINTS_KEPT, SweepResult
from models.training import _VAL_BATCH_ROWS, CPU_TORCH_THREADS, quiet_lightning, resolve_device

# Steps run before the timed window: first-call allocations, kernel selection and the epoch's shuffle.
WARMUP_STEPS = 5
# AdamW keeps two fp32 moments (exp_avg, exp_avg_sq) per parameter.
ADAMW_STATES = 2
FP32_BYTES = 4
_GB = 1e9


@dataclass(frozen=True)
class MemoryBreakdown:
    """Peak device memory of one trial, in bytes, by what holds it."""

    weights: int
    gradients: int
    optimizer_state: int  # AdamW: two moments per parameter
    activations: int  # one training batch through every layer, saved for backward, dropout masks included
    data: int  # training tensors (plus the per-epoch shuffled copy) and validation tensors

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations + self.data


@dataclass(frozen=True)
class ResourceEstimate:
    """What a sweep is expected to use; figures per trial unless named `sweep_*` or `total_*`."""

    device: str  # "cpu" or "cuda:<device name>"
    precision: str  # Lightning precision of a trial
    hidden_sizes: list[int]  # architecture profiled for memory (the largest in the search space)
    parameters: int
    bytes_per_parameter: int
    train_flops_per_sample: int  # forward + backward (about 3x the forward pass)
    sweep_flops: float  # training and validation FLOPs over every expected epoch of every trial
    memory: MemoryBreakdown
    samples_per_second: float  # measured training throughput (mean over profiled architectures)
    seconds_per_epoch: float  # rows / samples_per_second + validation + checkpoint, x CPU contention
    cpu_contention: float  # epoch-time stretch when the trials ask for more cores than exist (1 on GPU)
    trials: int
    concurrency: int  # trial slots actually used: min(max_concurrent_trials, trials)
    epochs_per_trial_asha: float  # large-sweep ASHA figure: 1/reduction_factor of trials survive each rung
    epochs_per_trial: float  # expected epochs per trial for this sweep (finite-trial ASHA simulation)
    seconds_per_trial: float  # trial_overhead + epochs_per_trial * seconds_per_epoch
    sweep_seconds: float  # expected wall time of the sweep
    device_hours: float  # reserved device-hours (CPU: cores per trial x slots)
    price_key: str  # which price_per_hour entry applied
    price_per_hour: float
    cost: float
    currency: str
    checkpoint_bytes: int  # Tune checkpoints kept once the sweep has finished (pruned), all trials
    checkpoint_peak_bytes: int  # while the sweep runs: one checkpoint per epoch of every trial
    artifact_bytes: int  # the registered model: weights + transform
    storage_cost_per_month: float | None
    assumptions: list[str] = field(default_factory=list)

    @property
    def sweep_epochs(self) -> float:
        return self.epochs_per_trial * self.trials

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (nested memory breakdown with its total)."""
        out = asdict(self)
        out["memory"]["total"] = self.memory.total
        out["sweep_epochs"] = self.sweep_epochs
        return out

    def to_tags(self) -> dict[str, str]:
        """Flat `estimate.*` string tags, e.g. for an MLflow run or a Prefect artifact."""
        values: dict[str, Any] = {
            "device": self.device,
            "precision": self.precision,
            "parameters": self.parameters,
            "train_flops_per_sample": self.train_flops_per_sample,
            "sweep_flops": f"{self.sweep_flops:.3g}",
            "peak_memory_bytes": self.memory.total,
            "samples_per_second": f"{self.samples_per_second:.0f}",
            "seconds_per_epoch": f"{self.seconds_per_epoch:.3f}",
            "trials": self.trials,
            "concurrency": self.concurrency,
            "epochs_per_trial": f"{self.epochs_per_trial:.2f}",
            "seconds_per_trial": f"{self.seconds_per_trial:.1f}",
            "sweep_seconds": f"{self.sweep_seconds:.1f}",
            "device_hours": f"{self.device_hours:.4f}",
            "cost": f"{self.cost:.4f}",
            "currency": self.currency,
            "checkpoint_bytes": self.checkpoint_bytes,
            "checkpoint_peak_bytes": self.checkpoint_peak_bytes,
            "artifact_bytes": self.artifact_bytes,
        }
        if self.storage_cost_per_month is not None:
            values["storage_cost_per_month"] = f"{self.storage_cost_per_month:.4f}"
        return {f"estimate.{key}": str(value) for key, value in values.items()}

    def to_markdown(self) -> str:
        """A table for the approver (what, estimate, unit) followed by the assumptions behind it."""
        m = self.memory
        rows = [
            ("Device", self.device, f"precision {self.precision}"),
            ("Trials (concurrent)", f"{self.trials} ({self.concurrency})", "trials"),
            ("Parameters (largest architecture)", f"{self.parameters:,}", f"x {self.bytes_per_parameter} B"),
            ("Training FLOPs per sample", f"{self.train_flops_per_sample:,}", "FLOP"),
            ("Sweep FLOPs", f"{self.sweep_flops:.3g}", "FLOP"),
            ("Peak memory per trial", _mb(m.total), "MB"),
            (
                "  weights / gradients / AdamW state",
                f"{_mb(m.weights)} / {_mb(m.gradients)} / {_mb(m.optimizer_state)}",
                "MB",
            ),
            ("  activations (one batch) / data tensors", f"{_mb(m.activations)} / {_mb(m.data)}", "MB"),
            ("Measured training throughput", f"{self.samples_per_second:,.0f}", "samples/s"),
            (
                "Time per epoch",
                f"{self.seconds_per_epoch:.2f}",
                f"s (x{self.cpu_contention:.2f} CPU contention)",
            ),
            ("Epochs per trial (ASHA, this sweep)", f"{self.epochs_per_trial:.1f}", "epochs"),
            ("Epochs per trial (ASHA, large sweep)", f"{self.epochs_per_trial_asha:.1f}", "epochs"),
            ("Time per trial", f"{self.seconds_per_trial:.1f}", "s"),
            ("Sweep wall time", f"{self.sweep_seconds:.0f} ({self.sweep_seconds / 60:.1f} min)", "s"),
            ("Device-hours", f"{self.device_hours:.4f}", f"{self.price_key}-hours"),
            ("Compute cost", f"{self.cost:.4f}", f"{self.currency} at {self.price_per_hour:g}/h"),
            ("Checkpoint storage while the sweep runs", _mb(self.checkpoint_peak_bytes), "MB"),
            ("Checkpoint storage kept after it", _mb(self.checkpoint_bytes), "MB"),
            ("Model artifact", _mb(self.artifact_bytes), "MB"),
        ]
        if self.storage_cost_per_month is not None:
            rows.append(("Storage cost", f"{self.storage_cost_per_month:.6f}", f"{self.currency}/month"))
        lines = ["| What | Estimate | Unit |", "|---|---|---|"]
        lines += [f"| {what} | {value} | {unit} |" for what, value, unit in rows]
        lines += ["", "Assumptions:", *(f"- {assumption}" for assumption in self.assumptions)]
        return "\n".join(lines)


@dataclass(frozen=True)
class ActualUsage:
    """What a finished sweep really used, for `compare`."""

    sweep_seconds: float
    trials: int
    epochs_total: int
    train_seconds_total: float
    device: str
    resumed: bool = False  # restored from disk: `sweep_seconds` covers only this call, not the whole sweep


@dataclass(frozen=True)
class Profile:
    """Measured on the actual device: training throughput and fixed per-epoch costs."""

    samples_per_second: float
    validation_seconds: float  # one validation pass over val_rows, Lightning loop included
    checkpoint_seconds: float  # one Lightning checkpoint written to local disk
    shuffle_seconds: float  # the per-epoch gather of the training tensors in a new order


@dataclass(frozen=True)
class AshaOutcome:
    """Expected trial lengths and sweep wall time from simulating ASHA."""

    epochs_per_trial: float
    sweep_seconds: float


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.2f}"


def layer_widths(n_numeric: int, cardinalities: list[int], model: ModelConfig) -> list[int]:
    """Input width of the MLP followed by each hidden width and the single output."""
    width = n_numeric + sum(embedding_dims(cardinalities, model.embedding_dim))
    return [width, *model.hidden_sizes, 1]


def parameter_count(n_numeric: int, cardinalities: list[int], model: ModelConfig) -> int:
    """Parameters of `TabularNet`: embedding tables plus each Linear's weight and bias."""
    embeddings = sum(
        c * d for c, d in zip(cardinalities, embedding_dims(cardinalities, model.embedding_dim), strict=True)
    )
    widths = layer_widths(n_numeric, cardinalities, model)
    return embeddings + sum(i * o + o for i, o in zip(widths[:-1], widths[1:], strict=True))


def forward_flops_per_sample(n_numeric: int, cardinalities: list[int], model: ModelConfig) -> int:
    """2 x multiply-accumulates of the Linear layers; embedding lookups and ReLU/dropout are negligible."""
    widths = layer_widths(n_numeric, cardinalities, model)
    return 2 * sum(i * o for i, o in zip(widths[:-1], widths[1:], strict=True))


def train_flops_per_sample(n_numeric: int, cardinalities: list[int], model: ModelConfig) -> int:
    """Forward plus backward; backward costs about twice the forward (gradients of inputs and weights)."""
    return 3 * forward_flops_per_sample(n_numeric, cardinalities, model)


def memory_breakdown(
    n_numeric: int,
    cardinalities: list[int],
    model: ModelConfig,
    *,
    train_rows: int,
    val_rows: int,
    activation_bytes: int,
) -> MemoryBreakdown:
    """Peak memory of one trial: fp32 weights, gradients, AdamW moments, one batch's activations, data.

    Activations per training row: embedding outputs, the concatenated input, and per hidden layer the
    Linear output, the ReLU output (kept for backward), the dropout output and its 1-byte mask; then the
    logit. A validation batch (`_VAL_BATCH_ROWS` rows, no autograd) holds at most input + two hidden
    tensors at once; the larger of the two counts. Data: the training tensors, the gathered copy each
    epoch's shuffle makes, and the validation tensors (x_num fp32, x_cat int64, y fp32).
    """
    params = parameter_count(n_numeric, cardinalities, model)
    widths = layer_widths(n_numeric, cardinalities, model)
    hidden = widths[1:-1]
    inputs = n_numeric * FP32_BYTES + len(cardinalities) * 8 + FP32_BYTES  # one batch row as fed
    per_row = inputs + 2 * (widths[0] - n_numeric) * activation_bytes + widths[0] * activation_bytes
    per_row += sum(3 * h * activation_bytes + h for h in hidden) + 2 * FP32_BYTES  # + logit and loss term
    train_activations = model.batch_size * per_row
    val_batch = min(max(model.batch_size, _VAL_BATCH_ROWS), max(val_rows, 1))
    val_activations = val_batch * (inputs + (widths[0] + 2 * max(hidden)) * activation_bytes)
    row_bytes = n_numeric * FP32_BYTES + len(cardinalities) * 8 + FP32_BYTES
    return MemoryBreakdown(
        weights=params * FP32_BYTES,  # master weights stay fp32 under bf16-mixed
        gradients=params * FP32_BYTES,
        optimizer_state=ADAMW_STATES * params * FP32_BYTES,
        activations=max(train_activations, val_activations),
        data=(2 * train_rows + val_rows) * row_bytes,
    )


def asha_rungs(grace_period: int, reduction_factor: int, max_t: int) -> list[int]:
    """Milestones where ASHA may stop a trial: grace * r^k below max_t (as Ray's `_Bracket` builds them)."""
    if grace_period >= max_t:
        return []
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return [m for m in (grace_period * reduction_factor**k for k in range(count)) if m < max_t]


def asha_expected_epochs(grace_period: int, reduction_factor: int, max_t: int) -> float:
    """Mean epochs per trial in a large sweep: every trial runs to the first rung, 1/r of them pass each.

    sum over segments [m_k, m_{k+1}) of (m_{k+1} - m_k) * r^-k, with m_0 = 0 and the last segment ending at
    max_t. Early stopping can end trials sooner, so this is an upper bound for a given survival rate.
    """
    bounds = [0, *asha_rungs(grace_period, reduction_factor, max_t), max_t]
    return sum(
        (b - a) * reduction_factor**-k for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    )


def simulate_asha(
    epoch_seconds: list[float],
    *,
    trials: int,
    concurrency: int,
    grace_period: int,
    reduction_factor: int,
    max_t: int,
    trial_overhead_seconds: float,
    worker_start_seconds: float,
    seed: int,
    patience: int | None = None,
    simulations: int = 400,
) -> AshaOutcome:
    """Expected epochs per trial and sweep wall time of asynchronous successive halving, by simulation.

    Why simulate: in a small sweep ASHA lets far more than 1/r of the trials through, because a trial
    reaching a rung is only compared with the trials that reached it before (the first always passes), and
    the slot schedule (who finishes when) decides that order. The model mirrors Ray's `_Bracket`: trials
    start in order on `concurrency` slots (the first on each slot after `worker_start_seconds`), each pays
    `trial_overhead_seconds` then one epoch per
    `epoch_seconds` (drawn uniformly from the list: one entry per architecture the sampler can pick); at a
    rung a trial stops when its score is below the (1 - 1/r) percentile of the scores recorded there
    earlier. Scores are a fixed per-trial quality (learning curves do not cross). Early stopping with
    ``patience``: each trial's validation metric peaks at an epoch drawn uniformly from 1..max_t and the
    trial stops ``patience`` epochs later (or at max_t); without it trials that pass every rung run to
    max_t, an upper bound.
    """
    rungs = asha_rungs(grace_period, reduction_factor, max_t)
    rng = np.random.default_rng(seed)
    choices = np.asarray(epoch_seconds, dtype=float)
    total_epochs = 0
    total_wall = 0.0
    for _ in range(simulations):
        peak = rng.integers(1, max_t + 1, size=trials)
        epochs, wall = _simulate_once(
            quality=rng.random(trials),
            seconds=rng.choice(choices, size=trials),
            limits=np.minimum(peak + patience, max_t) if patience is not None else np.full(trials, max_t),
            concurrency=concurrency,
            rungs=rungs,
            reduction_factor=reduction_factor,
            max_t=max_t,
            trial_overhead_seconds=trial_overhead_seconds,
            worker_start_seconds=worker_start_seconds,
        )
        total_epochs += epochs
        total_wall += wall
    return AshaOutcome(
        epochs_per_trial=total_epochs / (simulations * trials), sweep_seconds=total_wall / simulations
    )


def _simulate_once(
    *,
    quality: np.ndarray,
    seconds: np.ndarray,
    limits: np.ndarray,
    concurrency: int,
    rungs: list[int],
    reduction_factor: int,
    max_t: int,
    trial_overhead_seconds: float,
    worker_start_seconds: float,
) -> tuple[int, float]:
    """One ASHA run: (epochs summed over trials, wall seconds until the last trial ends)."""
    trials = len(quality)
    recorded: dict[int, list[float]] = {m: [] for m in rungs}
    events: list[tuple[float, int, int]] = []  # (report time, trial, epoch), popped in time order
    for trial in range(min(concurrency, trials)):
        heapq.heappush(events, (worker_start_seconds + trial_overhead_seconds + seconds[trial], trial, 1))
    next_trial = min(concurrency, trials)
    epochs_total, end = 0, 0.0
    while events:
        now, trial, epoch = heapq.heappop(events)
        stop = epoch >= limits[trial]
        earlier = recorded.get(epoch)
        if earlier is not None:
            cutoff = np.percentile(earlier, (1 - 1 / reduction_factor) * 100) if earlier else None
            stop = stop or (cutoff is not None and quality[trial] < cutoff)
            earlier.append(float(quality[trial]))
        if not stop:
            heapq.heappush(events, (now + seconds[trial], trial, epoch + 1))
            continue
        epochs_total += epoch
        end = max(end, now)
        if next_trial < trials:  # the freed slot starts the next trial
            heapq.heappush(events, (now + trial_overhead_seconds + seconds[next_trial], next_trial, 1))
            next_trial += 1
    return epochs_total, end


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
            module = TabularClassifier.from_config(transform.n_numeric, transform.cardinalities, model)
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


def _candidate_models(model: ModelConfig, sweep: SweepConfig) -> list[ModelConfig]:
    """The architectures the sweep can sample: one per `hidden_sizes` choice, else the base model.

    `embedding_dim` searched: its upper bound is used (largest tables). Other searched fields (learning
    rate, dropout, weight decay) do not change the cost; a searched `batch_size` is not expanded.
    """
    base = model
    embedding = sweep.search_space.get("embedding_dim")
    if isinstance(embedding, IntParam | UniformParam):
        base = base.with_overrides({"embedding_dim": int(embedding.high)})
    elif isinstance(embedding, ChoiceParam):
        base = base.with_overrides({"embedding_dim": max(int(v) for v in embedding.values)})
    hidden = sweep.search_space.get("hidden_sizes")
    if isinstance(hidden, ChoiceParam):
        return [base.with_overrides({"hidden_sizes": list(values)}) for values in hidden.values]
    return [base]


def device_price(prices: EstimateConfig, device: str) -> tuple[str, float]:
    """(price key, price per hour): the GPU's own lower-case name when priced, else 'gpu'; 'cpu' per core."""
    if device == "cpu":
        return "cpu", prices.price_per_hour["cpu"]
    name = device.removeprefix("cuda:").lower()
    if name in prices.price_per_hour:
        return name, prices.price_per_hour[name]
    return "gpu", prices.price_per_hour["gpu"]


def estimate_resources(
    train: EncodedFeatures,
    val_rows: int,
    *,
    transform: FeatureTransform,
    model: ModelConfig,
    sweep: SweepConfig,
    prices: EstimateConfig,
    seed: int,
) -> ResourceEstimate:
    """Estimate a sweep's compute, memory, time, cost and storage before it runs.

    Profiles every architecture the sweep can sample (each `hidden_sizes` choice) on the device a trial
    will use, for `prices.profile_steps` steps: about a second each on CPU. Memory, parameters and FLOPs
    are for the largest of them (a conservative bound on what one trial needs); time uses the measured
    epoch time of each, since the sampler draws them with equal probability.

    CPU trials that ask for more cores than the machine has share them: epoch time stretches by
    (slots x cpus_per_trial) / cores when that exceeds 1. Other load on the machine is not modelled: the
    profiling run measures whatever share of a core it gets, and a busy machine can change between the
    estimate and the sweep (the load average was tried and double-counted load the profile already saw).
    """
    accelerator, precision = resolve_device(model)
    on_cuda = accelerator in ("gpu", "cuda") and torch.cuda.is_available() and sweep.gpus_per_trial > 0
    if not on_cuda:  # `train_trial` forces CPU fp32 on a trial that Ray gave no GPU
        accelerator, precision = "cpu", "32-true"
    device = f"cuda:{torch.cuda.get_device_name()}" if on_cuda else "cpu"
    activation_bytes = 2 if precision.startswith("bf16") else FP32_BYTES

    candidates = _candidate_models(model, sweep)
    n_num, cards = transform.n_numeric, transform.cardinalities
    largest = max(candidates, key=lambda m: parameter_count(n_num, cards, m))
    train_rows = len(train)

    epoch_seconds: list[float] = []  # uncontended, per candidate architecture
    throughputs: list[float] = []
    for candidate in candidates:
        profile = profile_training(
            train,
            val_rows,
            transform=transform,
            model=candidate,
            accelerator=accelerator,
            precision=precision,
            steps=prices.profile_steps,
            seed=seed,
        )
        throughputs.append(profile.samples_per_second)
        epoch_seconds.append(
            train_rows / profile.samples_per_second
            + profile.validation_seconds
            + profile.checkpoint_seconds
            + profile.shuffle_seconds
            + prices.epoch_overhead_seconds
        )

    trials = sweep.num_samples if sweep.search_space else 1  # as `run_sweep` samples
    concurrency = min(sweep.max_concurrent_trials, trials)
    cores = os.cpu_count() or 1
    contention = 1.0 if on_cuda else max(1.0, concurrency * sweep.cpus_per_trial / cores)
    epoch_seconds = [seconds * contention for seconds in epoch_seconds]
    max_t = model.max_epochs
    outcome = simulate_asha(
        epoch_seconds,
        trials=trials,
        concurrency=concurrency,
        grace_period=sweep.grace_period,
        reduction_factor=sweep.reduction_factor,
        max_t=max_t,
        trial_overhead_seconds=prices.trial_overhead_seconds,
        worker_start_seconds=prices.worker_start_seconds,
        seed=seed,
        patience=model.early_stopping_patience,
    )
    mean_epoch_seconds = float(np.mean(epoch_seconds))
    seconds_per_trial = prices.trial_overhead_seconds + outcome.epochs_per_trial * mean_epoch_seconds

    per_device = sweep.gpus_per_trial if on_cuda else sweep.cpus_per_trial
    device_hours = outcome.sweep_seconds / 3600 * per_device * concurrency
    price_key, price = device_price(prices, device)

    params = parameter_count(n_num, cards, largest)
    sweep_epochs = outcome.epochs_per_trial * trials
    sweep_flops = sweep_epochs * (
        train_flops_per_sample(n_num, cards, largest) * train_rows
        + forward_flops_per_sample(n_num, cards, largest) * val_rows
    )
    checkpoint = params * FP32_BYTES * (1 + ADAMW_STATES)  # weights + AdamW moments
    checkpoint_bytes = checkpoint * CHECKPOINTS_KEPT * trials
    checkpoint_peak_bytes = checkpoint * math.ceil(sweep_epochs)
    artifact_bytes = params * FP32_BYTES + 4096 * (1 + len(cards))  # weights + transform JSON, roughly
    storage_cost = (
        None
        if prices.storage_price_per_gb_month is None
        else (checkpoint_bytes + artifact_bytes) / _GB * prices.storage_price_per_gb_month
    )
    rungs = asha_rungs(sweep.grace_period, sweep.reduction_factor, max_t)
    assumptions = [
        f"Trials run on {device} in {precision}: "
        + (
            "Ray assigns each a GPU."
            if on_cuda
            else f"{sweep.cpus_per_trial:g} CPU core(s) each, {CPU_TORCH_THREADS} torch thread(s)."
        ),
        f"Throughput measured over {prices.profile_steps} steps after {WARMUP_STEPS} warm-up steps of the real "
        f"Lightning module on this machine, per architecture ({', '.join(str(c.hidden_sizes) for c in candidates)}); "
        "the sampler picks each with equal probability, so epoch time is their mean.",
        f"CPU contention: {concurrency} trial(s) x {sweep.cpus_per_trial:g} core(s) on {cores} cores stretch "
        f"each epoch by {contention:.2f}x; other load on the machine is not modelled and slows the sweep.",
        f"Memory, parameters and FLOPs are for the largest architecture {largest.hidden_sizes} (conservative).",
        f"Epoch = training rows / throughput + one validation pass + checkpoint write + shuffle "
        f"+ {prices.epoch_overhead_seconds:g} s of Tune reporting.",
        f"ASHA rungs at epochs {rungs or 'none'} (max_t {max_t}); in a large sweep 1/{sweep.reduction_factor} "
        f"survive each rung ({asha_expected_epochs(sweep.grace_period, sweep.reduction_factor, max_t):.1f} epochs "
        f"per trial); with {trials} trials on {concurrency} slots more survive (early arrivals face no "
        "competition), simulated with Ray's cutoff rule.",
        f"Early stopping (patience {model.early_stopping_patience}): a trial's validation AUC is assumed to peak "
        f"at an epoch uniform in 1..{max_t}, the trial stopping {model.early_stopping_patience} epochs later.",
        f"Each trial pays {prices.trial_overhead_seconds:g} s of start-up (actor reuse), the first on each slot "
        f"{prices.worker_start_seconds:g} s more for a fresh worker process; sweep wall time is the "
        "simulated slot schedule, not total / concurrency, since long survivors leave slots idle at the end.",
        f"Device-hours reserve {per_device:g} {'GPU' if on_cuda else 'core'}(s) x {concurrency} slot(s) for the "
        "whole wall time; Ray start-up, data loading and evaluation are not included.",
        f"Checkpoints: weights + AdamW state, one per epoch while the sweep runs, {CHECKPOINTS_KEPT} per trial "
        "kept after it (its best and its latest).",
    ]
    return ResourceEstimate(
        device=device,
        precision=precision,
        hidden_sizes=list(largest.hidden_sizes),
        parameters=params,
        bytes_per_parameter=FP32_BYTES,
        train_flops_per_sample=train_flops_per_sample(n_num, cards, largest),
        sweep_flops=float(sweep_flops),
        memory=memory_breakdown(
            n_num, cards, largest, train_rows=train_rows, val_rows=val_rows, activation_bytes=activation_bytes
        ),
        samples_per_second=float(np.mean(throughputs)),
        seconds_per_epoch=mean_epoch_seconds,
        cpu_contention=contention,
        trials=trials,
        concurrency=concurrency,
        epochs_per_trial_asha=asha_expected_epochs(sweep.grace_period, sweep.reduction_factor, max_t),
        epochs_per_trial=outcome.epochs_per_trial,
        seconds_per_trial=seconds_per_trial,
        sweep_seconds=outcome.sweep_seconds,
        device_hours=device_hours,
        price_key=price_key,
        price_per_hour=price,
        cost=device_hours * price,
        currency=prices.currency,
        checkpoint_bytes=checkpoint_bytes,
        checkpoint_peak_bytes=checkpoint_peak_bytes,
        artifact_bytes=artifact_bytes,
        storage_cost_per_month=storage_cost,
        assumptions=assumptions,
    )


def actual_from_sweep(result: SweepResult, device: str) -> ActualUsage:
    """What a finished sweep used, read from its `SweepResult`."""
    return ActualUsage(
        sweep_seconds=result.wall_seconds,
        trials=len(result.trials),
        epochs_total=sum(trial.epochs for trial in result.trials),
        train_seconds_total=sum(trial.train_seconds for trial in result.trials),
        device=device,
        resumed=result.resumed,
    )


def compare(estimate: ResourceEstimate, actual: ActualUsage) -> dict[str, float]:
    """Relative errors (estimate - actual) / actual: positive means the estimate was too high.

    NaN where there is nothing to compare: a measured zero, or the wall time of a resumed sweep (part of
    it, or all of it, ran in an earlier call). Per-trial epochs and training seconds survive a resume.
    """

    def error(estimated: float, measured: float) -> float:
        return (estimated - measured) / measured if measured else float("nan")

    estimated_train = estimate.sweep_epochs * estimate.seconds_per_epoch
    return {
        "sweep_seconds_error": float("nan")
        if actual.resumed
        else error(estimate.sweep_seconds, actual.sweep_seconds),
        "epochs_error": error(estimate.sweep_epochs, actual.epochs_total),
        "train_seconds_error": error(estimated_train, actual.train_seconds_total),
        "seconds_per_epoch_error": error(
            estimate.seconds_per_epoch, actual.train_seconds_total / max(actual.epochs_total, 1)
        ),
        "trials_error": error(estimate.trials, actual.trials),
    }
