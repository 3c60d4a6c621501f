"""Ray Tune hyperparameter sweep of `TabularClassifier`: ASHA, per-epoch checkpoints, retries and resume.

Each trial is a function trainable (`train_trial`) that runs the ordinary `train_model` fit with a small
Lightning callback reporting metrics and a Lightning checkpoint to Tune after every epoch. A failed trial
is retried from its last checkpoint (`FailureConfig`); an interrupted sweep is resumed from its experiment
directory (`Tuner.restore`) when `run_sweep` is called again with the same `storage_path` and `name`.

Checkpoints are all kept while the sweep runs and pruned once it has finished (`_prune_checkpoints`).
Tune's own rotation (`num_to_keep`) deletes a checkpoint as soon as a better one is registered, but the
experiment-state snapshot that `Tuner.restore` reads is written later and throttled: a sweep killed in
between leaves a state that points at deleted checkpoints, and its resume fails with "Could not recover
from checkpoint as it does not exist on storage anymore".
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import ray
from lightning.pytorch.callbacks import Checkpoint as LightningCheckpoint
from ray import tune
from ray.tune import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from ray.tune.result_grid import ResultGrid
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from models.artifact.scorer import TabularScorer
from models.features.transform import EncodedFeatures, FeatureTransform
from models.nn.config import ModelConfig
from models.nn.module import TabularClassifier
from models.training.config import ChoiceParam, IntParam, LogUniformParam, SweepConfig, UniformParam
from models.training.fit import train_model

_log = logging.getLogger(__name__)

METRIC = "val_roc_auc"  # Tune-side names: no "/" (Tune treats "/" in keys as nesting)
MODE = "max"
CHECKPOINTS_KEPT = 2  # per finished trial, at most: its best and its latest (`_prune_checkpoints`)
CHECKPOINT_FILE = "model.ckpt"  # Lightning checkpoint inside each reported Tune checkpoint
PROGRESS_FILE = "progress.json"  # epoch and cumulative train seconds, read on a retry without torch.load
# Columns of Tune's per-trial results copied into `TrialSummary.history`, when present.
_HISTORY_KEYS = (
    "epoch",
    "training_iteration",
    "train_loss",
    "val_loss",
    METRIC,
    "train_seconds",
    "time_this_iter_s",
    "time_total_s",
)


class SweepError(RuntimeError):
    """The sweep produced no usable trial (every trial failed)."""


@dataclass(frozen=True)
class SweepData:
    """Encoded train/validation splits; put into Ray's object store once per sweep."""

    train: EncodedFeatures
    y_train: np.ndarray
    val: EncodedFeatures
    y_val: np.ndarray


@dataclass(frozen=True)
class TrialSummary:
    """One trial as Tune recorded it; `history` holds one dict per reported epoch."""

    trial_id: str
    params: dict[str, Any]
    status: str  # "TERMINATED" (finished or stopped by ASHA / the time budget) or "ERROR"
    best_val_auc: float | None
    epochs: int
    history: list[dict[str, float]]
    node_id: str | None  # Ray node of the trial's last report
    error: str | None
    train_seconds: float  # time inside `Trainer.fit`, summed over retries; excludes actor start-up
    seed: int | None = None  # the trial's training seed (sampled with its parameters, stable on resume)


@dataclass(frozen=True)
class SweepResult:
    """Outcome of a sweep; `scorer` carries the best trial's best checkpoint."""

    name: str
    best_trial_id: str
    best_params: dict[str, Any]
    best_val_auc: float
    scorer: TabularScorer
    trials: list[TrialSummary]
    wall_seconds: float  # this call only: a resumed sweep does not count the interrupted run
    resumed: bool
    storage_path: str  # experiment directory: storage_path / name
    set_aside: str | None = (
        None  # where an experiment that could not be resumed was moved before starting over
    )


class ResumableVariantGenerator(BasicVariantGenerator):
    """`BasicVariantGenerator` whose concurrency count starts from zero when a sweep is resumed.

    The generator counts its live trials to honour `max_concurrent` and forgets one only when Tune reports
    it complete. Its saved state can name trials as live that the restored experiment state already has
    TERMINATED (or has never heard of): Tune never reports those complete again, the count stays at the
    limit, and the resumed sweep waits for a next trial forever. After a restore, the trials Tune re-runs
    are not counted, so until they finish up to `max_concurrent` new ones may run beside them (still within
    the cluster's free CPUs; a local runtime is sized for `max_concurrent`).
    """

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._live_trials = set()


# Each trial's training seed is drawn with its parameters by the seeded search algorithm: distinct
# per trial, reproducible from the sweep seed, and saved in the trial's config so a resume reuses it.
TRIAL_SEED = "trial_seed"


