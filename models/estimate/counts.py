"""Counts from the architecture: parameters, FLOPs, peak memory and checkpoint sizes.

Each count is taken from the network the trial will build (`TabularNet` of the configuration, with its
numeric embeddings, categorical tables and MLP or TabM backbone), not from a formula per architecture:
parameters by counting them, FLOPs with torch's `FlopCounterMode` on a few probe rows, and activation
memory by recording what autograd saves for backward. A new layer type is counted the day it is added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from models.nn.config import ModelConfig
from models.nn.module import net_config
from models.nn.network import TabularNet
from models.training.fit import _VAL_BATCH_ROWS

# AdamW keeps two fp32 moments (exp_avg, exp_avg_sq) per parameter.
ADAMW_STATES = 2
FP32_BYTES = 4
INT64_BYTES = 8  # categorical codes are fed as int64
# Rows of the probe batch: FLOPs and saved activations grow linearly with rows, so a few suffice.
PROBE_ROWS = 8


@dataclass(frozen=True)
class MemoryBreakdown:
    """Peak device memory of one trial, in bytes, by what holds it."""

    weights: int
    gradients: int
    optimizer_state: int  # AdamW: two moments per parameter
    activations: int  # one training batch: what autograd saves for backward, plus the batch as fed
    data: int  # training tensors (plus the per-epoch shuffled copy) and validation tensors

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations + self.data


def build_net(
    n_numeric: int, cardinalities: list[int], model: ModelConfig, train_numeric: np.ndarray
) -> TabularNet:
    """The network a trial of `model` builds on this training split (bins from `train_numeric`)."""
    return TabularNet(**net_config(n_numeric, cardinalities, model, train_numeric))


def _probe(net: TabularNet, rows: int = PROBE_ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x_num = torch.randn(rows, net.n_numeric, generator=generator)
    x_cat = torch.zeros(rows, len(net.cardinalities), dtype=torch.int64)
    return x_num, x_cat


def _member_loss(net: TabularNet, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
    logits = net.member_logits(x_num, x_cat)  # [B, k], as training computes its loss
    return nn.functional.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def parameter_count(net: nn.Module) -> int:
    """Trainable parameters of `net`."""
    return sum(p.numel() for p in net.parameters())


def forward_flops_per_sample(net: TabularNet) -> int:
    """FLOPs of one row's forward pass (matrix products; element-wise ops are negligible beside them)."""
    x_num, x_cat = _probe(net)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x_num, x_cat)
    return counter.get_total_flops() // PROBE_ROWS


def train_flops_per_sample(net: TabularNet) -> int:
    """FLOPs of one row's training step: forward of every member plus backward, as counted by torch."""
    x_num, x_cat = _probe(net)
    with FlopCounterMode(display=False) as counter:
        _member_loss(net, x_num, x_cat).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops() // PROBE_ROWS


def saved_bytes_per_row(net: TabularNet) -> int:
    """Bytes autograd keeps for backward per training row (fp32), parameters left out."""
    x_num, x_cat = _probe(net)
    weights = {p.data_ptr() for p in net.parameters()}
    saved: dict[tuple[int, int], int] = {}  # one entry per tensor: a ReLU and the next layer share one

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.data_ptr() not in weights:
            saved[(tensor.data_ptr(), tensor.numel())] = tensor.numel() * tensor.element_size()
        return tensor

    training = net.training
    net.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            _member_loss(net, x_num, x_cat)
    finally:
        net.train(training)
    # Expanded views (TabM's k copies of the input) report their full numel: an upper bound.
    return -(-sum(saved.values()) // PROBE_ROWS)


def largest_output_bytes_per_row(net: TabularNet) -> int:
    """fp32 bytes per row of the largest tensor any layer outputs (or the backbone takes in): what inference
    holds at its peak."""
    x_num, x_cat = _probe(net)
    sizes: list[int] = []
    hooks = [
        module.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel() * FP32_BYTES))
        for module in net.modules()
        if module is not net and not list(module.children())
    ]
    # The concatenated input of the backbone is no layer's output: count it too.
    hooks.append(
        net.mlp.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].numel() * FP32_BYTES))
    )
    try:
        with torch.no_grad():
            net(x_num, x_cat)
    finally:
        for hook in hooks:
            hook.remove()
    return -(-max(sizes, default=0) // PROBE_ROWS)


def row_bytes(n_numeric: int, cardinalities: list[int]) -> int:
    """One row as the training tensors hold it: fp32 numerics, int64 categorical codes, an fp32 label."""
    return n_numeric * FP32_BYTES + len(cardinalities) * INT64_BYTES + FP32_BYTES


def memory_breakdown(
    net: TabularNet,
    model: ModelConfig,
    *,
    train_rows: int,
    val_rows: int,
    activation_bytes: int,
) -> MemoryBreakdown:
    """Peak memory of one trial: fp32 weights, gradients, AdamW moments, one batch's activations, data.

    `model` must be resolved for its data (`ModelConfig.for_data`): its batch size is a number. Activations:
    per training row, what autograd saves (scaled to `activation_bytes` per value) plus the row as fed;
    a validation batch (`_VAL_BATCH_ROWS` rows, no autograd) holds its input and the two largest layer
    outputs at once; the larger of the two counts. Data: the training tensors, the gathered copy each
    epoch's shuffle makes, and the validation tensors.
    """
    assert isinstance(model.batch_size, int), "resolve the config with for_data first"
    params = parameter_count(net)
    inputs = row_bytes(net.n_numeric, net.cardinalities)
    saved = saved_bytes_per_row(net) * activation_bytes // FP32_BYTES
    train_activations = model.batch_size * (inputs + saved)
    val_batch = min(max(model.batch_size, _VAL_BATCH_ROWS), max(val_rows, 1))
    val_activations = val_batch * (
        inputs + 2 * largest_output_bytes_per_row(net) * activation_bytes // FP32_BYTES
    )
    return MemoryBreakdown(
        weights=params * FP32_BYTES,  # master weights stay fp32 under bf16-mixed
        gradients=params * FP32_BYTES,
        optimizer_state=ADAMW_STATES * params * FP32_BYTES,
        activations=max(train_activations, val_activations),
        data=(2 * train_rows + val_rows) * inputs,
    )


def checkpoint_bytes(parameters: int) -> int:
    """One Tune checkpoint of a trial: fp32 weights plus the AdamW moments (Lightning metadata ignored)."""
    return parameters * FP32_BYTES * (1 + ADAMW_STATES)


def artifact_bytes(parameters: int, cardinalities: list[int]) -> int:
    """The registered model: fp32 weights plus the transform's JSON, roughly 4 KB per column and header."""
    return parameters * FP32_BYTES + 4096 * (1 + len(cardinalities))
