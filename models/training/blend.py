"""Whether to blend the network with gradient-boosted trees, and with which weights: decided on held-out rows.

The inputs are held-out predictions of each model, rows none of them was fitted on: on a cross-validated
table the out-of-fold predictions (each row scored by the fold models that did not see it), otherwise the
validation split scored by models fitted on the training split. The blend is a logistic regression on those
predictions (the network's logit and each tree model's margin, all log-odds) with non-negative weights and
an intercept (stacking, Wolpert 1992; non-negative weights as Breiman 1996 recommends, so no model enters
with its sign flipped): ``sigmoid(w_net * logit_net + sum_k w_k * margin_k + b)``.

Is the blend better than the network alone? Its weights are fitted on the same held-out rows it would be
judged on, so it is judged on cross-fitted predictions instead: the held-out rows are split into folds
(the cross-validation's folds, or ``STACK_FOLDS`` stratified folds of the validation split) and each
fold's rows are blended with weights fitted on the other folds. The difference in ROC AUC between those
predictions and the network's own, with a paired-bootstrap interval, decides under ``model.ensemble:
auto`` (blend when it exceeds ``model.ensemble_margin``); ``always`` and ``off`` decide by themselves.
The weights of the saved blend are then fitted on all the held-out rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize
from sklearn.metrics import roc_auc_score

from models.artifact.blend import TreeKind
from models.data.split import stratified_folds
from models.evaluation.bootstrap import PairedComparison, confidence_percent, paired_bootstrap_auc

EnsembleMode = Literal["auto", "off", "always"]
NETWORK = "network"
STACK_FOLDS = 5  # folds of the validation split for the cross-fitted comparison (no cross-validation)
L2 = 1e-4  # ridge on the weights, per row: keeps the fit defined when two members are nearly collinear


@dataclass(frozen=True)
class BlendWeights:
    """Non-negative weights per input (the network first), and the intercept."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float

    def apply(self, inputs: np.ndarray) -> np.ndarray:
        """Blended logits of ``inputs`` [n, len(names)] (log-odds of each model)."""
        return inputs @ np.asarray(self.weights) + self.intercept

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.names, self.weights, strict=True))


def tree_kind(name: str) -> TreeKind:
    """The tree library of a blended baseline: its name (`models.training.baselines`)."""
    if name not in ("catboost", "lightgbm"):
        raise ValueError(f"{name} is not a gradient-boosted tree baseline that can be blended")
    return name  # type: ignore[return-value]


def stack_folds(y: np.ndarray, seed: int) -> np.ndarray:
    """``STACK_FOLDS`` stratified folds of the validation rows, for the cross-fitted blend."""
    return stratified_folds(y, STACK_FOLDS, seed)