def search_space(sweep: SweepConfig) -> dict[str, Any]:
    """Tune distributions for the configured search space (`int` bounds are inclusive), plus each
    trial's training seed."""
    space: dict[str, Any] = {TRIAL_SEED: tune.randint(0, 2**31 - 1)}
    for field, param in sweep.search_space.items():
        # LogUniformParam subclasses UniformParam: test it first.
        if isinstance(param, LogUniformParam):
            space[field] = tune.loguniform(param.low, param.high)
        elif isinstance(param, UniformParam):
            space[field] = tune.uniform(param.low, param.high)
        elif isinstance(param, IntParam):
            space[field] = tune.randint(param.low, param.high + 1)  # randint's upper bound is exclusive
        elif isinstance(param, ChoiceParam):
            space[field] = tune.choice(param.values)
        else:  # pragma: no cover - the discriminated union admits nothing else
            raise TypeError(f"unsupported search parameter for {field!r}: {param!r}")
    return space


class TuneReporter(LightningCheckpoint):
    """Reports each epoch's metrics to Tune with a Lightning checkpoint attached.

    A Lightning `Checkpoint` subclass so that it runs after the module's `on_train_epoch_end` (monitoring
    callbacks run last), when `train/loss` of the epoch is logged; Lightning's own `ModelCheckpoint` saves
    at the same point, so a fit resumed from this checkpoint starts at the next epoch.
    """

    def __init__(self, node_id: str, train_seconds_before: float = 0.0) -> None:
        self.node_id = node_id
        self.train_seconds_before = train_seconds_before  # from earlier attempts of this trial
        self._fit_start = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logged = trainer.callback_metrics
        if "val/roc_auc" not in logged:  # no validation ran this epoch: nothing to rank by
            return
        epoch = trainer.current_epoch
        train_seconds = self.train_seconds_before + time.perf_counter() - self._fit_start
        metrics: dict[str, Any] = {
            "epoch": epoch,
            METRIC: float(logged["val/roc_auc"]),
            "val_loss": float(logged["val/loss"]),
            "train_seconds": train_seconds,
            "node_id": self.node_id,
        }
        if "train/loss" in logged:
            metrics["train_loss"] = float(logged["train/loss"])
        with tempfile.TemporaryDirectory() as directory:
            trainer.save_checkpoint(Path(directory) / CHECKPOINT_FILE)
            progress = {"epoch": epoch, "train_seconds": train_seconds}
            (Path(directory) / PROGRESS_FILE).write_text(json.dumps(progress))
            # Tune copies the directory to the trial's storage before `report` returns.
            tune.report(metrics, checkpoint=Checkpoint.from_directory(directory))


def _own_copy(features: EncodedFeatures) -> EncodedFeatures:
    # Object-store arrays are read-only views of shared memory; torch.from_numpy needs writable memory.
    return EncodedFeatures(numeric=np.array(features.numeric), categorical=np.array(features.categorical))


def train_trial(
    config: dict[str, Any], *, data: SweepData, transform: FeatureTransform, base: ModelConfig, seed: int
) -> None:
    """Tune function trainable: fit `base` with the sampled `config`, reporting every epoch.

    The training seed is the trial's own (`TRIAL_SEED` in `config`); `seed` serves a config without one.

    On a retry (`tune.get_checkpoint()` is set) the fit resumes from the last reported Lightning
    checkpoint instead of starting over. A trial without a GPU is forced onto the CPU in fp32, so an
    "auto" base config cannot pick a GPU that Ray did not assign to it.
    """
    overrides = dict(config)
    seed = int(overrides.pop(TRIAL_SEED, seed))
    if not ray.get_gpu_ids():
        overrides |= {"accelerator": "cpu", "precision": "32"}
    model_config = base.with_overrides(overrides)
    node_id = ray.get_runtime_context().get_node_id()

    with tempfile.TemporaryDirectory() as scratch:
        ckpt_path: str | None = None
        train_seconds_before = 0.0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            restored = Path(checkpoint.to_directory(scratch))
            progress = json.loads((restored / PROGRESS_FILE).read_text())
            if progress["epoch"] + 1 >= model_config.max_epochs:
                return  # the last epoch was already reported before the failure
            ckpt_path = str(restored / CHECKPOINT_FILE)
            train_seconds_before = float(progress["train_seconds"])

        train_model(
            _own_copy(data.train),
            np.array(data.y_train),
            _own_copy(data.val),
            np.array(data.y_val),
            transform=transform,
            config=model_config,
            seed=seed,
            callbacks=[TuneReporter(node_id, train_seconds_before)],
            default_root_dir=Path(scratch),
            ckpt_path=ckpt_path,
        )


