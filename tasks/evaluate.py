"""Evaluation of the chosen model on the untouched test split, against baselines and champion."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from models.baselines import Baseline
from models.evaluation import (
    Calibration,
    FeatureImportance,
    MetricInterval,
    PairedComparison,
    RobustnessResult,
    SliceMetric,
    bootstrap_metrics,
    calibration,
    paired_bootstrap_auc,
    permutation_importance,
    robustness,
    slice_metrics,
)
from models.params import EvaluationConfig
from models.plots import plot_calibration, plot_confusion, plot_importance, plot_pr, plot_roc
from models.scorer import TabularScorer
from tasks.caching import ONCE_PER_RUN, REPLAYABLE


@dataclass
class EvaluationReport:
    """Everything the promotion decision and the approver look at."""

    metrics: dict[str, MetricInterval]
    baselines: dict[str, dict[str, MetricInterval]]
    vs_baselines: dict[str, PairedComparison]
    vs_champion: PairedComparison | None
    champion_version: str | None
    champion_auc: MetricInterval | None
    calibration: Calibration
    slices: list[SliceMetric]
    robustness: list[RobustnessResult]
    importance: list[FeatureImportance]
    test_rows: int
    plots: list[Path] = field(default_factory=list)

    @property
    def best_baseline(self) -> tuple[str, float]:
        name = max(self.baselines, key=lambda n: self.baselines[n]["roc_auc"].value)
        return name, self.baselines[name]["roc_auc"].value

    def flat_metrics(self) -> dict[str, float]:
        """``test/roc_auc``, ``test/roc_auc_low`` ... for MLflow."""
        out: dict[str, float] = {}
        for key, m in self.metrics.items():
            out |= {f"test/{key}": m.value, f"test/{key}_low": m.low, f"test/{key}_high": m.high}
        for name, metrics in self.baselines.items():
            out[f"baseline/{name}/roc_auc"] = metrics["roc_auc"].value
        out["test/ece"] = self.calibration.ece
        if self.vs_champion is not None:
            out["champion/auc_diff"] = self.vs_champion.diff
        return out

    def to_dict(self) -> dict:
        data = asdict(self)
        data["plots"] = [str(p) for p in self.plots]
        return data

    def markdown(self) -> str:
        m = self.metrics
        lines = [
            f"### Test metrics ({self.test_rows:,} rows, 95% bootstrap intervals)",
            "",
            "| metric | value | 95% CI |",
            "|---|---|---|",
            *[f"| {k} | {v.value:.4f} | {v.low:.4f} – {v.high:.4f} |" for k, v in m.items()],
            "",
            "### Comparison (paired bootstrap of the ROC AUC difference)",
            "",
            "| against | their AUC | difference | 95% CI | p-value |",
            "|---|---|---|---|---|",
        ]
        for name, cmp in self.vs_baselines.items():
            auc = self.baselines[name]["roc_auc"].value
            lines.append(
                f"| baseline {name} | {auc:.4f} | {cmp.diff:+.4f} | {cmp.low:+.4f} – {cmp.high:+.4f} | {cmp.p_value:.3f} |"
            )
        if self.vs_champion is not None and self.champion_auc is not None:
            c = self.vs_champion
            lines.append(
                f"| champion v{self.champion_version} | {self.champion_auc.value:.4f} | {c.diff:+.4f} | "
                f"{c.low:+.4f} – {c.high:+.4f} | {c.p_value:.3f} |"
            )
        elif self.champion_version is None:
            lines.append("| champion | none yet | | | |")
        lines += ["", f"Calibration: expected calibration error {self.calibration.ece:.4f}."]
        if self.robustness:
            worst = min(self.robustness, key=lambda r: r.delta)
            lines.append(
                f"Robustness: worst AUC change {worst.delta:+.4f} under {worst.perturbation} at {worst.level}."
            )
        if self.importance:
            top = ", ".join(f"{i.feature} ({i.importance:.3f})" for i in self.importance[:5])
            lines.append(f"Top features by permutation importance: {top}.")
        return "\n".join(lines)


def _subsample(
    df: pd.DataFrame, y: np.ndarray, rows: int | None, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    if rows is None or len(df) <= rows:
        return df, y
    idx = np.sort(np.random.default_rng(seed).choice(len(df), size=rows, replace=False))
    return df.iloc[idx].reset_index(drop=True), y[idx]


@task(name="evaluate-model", cache_policy=ONCE_PER_RUN, **REPLAYABLE)
def evaluate(
    scorer: TabularScorer,
    test: pd.DataFrame,
    y_test: np.ndarray,
    baselines: list[Baseline],
    champion: tuple[str, TabularScorer] | None,
    *,
    categorical: list[str],
    numeric: list[str],
    config: EvaluationConfig,
    seed: int,
    plots_dir: Path,
) -> EvaluationReport:
    """Metrics with intervals, paired comparisons, calibration, slices, robustness, importance, plots."""
    scores = scorer.predict_proba(test)
    boot = dict(n_resamples=config.n_bootstrap, seed=seed, confidence=config.confidence)
    metrics = bootstrap_metrics(y_test, scores, threshold=config.threshold, **boot)
    baseline_scores = {b.name: b.predict_proba(test) for b in baselines}
    baseline_metrics = {
        name: bootstrap_metrics(y_test, s, threshold=config.threshold, **boot)
        for name, s in baseline_scores.items()
    }
    vs_baselines = {
        name: paired_bootstrap_auc(y_test, scores, s, **boot) for name, s in baseline_scores.items()
    }
    vs_champion = champion_auc = None
    champion_version = None
    if champion is not None:
        champion_version, champion_scorer = champion
        try:
            champion_scores = champion_scorer.predict_proba(test)
        except ValueError:
            champion_scores = None  # the champion's features are not in this data
        if champion_scores is not None:
            vs_champion = paired_bootstrap_auc(y_test, scores, champion_scores, **boot)
            champion_auc = bootstrap_metrics(y_test, champion_scores, threshold=config.threshold, **boot)[
                "roc_auc"
            ]
    cal = calibration(y_test, scores)
    slices = (
        slice_metrics(test[categorical], y_test, scores, min_count=config.slice_min_count)
        if categorical
        else []
    )
    diag_x, diag_y = _subsample(test, y_test, config.max_eval_rows, seed)
    robust = robustness(
        scorer.predict_proba, diag_x, diag_y, numeric=numeric, categorical=categorical, seed=seed
    )
    importance = permutation_importance(
        scorer.predict_proba,
        diag_x,
        diag_y,
        columns=numeric + categorical,
        n_repeats=config.importance_repeats,
        seed=seed,
    )
    plots = [
        plot_roc(y_test, {"model": scores, **baseline_scores}, plots_dir / "roc.png"),
        plot_pr(y_test, {"model": scores, **baseline_scores}, plots_dir / "pr.png"),
        plot_calibration(cal, plots_dir / "calibration.png"),
        plot_confusion(y_test, scores, config.threshold, plots_dir / "confusion.png"),
        plot_importance(importance, plots_dir / "importance.png"),
    ]
    return EvaluationReport(
        metrics=metrics,
        baselines=baseline_metrics,
        vs_baselines=vs_baselines,
        vs_champion=vs_champion,
        champion_version=champion_version,
        champion_auc=champion_auc,
        calibration=cal,
        slices=slices,
        robustness=robust,
        importance=importance,
        test_rows=len(test),
        plots=plots,
    )
