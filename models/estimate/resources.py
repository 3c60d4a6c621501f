"""`estimate_resources`: the pre-flight estimate of a sweep's compute, memory, time, cost and storage.

Two halves: analytic figures from the architecture (`counts`: parameters, FLOPs, memory, storage) and a
short measured profiling run of the real `TabularClassifier` (`profiling`) on the actual training tensors
and the device a sweep trial would use. Wall time comes from a small simulation of ASHA (`asha`) over the
sweep's trials and concurrency slots, fed with the measured epoch time; `pricing` turns it into a cost.
"""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import torch

from models.estimate.asha import asha_expected_epochs, asha_rungs, simulate_asha
from models.estimate.config import DeviceSpec, EstimateConfig
from models.estimate.counts import (
    FP32_BYTES,
    artifact_bytes,
    build_net,
    checkpoint_bytes,
    forward_flops_per_sample,
    memory_breakdown,
    parameter_count,
    train_flops_per_sample,
)
from models.estimate.pricing import device_price, storage_cost_per_month
from models.estimate.profiling import WARMUP_STEPS, profile_training
from models.estimate.result import ResourceEstimate, WhatIf
from models.features.transform import EncodedFeatures, FeatureTransform
from models.nn.config import ModelConfig
from models.training.config import ChoiceParam, IntParam, SweepConfig, UniformParam
from models.training.fit import CPU_TORCH_THREADS, resolve_device
from models.training.sweep import CHECKPOINTS_KEPT

# Searched fields that change a trial's cost. Choices are expanded (one candidate per combination); a
# numeric range is profiled at its upper bound (the most expensive value). Learning rate, dropout and weight
# decay do not change the cost; a searched batch size is not expanded.
_COST_CHOICES = ("architecture", "hidden_sizes", "num_embedding", "ensemble_size")
_COST_UPPER = ("ensemble_size", "embedding_dim", "num_embedding_dim", "num_bins")


def _candidate_models(model: ModelConfig, sweep: SweepConfig) -> list[ModelConfig]:
    """The architectures the sweep can sample: every combination of the searched cost-relevant choices."""
    base = model
    for name in _COST_UPPER:
        param = sweep.search_space.get(name)
        if isinstance(param, IntParam | UniformParam):
            base = base.with_overrides({name: int(param.high)})
        elif isinstance(param, ChoiceParam) and name not in _COST_CHOICES:
            base = base.with_overrides({name: max(int(v) for v in param.values)})
    choices = [
        [(name, value) for value in param.values]
        for name in _COST_CHOICES
        if isinstance(param := sweep.search_space.get(name), ChoiceParam)
    ]
    candidates = [base.with_overrides(dict(combination)) for combination in itertools.product(*choices)]
    # Without TabM the ensemble size is ignored: drop combinations that build the same network.
    unique: dict[str, ModelConfig] = {}
    for candidate in candidates:
        key = candidate.model_copy(
            update={"ensemble_size": candidate.k if candidate.k > 1 else 2}
        ).model_dump_json()
        unique.setdefault(key, candidate)
    return list(unique.values())


def _describe(model: ModelConfig) -> str:
    arch = f"TabM k={model.ensemble_size}" if model.architecture == "tabm" else "MLP"
    return f"{arch} {model.hidden_sizes} {model.num_embedding}"


