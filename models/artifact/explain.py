"""Per-row explanations in raw-feature terms: integrated gradients of the calibrated score.

Integrated gradients (Sundararajan et al., 2017) attribute ``f(x) - f(baseline)`` to the inputs along the
straight path from a baseline row to the row. Categorical inputs are indices, so their path runs through
embedding space: every `nn.Embedding` of the network (of every fold member) has its output moved from the
baseline's embedding to the row's, and a column's attribution is the sum over its embedding dimensions in
all members. Numeric inputs move in the standardised space the network reads. ``f`` is the calibrated
probability, so attributions are in score units and add up to ``score - baseline_score`` up to the
quadrature error of ``steps`` midpoint steps, which is returned with them (``gap``).

The baseline row: every numeric at its training median, every categorical missing (the index the network
learned for "no value").

A blend (`models.artifact.blend`) holds gradient-boosted trees, which have no gradients: its rows are explained
by permutation Shapley values against the same baseline row instead. For each of ``PERMUTATIONS`` orders of
the raw features (half of them random, seeded, the other half their reverses), the features are switched
from the baseline's value to the row's one at a time and each is credited with the change in the calibrated
score. Each order's credits add up to ``score - baseline_score`` exactly, so their average does too: the
``gap`` is only floating-point rounding (below 1e-6). The average over orders estimates the Shapley values of
the game "features set to the row's values, the others at the baseline's". Implemented here rather than with captum: with one forward hook per embedding it
is a few dozen lines of torch over the network as it is, including fold ensembles whose members each have
their own embeddings, where captum's layer attribution would need a wrapper per member.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.artifact.scorer import TabularScorer
from models.features.transform import MISSING_INDEX, EncodedFeatures

DEFAULT_STEPS = 64
PERMUTATIONS = 16  # feature orders averaged for a blend's attributions (8 random and their reverses)


@dataclass(frozen=True)
class Explanation:
    """One row: its score, the baseline's, and each raw feature's share of the difference."""

    score: float
    baseline_score: float
    attributions: dict[str, float]  # raw feature name -> score units
    gap: float  # score - baseline_score - sum(attributions): the quadrature error


def baseline_row(scorer: TabularScorer) -> EncodedFeatures:
    """The encoded baseline: numerics at their training medians, categoricals missing."""
    transform = scorer.transform
    numeric = (np.asarray(transform.medians) - np.asarray(transform.means)) / np.asarray(transform.stds)
    return EncodedFeatures(
        numeric=numeric.astype(np.float32).reshape(1, -1),
        categorical=np.full((1, len(transform.spec.categorical)), MISSING_INDEX, dtype=np.int64),
    )


def _embedding_columns(net: nn.Module) -> list[tuple[nn.Embedding, int]]:
    """Every categorical embedding of the network with the input column it reads (members included)."""
    members = list(net.members) if hasattr(net, "members") else [net]
    return [(embedding, j) for member in members for j, embedding in enumerate(member.embeddings)]


def method(scorer: TabularScorer, steps: int = DEFAULT_STEPS) -> str:
    """How ``explain`` attributes this scorer's scores, in words (the /explain response says it)."""
    if scorer.blend is not None:
        return (
            f"permutation Shapley values of the calibrated score ({PERMUTATIONS} feature orders), from the "
            "baseline row; exact up to rounding"
        )
    return f"integrated gradients of the calibrated score, {steps} midpoint steps, from the baseline row"