@contextmanager
def _quiet_tune() -> Iterator[None]:
    """Silence Tune's console output for one `fit`; process environment restored afterwards.

    `verbose=0` alone still prints an experiment table with the default ("new") output engine; the
    legacy engine at verbosity 0 prints nothing. Forced experiment-state snapshots (every checkpoint past
    `num_to_keep`, i.e. every epoch of a short trial) are expected here, so their warning is noise.
    """
    settings = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}
    previous = {key: os.environ.get(key) for key in settings}
    os.environ.update({key: value for key, value in settings.items() if previous[key] is None})
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)


# Run by Ray in each worker at its start (named, not imported: that module imports this one).
WORKER_SETUP_HOOK = "models.training.worker.prepare"

_AUTH_LOGGER = logging.getLogger("ray._private.authentication.authentication_token_setup")


def _drop_token_auth_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _connect(sweep: SweepConfig, ray_address: str | None) -> bool:
    """Join or start Ray unless already initialised; True when this call started it (and must stop it)."""
    if ray.is_initialized():
        return False
    address = ray_address or os.environ.get("RAY_ADDRESS") or sweep.ray_address
    quiet: dict[str, Any] = {
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        # Each worker imports the training stack at its start, the collector off (models.training.worker).
        "runtime_env": {"worker_process_setup_hook": WORKER_SETUP_HOOK},
    }
    if address:
        ray.init(address=address, **quiet)
    else:
        # "local", not None: None would join whatever cluster `ray start` last recorded on this machine.
        # Ray enables token auth for a local cluster by default and says so at every start; keep the
        # default (a token under ~/.ray) and drop only that notice. Setting RAY_AUTH_MODE=token here instead
        # is too late: Ray reads its config when it is imported.
        _AUTH_LOGGER.addFilter(_drop_token_auth_notice)
        num_cpus = max(1, math.ceil(sweep.max_concurrent_trials * sweep.cpus_per_trial))
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
    return True


def _history(result: Any) -> list[dict[str, float]]:
    frame = result.metrics_dataframe
    if frame is None or frame.empty:
        return []
    columns = [key for key in _HISTORY_KEYS if key in frame.columns]
    rows = frame[columns].to_dict("records")
    return [{key: float(value) for key, value in row.items() if pd.notna(value)} for row in rows]


def _summarize(result: Any) -> TrialSummary:
    history = _history(result)
    aucs = [row[METRIC] for row in history if METRIC in row]
    metrics = result.metrics or {}
    return TrialSummary(
        trial_id=str(metrics.get("trial_id") or Path(result.path).name),
        params={k: v for k, v in (result.config or {}).items() if k != TRIAL_SEED},
        seed=(result.config or {}).get(TRIAL_SEED),
        status="ERROR" if result.error is not None else "TERMINATED",
        best_val_auc=max(aucs) if aucs else None,
        epochs=int(max(row["epoch"] for row in history if "epoch" in row)) + 1 if history else 0,
        history=history,
        node_id=metrics.get("node_id"),
        error=None if result.error is None else f"{type(result.error).__name__}: {result.error}",
        train_seconds=float(metrics.get("train_seconds", 0.0)),
    )


def _best(grid: ResultGrid, trials: list[TrialSummary]) -> tuple[int, Checkpoint, float]:
    """Index, best checkpoint and its val AUC of the trial whose best kept checkpoint scores highest."""
    candidates = [
        (score, index, checkpoint)
        for index, result in enumerate(grid)
        for score, checkpoint in _scored(result)
    ]
    if not candidates:
        errors = [trial.error for trial in trials if trial.error]
        first = errors[0] if errors else "no trial reported a finite val_roc_auc"
        raise SweepError(f"all {len(trials)} sweep trials failed; first error: {first}")
    score, index, checkpoint = max(candidates, key=lambda candidate: candidate[0])
    return index, checkpoint, score


def _scored(result: Any) -> list[tuple[float, Checkpoint]]:
    """A trial's checkpoints with a finite validation AUC, in the order Tune registered them."""
    scored = []
    for checkpoint, metrics in result.best_checkpoints or []:
        score = metrics.get(METRIC)
        if score is not None and math.isfinite(score):
            scored.append((float(score), checkpoint))
    return scored


def _prune_checkpoints(grid: ResultGrid) -> int:
    """Delete each finished trial's checkpoints but its best and its latest; returns how many went.

    The best one is what `_best` picks again when a finished sweep is restored (the first of equal
    scores, as `max` keeps it); the latest one is where an errored trial resumes from.
    """
    removed = 0
    for result in grid:
        scored = _scored(result)
        keep: set[Path] = set()
        if scored:
            keep.add(Path(max(scored, key=lambda pair: pair[0])[1].path))
        if result.checkpoint is not None:
            keep.add(Path(result.checkpoint.path))
        for directory in Path(result.path).glob("checkpoint_*"):
            if directory.is_dir() and directory not in keep:
                shutil.rmtree(directory, ignore_errors=True)
                removed += 1
    return removed


