"""Analytic counts from the architecture alone: parameters, FLOPs, peak memory and checkpoint sizes."""

from __future__ import annotations

from dataclasses import dataclass

from models.config import ModelConfig
from models.network import embedding_dims
from models.training import _VAL_BATCH_ROWS

# AdamW keeps two fp32 moments (exp_avg, exp_avg_sq) per parameter.
ADAMW_STATES = 2
FP32_BYTES = 4
INT64_BYTES = 8  # categorical codes are fed as int64


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


def row_bytes(n_numeric: int, cardinalities: list[int]) -> int:
    """One row as the training tensors hold it: fp32 numerics, int64 categorical codes, an fp32 label."""
    return n_numeric * FP32_BYTES + len(cardinalities) * INT64_BYTES + FP32_BYTES


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
    inputs = row_bytes(n_numeric, cardinalities)  # one batch row as fed
    per_row = inputs + 2 * (widths[0] - n_numeric) * activation_bytes + widths[0] * activation_bytes
    per_row += sum(3 * h * activation_bytes + h for h in hidden) + 2 * FP32_BYTES  # + logit and loss term
    train_activations = model.batch_size * per_row
    val_batch = min(max(model.batch_size, _VAL_BATCH_ROWS), max(val_rows, 1))
    val_activations = val_batch * (inputs + (widths[0] + 2 * max(hidden)) * activation_bytes)
    return MemoryBreakdown(
        weights=params * FP32_BYTES,  # master weights stay fp32 under bf16-mixed
        gradients=params * FP32_BYTES,
        optimizer_state=ADAMW_STATES * params * FP32_BYTES,
        activations=max(train_activations, val_activations),
        data=(2 * train_rows + val_rows) * row_bytes(n_numeric, cardinalities),
    )


def checkpoint_bytes(parameters: int) -> int:
    """One Tune checkpoint of a trial: fp32 weights plus the AdamW moments (Lightning metadata ignored)."""
    return parameters * FP32_BYTES * (1 + ADAMW_STATES)


def artifact_bytes(parameters: int, cardinalities: list[int]) -> int:
    """The registered model: fp32 weights plus the transform's JSON, roughly 4 KB per column and header."""
    return parameters * FP32_BYTES + 4096 * (1 + len(cardinalities))