def fit_weights(inputs: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> BlendWeights:
    """Non-negative logistic regression of ``y`` on ``inputs`` [n, m] (L-BFGS-B with bounds; convex)."""
    x = np.asarray(inputs, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    n, m = x.shape

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:m], theta[m]
        z = x @ w + b
        # log(1 + e^z) - t z, stably; its gradient is (sigmoid(z) - t)
        value = np.logaddexp(0.0, z) - t * z
        residual = 0.5 * (1.0 + np.tanh(0.5 * z)) - t
        grad = np.append(x.T @ residual / n + 2 * L2 * w, residual.mean())
        return float(value.mean() + L2 * w @ w), grad

    start = np.append(np.full(m, 1.0 / m), 0.0)
    bounds = [(0.0, None)] * m + [(None, None)]
    fitted = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return BlendWeights(names, tuple(float(w) for w in fitted.x[:m]), float(fitted.x[m]))


def cross_fitted(
    inputs: np.ndarray, y: np.ndarray, fold_of_row: np.ndarray, names: tuple[str, ...]
) -> np.ndarray:
    """Each row's blended logit from weights fitted on the other folds' rows."""
    out = np.empty(len(y), dtype=np.float64)
    for fold in np.unique(fold_of_row):
        held = fold_of_row == fold
        out[held] = fit_weights(inputs[~held], y[~held], names).apply(inputs[held])
    return out


@dataclass(frozen=True)
class BlendChoice:
    """What the held-out rows said about blending, and what was decided."""

    mode: EnsembleMode
    blended: bool
    holdout: str  # which rows, in words
    rows: int
    network_auc: float
    blend_auc: float  # cross-fitted
    difference: PairedComparison  # blend (cross-fitted) - network, paired bootstrap on the held-out rows
    margin: float
    weights: BlendWeights  # fitted on all the held-out rows
    reason: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["weights"] = self.weights.as_dict() | {"intercept": self.weights.intercept}
        return data

    def flat_metrics(self) -> dict[str, float]:
        d = self.difference
        out = {
            "blend/chosen": float(self.blended),
            "blend/network_auc": self.network_auc,
            "blend/auc": self.blend_auc,
            "blend/auc_diff": d.diff,
            "blend/auc_diff_low": d.low,
            "blend/auc_diff_high": d.high,
        }
        return out | {f"blend/weight/{name}": w for name, w in self.weights.as_dict().items()}

    def summary(self) -> str:
        """One line: what the candidate is, and the held-out evidence."""
        gain = f"{self.blend_auc - self.network_auc:+.4f} held-out ROC AUC over the network alone"
        if self.blended:
            weights = ", ".join(f"{name} {w:.2f}" for name, w in self.weights.as_dict().items())
            return f"a blend ({weights}): {gain}"
        return f"the network alone: a blend would add {gain.replace(' over the network alone', '')} ({self.reason})"

    def markdown(self) -> str:
        d, level = self.difference, confidence_percent(self.difference.confidence)
        weights = ", ".join(f"{name} {w:.3f}" for name, w in self.weights.as_dict().items())
        return "\n".join(
            [
                f"### Ensemble ({self.rows:,} {self.holdout}; model.ensemble: {self.mode})",
                "",
                f"| held-out ROC AUC | network alone | blend (cross-fitted) | difference | {level} CI |",
                "|---|---|---|---|---|",
                f"| | {self.network_auc:.4f} | {self.blend_auc:.4f} | {d.diff:+.4f} | {d.low:+.4f} – {d.high:+.4f} |",
                "",
                f"Blend weights on each model's log-odds: {weights}, intercept {self.weights.intercept:+.3f}.",
                f"**{'The candidate is the blend' if self.blended else 'The candidate is the network alone'}**: "
                f"{self.reason}.",
            ]
        )


def choose_blend(
    network_logits: np.ndarray,
    member_margins: dict[str, np.ndarray],
    y: np.ndarray,
    *,
    fold_of_row: np.ndarray | None,
    holdout: str,
    mode: EnsembleMode,
    margin: float,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> tuple[BlendChoice, np.ndarray]:
    """Cross-fit the blend on the held-out predictions, compare it with the network's, decide by ``mode``;
    the choice and the cross-fitted blended logits [rows] (what a blend is calibrated on).

    ``fold_of_row`` is the cross-validation's fold of each held-out row; None (validation rows) draws
    ``STACK_FOLDS`` stratified folds with ``seed``.
    """
    y = np.asarray(y)
    names = (NETWORK, *member_margins)
    inputs = np.column_stack([network_logits, *member_margins.values()]).astype(np.float64)
    folds = fold_of_row if fold_of_row is not None else stack_folds(y, seed)
    blended_oof = cross_fitted(inputs, y, np.asarray(folds), names)
    network_auc = float(roc_auc_score(y, network_logits))
    blend_auc = float(roc_auc_score(y, blended_oof))
    difference = paired_bootstrap_auc(  # on probabilities, as it checks: the same ranks as the logits
        y,
        _sigmoid(blended_oof),
        _sigmoid(np.asarray(network_logits, dtype=np.float64)),
        n_resamples=n_resamples,
        seed=seed,
        confidence=confidence,
    )
    weights = fit_weights(inputs, y, names)
    gain = blend_auc - network_auc
    if mode == "always":
        blended, reason = True, "model.ensemble is always"
    elif mode == "off":
        blended, reason = False, "model.ensemble is off"
    elif gain > margin:
        blended, reason = (
            True,
            f"its held-out AUC is {gain:+.4f} over the network's, above the {margin:g} margin",
        )
    else:
        blended, reason = (
            False,
            f"its held-out AUC is {gain:+.4f} over the network's, not above the {margin:g} margin",
        )
    if blended and weights.as_dict()[NETWORK] == 0.0:
        reason += " (the fitted weights leave the network out: the trees carry the blend)"
    choice = BlendChoice(
        mode, blended, holdout, len(y), network_auc, blend_auc, difference, margin, weights, reason
    )
    return choice, blended_oof


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))