def explain(scorer: TabularScorer, encoded: EncodedFeatures, steps: int = DEFAULT_STEPS) -> list[Explanation]:
    """Integrated-gradient attributions of each encoded row; a blend's by permutations (see the module doc)."""
    if scorer.blend is not None:
        return explain_by_permutations(scorer, encoded)
    net = scorer.net
    base = baseline_row(scorer)
    n, s = len(encoded), steps
    alphas = (torch.arange(s, dtype=torch.float32) + 0.5) / s  # midpoints of [0, 1]
    alpha_rows = alphas.repeat(n)  # [n*s]: row-major, each row's s steps together
    x_cat = torch.from_numpy(encoded.categorical).repeat_interleave(s, dim=0)  # [n*s, n_cat]
    x_num = torch.from_numpy(encoded.numeric).repeat_interleave(s, dim=0)  # [n*s, n_num]
    b_num = torch.from_numpy(base.numeric)  # [1, n_num]
    b_cat = torch.from_numpy(base.categorical)[0]  # [n_cat]
    path_num = (b_num + alpha_rows[:, None] * (x_num - b_num)).requires_grad_(True)

    moved: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # column, path output, (actual - baseline)

    def hook_for(embedding: nn.Embedding, column: int):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> torch.Tensor:
            start = module.weight[b_cat[column]]  # [dim]
            delta = output - start  # [n*s, dim]
            path = start + alpha_rows[:, None] * delta
            path.retain_grad()
            moved.append((column, path, delta))
            return path

        return hook

    handles = [
        embedding.register_forward_hook(hook_for(embedding, j)) for embedding, j in _embedding_columns(net)
    ]
    was_training = net.training
    net.eval()
    try:
        with torch.enable_grad():
            logits = net(path_num, x_cat).double()  # [n*s]
            probability = torch.sigmoid(_calibrated(scorer, logits))
            probability.sum().backward()
    finally:
        for handle in handles:
            handle.remove()
        net.zero_grad(set_to_none=True)  # the served network keeps no gradients
        net.train(was_training)

    numeric_names, categorical_names = scorer.transform.spec.numeric, scorer.transform.spec.categorical
    attributions = np.zeros((n, len(numeric_names) + len(categorical_names)))
    if numeric_names:
        grads = path_num.grad.reshape(n, s, -1).mean(dim=1)  # [n, n_num]
        attributions[:, : len(numeric_names)] = (
            (grads * (torch.from_numpy(encoded.numeric) - b_num)).double().numpy()
        )
    for column, path, delta in moved:
        grads = path.grad.reshape(n, s, -1).mean(dim=1)  # [n, dim]
        share = (grads * delta.reshape(n, s, -1)[:, 0, :]).sum(dim=1)  # [n]
        attributions[:, len(numeric_names) + column] += share.double().detach().numpy()

    return _explanations(scorer, encoded, base, attributions)


def _explanations(
    scorer: TabularScorer, encoded: EncodedFeatures, base: EncodedFeatures, attributions: np.ndarray
) -> list[Explanation]:
    """Each row's score, the baseline's, its attributions [n, features] by raw feature name, and the gap."""
    scores = scorer.predict_proba_encoded(encoded)
    baseline_score = float(scorer.predict_proba_encoded(base)[0])
    names = [*scorer.transform.spec.numeric, *scorer.transform.spec.categorical]
    return [
        Explanation(
            float(score),
            baseline_score,
            dict(zip(names, row.tolist(), strict=True)),
            float(score - baseline_score - row.sum()),
        )
        for score, row in zip(scores, attributions, strict=True)
    ]


def _calibrated(scorer: TabularScorer, logits: torch.Tensor) -> torch.Tensor:
    """The calibration's affine map on logits, differentiably (``TemperatureScaling.apply`` is numpy)."""
    calibration = scorer.calibration
    return (logits - calibration.offset) / calibration.temperature


def explain_by_permutations(
    scorer: TabularScorer, encoded: EncodedFeatures, permutations: int = PERMUTATIONS
) -> list[Explanation]:
    """Permutation Shapley attributions of each encoded row against the baseline row (see the module doc)."""
    base = baseline_row(scorer)
    n, n_num = len(encoded), encoded.numeric.shape[1]
    d = n_num + encoded.categorical.shape[1]
    rng = np.random.default_rng(0)  # the same row always gets the same explanation
    half = [rng.permutation(d) for _ in range(max(1, permutations // 2))]
    orders = np.array(half + [order[::-1] for order in half])  # [P, d]
    p = len(orders)
    # switched[q, k, j]: in order q after k steps, feature j holds the row's value (else the baseline's)
    rank = np.argsort(orders, axis=1)  # [P, d] the step at which each feature is switched
    switched = rank[:, None, :] < np.arange(d + 1)[None, :, None]  # [P, d+1, d]
    mask = np.broadcast_to(switched, (n, p, d + 1, d)).reshape(-1, d)  # [n*P*(d+1), d]
    points = n * p * (d + 1)
    rows = np.repeat(np.arange(n), p * (d + 1))
    numeric = np.where(mask[:, :n_num], encoded.numeric[rows], base.numeric).astype(np.float32)
    categorical = np.where(mask[:, n_num:], encoded.categorical[rows], base.categorical).astype(np.int64)
    assert numeric.shape[0] == points
    scores = scorer.predict_proba_encoded(EncodedFeatures(numeric=numeric, categorical=categorical))
    path = scores.reshape(n, p, d + 1)
    steps = np.diff(path, axis=2)  # [n, P, d]: the change at each step of each order
    credit = np.zeros((n, p, d))
    np.put_along_axis(credit, np.broadcast_to(orders[None], (n, p, d)), steps, axis=2)
    return _explanations(scorer, encoded, base, credit.mean(axis=1))  # [n, d]