def _load_scorer(checkpoint: Checkpoint, transform: FeatureTransform) -> TabularScorer:
    with checkpoint.as_directory() as directory:
        module = TabularClassifier.load_from_checkpoint(Path(directory) / CHECKPOINT_FILE, map_location="cpu")
    return TabularScorer(transform, module.net, module.net.architecture())


def run_sweep(
    data: SweepData,
    *,
    transform: FeatureTransform,
    base: ModelConfig,
    sweep: SweepConfig,
    seed: int,
    storage_path: Path,
    name: str,
    ray_address: str | None = None,
    trainable: Callable[..., None] | None = None,
    reuse_actors: bool = True,
) -> SweepResult:
    """Run (or resume) an ASHA sweep over `sweep.search_space` and return the best trial's model.

    Ray: an initialised runtime is reused; otherwise this joins `ray_address`, then `RAY_ADDRESS`, then
    `sweep.ray_address`, or starts a local runtime sized for the sweep, and shuts down only what it
    started. If `storage_path / name` holds a restorable experiment (an interrupted run of the same
    sweep), it is resumed: unfinished and errored trials continue from their last checkpoints. An
    experiment that cannot be resumed (its state unreadable) is moved aside (`SweepResult.set_aside`) and
    the sweep starts over, rather than blocking every later run of the same data and config.
    `trainable` replaces `train_trial` (same signature), e.g. to inject failures in tests;
    `reuse_actors=False` (a fresh process per trial) exists only as the benchmark's reference.
    Raises `SweepError` when no trial produced a checkpointed validation AUC.
    """
    started = _connect(sweep, ray_address)
    try:
        fn = tune.with_resources(
            tune.with_parameters(
                trainable or train_trial, data=data, transform=transform, base=base, seed=seed
            ),
            {"cpu": sweep.cpus_per_trial, "gpu": sweep.gpus_per_trial},
        )
        experiment = Path(storage_path).resolve() / name
        start = time.perf_counter()
        resumed = tune.Tuner.can_restore(experiment)
        set_aside: Path | None = None
        grid: ResultGrid | None = None
        if resumed:
            try:
                with _quiet_tune():
                    grid = tune.Tuner.restore(
                        str(experiment), trainable=fn, resume_unfinished=True, resume_errored=True
                    ).fit()
            except Exception as exc:  # any unreadable state: start over, keep it for a post-mortem
                set_aside = experiment.with_name(f"{name}.unrestorable-{time.strftime('%Y%m%d-%H%M%S')}")
                experiment.rename(set_aside)
                _log.warning(
                    "sweep %s could not be resumed (%s: %s); moved to %s, starting over",
                    name,
                    type(exc).__name__,
                    exc,
                    set_aside,
                )
                resumed = False
                start = time.perf_counter()
        if grid is None:
            tuner = tune.Tuner(
                fn,
                param_space=search_space(sweep),
                tune_config=TuneConfig(
                    metric=METRIC,
                    mode=MODE,
                    scheduler=ASHAScheduler(
                        max_t=base.max_epochs,
                        grace_period=sweep.grace_period,
                        reduction_factor=sweep.reduction_factor,
                    ),
                    # With nothing to search, repeated samples would train the same configuration.
                    num_samples=sweep.num_samples if sweep.search_space else 1,
                    # The concurrency limit lives in the search algorithm: Tune ignores
                    # `max_concurrent_trials` when a search algorithm instance is passed.
                    search_alg=ResumableVariantGenerator(
                        max_concurrent=sweep.max_concurrent_trials, random_state=seed
                    ),
                    reuse_actors=reuse_actors,  # about 3 s instead of 17 s of process start-up per trial
                    time_budget_s=sweep.time_budget_s,
                ),
                run_config=RunConfig(
                    name=name,
                    storage_path=str(experiment.parent),
                    failure_config=FailureConfig(max_failures=sweep.max_failures),
                    # Keep all while running (see the module docstring); pruned after `fit`.
                    checkpoint_config=CheckpointConfig(
                        num_to_keep=None, checkpoint_score_attribute=METRIC, checkpoint_score_order=MODE
                    ),
                    verbose=0,
                ),
            )
            with _quiet_tune():
                grid = tuner.fit()
        wall_seconds = time.perf_counter() - start
        trials = [_summarize(result) for result in grid]
        index, checkpoint, best_val_auc = _best(grid, trials)
        scorer = _load_scorer(checkpoint, transform)
        _prune_checkpoints(grid)
    finally:
        if started:
            ray.shutdown()
    return SweepResult(
        name=name,
        best_trial_id=trials[index].trial_id,
        best_params=trials[index].params,
        best_val_auc=best_val_auc,
        scorer=scorer,
        trials=trials,
        wall_seconds=wall_seconds,
        resumed=resumed,
        storage_path=str(experiment),
        set_aside=None if set_aside is None else str(set_aside),
    )