def estimate_resources(
    train: EncodedFeatures,
    val_rows: int,
    *,
    transform: FeatureTransform,
    model: ModelConfig,
    sweep: SweepConfig,
    prices: EstimateConfig,
    seed: int,
    cv_fits: int = 0,
    cv_fit_rows: int = 0,
    test_rows: int = 0,
) -> ResourceEstimate:
    """Estimate a sweep's compute, memory, time, cost and storage before it runs.

    Profiles every architecture the sweep can sample (each combination of searched architecture choices) on the device a trial
    will use, for `prices.profile_steps` steps: about a second each on CPU. Memory, parameters and FLOPs
    are for the largest of them (a conservative bound on what one trial needs); time uses the measured
    epoch time of each, since the sampler draws them with equal probability.

    The phases after the sweep (evaluation on ``test_rows`` and the rest, registration, packaging) come from the
    calibrated constants of `prices`; each device of `prices.devices` gets a what-if row (`_what_if`).

    `cv_fits` fits of `cv_fit_rows` rows each follow the sweep when the table is cross-validated
    (`SplitConfig`): they run one after another in the pipeline's process, each for the early-stopping
    epochs the ASHA simulation assumes, at the measured epoch time scaled by rows; shown beside the sweep.

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

    train_rows = len(train)
    candidates = [candidate.for_data(train_rows) for candidate in _candidate_models(model, sweep)]
    n_num, cards = transform.n_numeric, transform.cardinalities
    nets = [build_net(n_num, cards, candidate, train.numeric) for candidate in candidates]
    index = max(range(len(nets)), key=lambda i: train_flops_per_sample(nets[i]))
    largest, largest_net = candidates[index], nets[index]

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
    outcome = _simulate(epoch_seconds, trials, concurrency, sweep, model, prices, seed)
    mean_epoch_seconds = float(np.mean(epoch_seconds))
    seconds_per_trial = prices.trial_overhead_seconds + outcome.epochs_per_trial * mean_epoch_seconds

    # Early stopping as the simulation assumes it: the metric peaks at an epoch uniform in 1..max_t.
    peaks = np.arange(1, max_t + 1)
    fit_epochs = float(np.mean(np.minimum(peaks + model.early_stopping_patience, max_t)))
    uncontended = mean_epoch_seconds / contention  # the CV fits run alone
    cv_seconds = cv_fits * fit_epochs * uncontended * cv_fit_rows / max(train_rows, 1)

    per_device = sweep.gpus_per_trial if on_cuda else sweep.cpus_per_trial
    device_hours = outcome.sweep_seconds / 3600 * per_device * concurrency
    price_key, price = device_price(prices, device)
    hourly = per_device * concurrency * price  # the cost of one hour of this sweep
    low, high = outcome.sweep_seconds_range

    params = max(parameter_count(net) for net in nets)
    train_flops = train_flops_per_sample(largest_net)
    sweep_epochs = outcome.epochs_per_trial * trials
    sweep_flops = sweep_epochs * (train_flops * train_rows + forward_flops_per_sample(largest_net) * val_rows)
    checkpoint = checkpoint_bytes(params)  # weights + AdamW moments
    kept_bytes = checkpoint * CHECKPOINTS_KEPT * trials
    peak_bytes = checkpoint * math.ceil(sweep_epochs)
    model_bytes = artifact_bytes(params, cards)
    rungs = asha_rungs(sweep.grace_period, sweep.reduction_factor, max_t)
    assumptions = [
        f"Trials run on {device} in {precision}: "
        + (
            "Ray assigns each a GPU."
            if on_cuda
            else f"{sweep.cpus_per_trial:g} CPU core(s) each, {CPU_TORCH_THREADS} torch thread(s)."
        ),
        f"Throughput measured over {prices.profile_steps} steps after {WARMUP_STEPS} warm-up steps of the real "
        f"Lightning module on this machine, per architecture ({'; '.join(_describe(c) for c in candidates)}); "
        "the sampler picks each with equal probability, so epoch time is their mean.",
        f"CPU contention: {concurrency} trial(s) x {sweep.cpus_per_trial:g} core(s) on {cores} cores stretch "
        f"each epoch by {contention:.2f}x; other load on the machine is not modelled and slows the sweep.",
        f"Memory and FLOPs are for the costliest architecture ({_describe(largest)}), parameters for the largest "
        "(conservative); both counted on the network itself (torch's FLOP counter, autograd's saved tensors).",
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
    if cv_fits:
        assumptions.append(
            f"Cross-validation after the sweep: {cv_fits} fits of {cv_fit_rows:,} rows, one at a time, "
            f"{fit_epochs:.1f} epochs each (early stopping as above), at the measured epoch time scaled by rows."
        )
    what_if = [
        _what_if(
            name,
            spec,
            candidates=candidates,
            nets=nets,
            train_rows=train_rows,
            val_rows=val_rows,
            trials=trials,
            sweep=sweep,
            model=model,
            prices=prices,
            seed=seed,
            peak_bytes_per_trial=memory_breakdown(
                largest_net,
                largest,
                train_rows=train_rows,
                val_rows=val_rows,
                activation_bytes=activation_bytes,
            ).total,
        )
        for name, spec in prices.devices.items()
    ]
    assumptions.append(
        f"Timeline: the sweep phase adds {prices.sweep_start_seconds:g} s of Ray start-up and the MLflow parent run; "
        "phases after the sweep: evaluation "
        f"{prices.evaluation_seconds:g} s + {prices.evaluation_seconds_per_1k_rows:g} s per 1,000 rows of the "
        f"table, registration {prices.registration_seconds:g} s, packaging {prices.packaging_seconds:g} s "
        "(constants calibrated with benchmarks/bench_estimate.py, which reports each phase's error)."
    )
    if what_if:
        assumptions.append(
            "What-if rows: each device's epoch = optimiser steps x max(batch FLOPs / its sustained TFLOP/s, its "
            "least step time) + the validation pass, the same ASHA simulation on one such device (trials side by "
            "side as gpus_per_trial allows), its memory against the costliest trial's peak x trials side by side; "
            "a device without a measured speed is a projection."
        )
    table_rows = train_rows + val_rows + test_rows
    return ResourceEstimate(
        device=device,
        precision=precision,
        hidden_sizes=list(largest.hidden_sizes),
        architecture=_describe(largest),
        parameters=params,
        bytes_per_parameter=FP32_BYTES,
        train_flops_per_sample=train_flops,
        sweep_flops=float(sweep_flops),
        memory=memory_breakdown(
            largest_net, largest, train_rows=train_rows, val_rows=val_rows, activation_bytes=activation_bytes
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
        checkpoint_bytes=kept_bytes,
        checkpoint_peak_bytes=peak_bytes,
        artifact_bytes=model_bytes,
        storage_cost_per_month=storage_cost_per_month(kept_bytes + model_bytes, prices),
        assumptions=assumptions,
        cv_fits=cv_fits,
        cv_seconds=cv_seconds,
        sweep_seconds_range=(low, high),
        sweep_epochs_range=outcome.sweep_epochs_range,
        cost_range=(low / 3600 * hourly, high / 3600 * hourly),
        sweep_start_seconds=prices.sweep_start_seconds,
        evaluation_seconds=prices.evaluation_seconds
        + prices.evaluation_seconds_per_1k_rows * table_rows / 1000,
        registration_seconds=prices.registration_seconds,
        packaging_seconds=prices.packaging_seconds,
        what_if=what_if,
    )


def _simulate(
    epoch_seconds: list[float],
    trials: int,
    concurrency: int,
    sweep: SweepConfig,
    model: ModelConfig,
    prices: EstimateConfig,
    seed: int,
):
    """The ASHA simulation of this sweep with the given epoch times (one per architecture) and slots."""
    return simulate_asha(
        epoch_seconds,
        trials=trials,
        concurrency=concurrency,
        grace_period=sweep.grace_period,
        reduction_factor=sweep.reduction_factor,
        max_t=model.max_epochs,
        trial_overhead_seconds=prices.trial_overhead_seconds,
        worker_start_seconds=prices.worker_start_seconds,
        seed=seed,
        patience=model.early_stopping_patience,
    )


def device_epoch_seconds(
    spec: DeviceSpec, *, train_flops: int, forward_flops: int, batch_size: int, train_rows: int, val_rows: int
) -> float:
    """One epoch of one architecture on a device of the price table: each training step the larger of its FLOPs
    at the device's sustained rate and the device's least step time; the validation pass at a third of that least
    time per batch (no backward pass, no optimiser)."""
    rate = spec.train_tflops * 1e12
    train_steps = math.ceil(train_rows / batch_size)
    val_steps = math.ceil(val_rows / batch_size)
    step = max(batch_size * train_flops / rate, spec.step_seconds)
    val_step = max(batch_size * forward_flops / rate, spec.step_seconds / 3)
    return train_steps * step + val_steps * val_step


def _what_if(
    name: str,
    spec: DeviceSpec,
    *,
    candidates: list[ModelConfig],
    nets: list,
    train_rows: int,
    val_rows: int,
    trials: int,
    sweep: SweepConfig,
    model: ModelConfig,
    prices: EstimateConfig,
    seed: int,
    peak_bytes_per_trial: float,
) -> WhatIf:
    """The sweep on one ``spec`` device: trials side by side as ``gpus_per_trial`` allows (one when unset)."""
    share = sweep.gpus_per_trial if 0 < sweep.gpus_per_trial <= 1 else 1.0
    concurrency = max(1, min(trials, int(1 / share)))
    epochs = [
        device_epoch_seconds(
            spec,
            train_flops=train_flops_per_sample(net),
            forward_flops=forward_flops_per_sample(net),
            batch_size=int(candidate.batch_size),
            train_rows=train_rows,
            val_rows=val_rows,
        )
        + prices.epoch_overhead_seconds
        for candidate, net in zip(candidates, nets, strict=True)
    ]
    outcome = _simulate(epochs, trials, concurrency, sweep, model, prices, seed)
    return WhatIf(
        device=name,
        measured=spec.measured,
        concurrency=concurrency,
        seconds_per_epoch=float(np.mean(epochs)),
        sweep_seconds=outcome.sweep_seconds,
        sweep_seconds_range=outcome.sweep_seconds_range,
        price_per_hour=spec.price_per_hour,
        cost=outcome.sweep_seconds / 3600 * spec.price_per_hour,
        memory_bytes=peak_bytes_per_trial * concurrency,
        memory_capacity_bytes=spec.memory_gb * 1e9,
    )
