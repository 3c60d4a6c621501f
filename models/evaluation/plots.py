"""Evaluation plots written as PNG files.

Each function builds its own ``matplotlib.figure.Figure`` on an Agg canvas instead of using pyplot:
no global figure state, nothing to close, and safe from worker threads in a flow. Every function
creates the parent folder, writes one file and returns its path, so a task can log it as an artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

# Annotations only: models.evaluation re-exports its report, which draws these plots, so a runtime
# import here would be circular.
if TYPE_CHECKING:
    from models.evaluation.business import ProfitCurve
    from models.evaluation.calibration import Calibration
    from models.evaluation.diagnostics import FeatureImportance

_DPI = 110


def _new_axes(figsize: tuple[float, float] = (5.5, 5.0)) -> tuple[Figure, Axes]:
    """A figure bound to the Agg canvas with a single axes."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path | str) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=_DPI, format="png")
    return out


def plot_roc(y_true: np.ndarray, scores: dict[str, np.ndarray], path: Path | str) -> Path:
    """ROC curves of several models on one plot, each labelled with its AUC, so they compare at a glance."""
    fig, ax = _new_axes()
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(y_true, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC = {roc_auc_score(y_true, score):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
    ax.set(xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_pr(y_true: np.ndarray, scores: dict[str, np.ndarray], path: Path | str) -> Path:
    """Precision-recall curves of several models, labelled with average precision.

    The dashed line is the positive rate, the precision of a random ranking; PR curves show what ROC
    hides when positives are rare.
    """
    fig, ax = _new_axes()
    for name, score in scores.items():
        precision, recall, _ = precision_recall_curve(y_true, score)
        ap = average_precision_score(y_true, score)
        ax.step(recall, precision, where="post", label=f"{name} (AP = {ap:.3f})")
    base_rate = float(np.mean(y_true))
    ax.axhline(base_rate, linestyle="--", color="grey", linewidth=1, label=f"base rate = {base_rate:.3f}")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve")
    ax.set(xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left")
    return _save(fig, path)


def _gains_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of rows contacted and of positives captured at each tie-group end, from (0, 0).

    The same curve as ``models.evaluation.gains`` at full resolution (tied rows share a straight
    segment); computed here because that module cannot be imported at runtime (see above).
    """
    order = np.argsort(-score, kind="stable")
    s_sorted = score[order]
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    rows = np.r_[0, ends + 1] / y.size
    captured = np.r_[0.0, np.cumsum(y[order])[ends]] / max(float(y.sum()), 1.0)
    return rows, captured


def plot_gains(y_true: np.ndarray, scores: dict[str, np.ndarray], path: Path | str) -> Path:
    """Cumulative gains of several models: share of positives reached by contacting the top-scored rows.

    Each label gives the share captured by the top 10%; the dashed diagonal is a random order.
    """
    y = np.asarray(y_true, dtype=np.float64)
    fig, ax = _new_axes()
    for name, score in scores.items():
        share, captured = _gains_points(y, np.asarray(score, dtype=np.float64))
        top10 = float(np.interp(0.1, share, captured))
        ax.plot(share, captured, label=f"{name} (top 10% = {top10:.1%})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="random")
    ax.set(
        xlabel="Share of rows contacted (highest scores first)",
        ylabel="Share of positives captured",
        title="Cumulative gains",
    )
    ax.set(xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_profit(curve_by_name: dict[str, ProfitCurve], threshold: float, path: Path | str) -> Path:
    """Profit against the threshold for several models, best point marked, saved threshold as a line.

    A curve is a step function: between two listed thresholds the profit is that of the higher one.
    """
    fig, ax = _new_axes((6.0, 4.5))
    currency = ""
    for name, curve in curve_by_name.items():
        x, profit = list(curve.thresholds), list(curve.profit)
        if x[0] > 0.0:  # below the lowest score every row is eligible: same as the first point
            x, profit = [0.0, *x], [profit[0], *profit]
        (line,) = ax.step(
            x,
            profit,
            where="pre",
            label=f"{name} (best {curve.best_profit:,.0f} at {curve.best_threshold:.3f})",
        )
        ax.plot([curve.best_threshold], [curve.best_profit], marker="o", color=line.get_color())
        currency = curve.currency
    ax.axvline(threshold, linestyle="--", color="grey", linewidth=1, label=f"saved threshold = {threshold:g}")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set(
        xlabel="Threshold (contact when score >= threshold)",
        ylabel=f"Profit ({currency})" if currency else "Profit",
        title="Profit by threshold",
        xlim=(0, 1),
    )
    ax.legend(loc="best")
    return _save(fig, path)


def _reliability(ax: Axes, cal: Calibration, label: str, **style: object) -> None:
    points = [
        (m, f)
        for m, f in zip(cal.mean_predicted, cal.fraction_positive, strict=True)
        if m is not None and f is not None
    ]
    if points:
        mean_pred, frac_pos = zip(*points, strict=True)
        ax.plot(mean_pred, frac_pos, marker="o", label=f"{label} (ECE = {cal.ece:.3f})", **style)


def plot_calibration(cal: Calibration, path: Path | str, *, before: Calibration | None = None) -> Path:
    """Reliability diagram with the ECE in the title and bin counts underneath; empty bins are skipped.

    With ``before`` (the network's own probabilities), both curves are drawn: what calibration changed.
    """
    fig = Figure(figsize=(5.5, 6.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax, ax_counts = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    if before is not None:
        _reliability(ax, before, "before calibration", linestyle=":", alpha=0.7)
    _reliability(ax, cal, "calibrated" if before is not None else "model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    ax.set(ylabel="Fraction positive", title=f"Calibration (ECE = {cal.ece:.3f})", ylim=(0, 1.01))
    ax.legend(loc="upper left")
    edges = np.asarray(cal.bin_edges)
    ax_counts.bar(edges[:-1], cal.counts, width=np.diff(edges), align="edge", edgecolor="white")
    ax_counts.set(xlabel="Mean predicted probability", ylabel="Count", xlim=(0, 1))
    return _save(fig, path)


def plot_confusion(y_true: np.ndarray, y_score: np.ndarray, threshold: float, path: Path | str) -> Path:
    """Confusion matrix at ``threshold`` (positive when ``score >= threshold``) with counts in the cells."""
    y = np.asarray(y_true).astype(bool)
    predicted = np.asarray(y_score) >= threshold
    matrix = np.array(
        [
            [np.sum(~y & ~predicted), np.sum(~y & predicted)],
            [np.sum(y & ~predicted), np.sum(y & predicted)],
        ]
    )
    fig, ax = _new_axes((4.8, 4.2))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    brightest = matrix.max()
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > brightest / 2 else "black"
        ax.text(col, row, f"{count:d}", ha="center", va="center", color=color)
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["0", "1"], yticklabels=["0", "1"])
    ax.set(xlabel="Predicted", ylabel="Actual", title=f"Confusion matrix (threshold = {threshold:g})")
    return _save(fig, path)


def plot_importance(importances: list[FeatureImportance], path: Path | str, top: int = 20) -> Path:
    """Horizontal bars of the ``top`` permutation importances with their std as error bars."""
    shown = sorted(importances, key=lambda fi: fi.importance, reverse=True)[:top]
    fig, ax = _new_axes((6.0, max(2.5, 0.35 * len(shown) + 1.2)))
    positions = np.arange(len(shown))
    ax.barh(
        positions,
        [fi.importance for fi in shown],
        xerr=[fi.std for fi in shown],
        color="tab:blue",
        ecolor="black",
        capsize=3,
    )
    ax.set_yticks(positions, [fi.feature for fi in shown])
    ax.invert_yaxis()  # most important on top
    ax.axvline(0.0, color="grey", linewidth=1)
    ax.set(xlabel="Drop in ROC AUC when shuffled", title="Permutation importance")
    return _save(fig, path)
