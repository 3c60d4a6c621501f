"""The evaluation report of a trained model on the untouched test split, against baselines and champion.

``evaluate_model`` gathers every metric of this package into one ``EvaluationReport`` and draws its
plots; the Prefect task in ``tasks/evaluate.py`` only wraps it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.artifact.scorer import TabularScorer
from models.data.config import LeakageConfig
from models.data.leakage import LeakageReport, importance_shares, leakage_report, single_feature_auc
from models.evaluation.bootstrap import (
    MetricInterval,
    PairedComparison,
    bootstrap_metrics,
    confidence_percent,
    paired_bootstrap_auc,
)
from models.evaluation.business import BusinessReport, business_report, profit_curve
from models.evaluation.calibration import Calibration, calibration
from models.evaluation.config import BusinessConfig, EvaluationConfig
from models.evaluation.diagnostics import (
    FeatureImportance,
    RobustnessResult,
    SliceMetric,
    permutation_importance,
    robustness,
    slice_metrics,
)
from models.evaluation.plots import (
    plot_calibration,
    plot_confusion,
    plot_gains,
    plot_importance,
    plot_pr,
    plot_profit,
    plot_roc,
)
from models.features.config import FeatureConfig
from models.seeds import Seeds
from models.training.baselines import Baseline


@dataclass(frozen=True)
class ChampionModel:
    """The registered champion the challenger is compared with."""

    version: str  # registry version, shown as ``v{version}``
    scorer: TabularScorer


@dataclass(frozen=True)
class HeldOut:
    """Out-of-fold scores of a cross-validation: more held-out rows for the baseline comparison.

    Each train+validation row was scored by the fold model (and fold baselines) that did not see it;
    pooled with the test split, the paired comparison rests on every row of the table instead of the
    test split alone, which on a small table is too few rows to tell a 0.005 AUC margin from noise.
    """

    y: np.ndarray  # [m] labels of train+validation
    scores: np.ndarray  # [m] out-of-fold scores of the chosen configuration's fold models
    baseline_scores: dict[str, np.ndarray]  # name -> [m] out-of-fold scores of the fold baselines
    fold_of_row: np.ndarray  # [m] fold number of each row
    folds: int

    def compare(
        self, y_test: np.ndarray, scores: np.ndarray, baseline_scores: dict[str, np.ndarray], **boot: Any
    ) -> dict[str, PairedComparison]:
        """Paired bootstrap per baseline over folds and test, each a group (no cross-model ranking)."""
        groups = np.concatenate([self.fold_of_row, np.full(len(y_test), self.folds)])
        y = np.concatenate([self.y, y_test])
        return {
            name: paired_bootstrap_auc(
                y,
                np.concatenate([self.scores, scores]),
                np.concatenate([self.baseline_scores[name], test_scores]),
                groups=groups,
                **boot,
            )
            for name, test_scores in baseline_scores.items()
            if name in self.baseline_scores
        }

    def describe(self, test_rows: int) -> str:
        return (
            f"{len(self.y) + test_rows:,} held-out rows: {len(self.y):,} out-of-fold rows of the "
            f"{self.folds}-fold cross-validation and the {test_rows:,} test rows"
        )


@dataclass(frozen=True)
class LeakageCheck:
    """What the evaluation's leakage check reads: the training rows (where a leak would have been learned),
    their 0/1 labels, the limits and the confirmed features."""

    train: pd.DataFrame
    y_train: np.ndarray
    config: LeakageConfig
    target: str


@dataclass(frozen=True)
class BaselineScore:
    """The strongest baseline by test ROC AUC: the bar a challenger has to clear."""

    name: str
    roc_auc: MetricInterval


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
    calibration_before: Calibration | None = None  # the network's own probabilities, before calibration
    threshold: float = 0.5  # the decision threshold the threshold metrics (F1, ...) are computed at
    business: BusinessReport | None = None
    # Per baseline, the paired AUC difference the promotion's non-inferiority check reads: on the test
    # split, or (cross-validated tables) on every held-out row: the folds' out-of-fold rows and the test split.
    non_inferiority: dict[str, PairedComparison] = field(default_factory=dict)
    non_inferiority_rows: str = ""  # which rows, in words
    leakage: LeakageReport | None = None  # one-feature AUCs and importance shares, held to the leakage limits
    baseline_fit_seconds: dict[str, float] = field(default_factory=dict)  # name -> wall time of its fit

    @property
    def best_baseline(self) -> BaselineScore:
        """The baseline with the highest test ROC AUC; raises ValueError when there are none."""
        if not self.baselines:
            raise ValueError("the report has no baselines")
        name = max(self.baselines, key=lambda n: self.baselines[n]["roc_auc"].value)
        return BaselineScore(name=name, roc_auc=self.baselines[name]["roc_auc"])

    def flat_metrics(self) -> dict[str, float]:
        """``test/roc_auc``, ``test/roc_auc_low`` ... for MLflow."""
        out: dict[str, float] = {}
        for key, m in self.metrics.items():
            out |= {f"test/{key}": m.value, f"test/{key}_low": m.low, f"test/{key}_high": m.high}
        for name, metrics in self.baselines.items():
            auc = metrics["roc_auc"]
            out |= {
                f"baseline/{name}/roc_auc": auc.value,
                f"baseline/{name}/roc_auc_low": auc.low,
                f"baseline/{name}/roc_auc_high": auc.high,
            }
            if name in self.baseline_fit_seconds:
                out[f"baseline/{name}/fit_seconds"] = self.baseline_fit_seconds[name]
        for name, cmp in self.vs_baselines.items():
            out |= {
                f"vs_baseline/{name}/auc_diff": cmp.diff,
                f"vs_baseline/{name}/auc_diff_low": cmp.low,
                f"vs_baseline/{name}/auc_diff_high": cmp.high,
            }
        for name, cmp in self.non_inferiority.items():
            out |= {
                f"non_inferiority/{name}/auc_diff": cmp.diff,
                f"non_inferiority/{name}/auc_diff_low": cmp.low,
            }
        out["test/ece"] = self.calibration.ece
        if self.calibration_before is not None:
            out["test/ece_before_calibration"] = self.calibration_before.ece
        if self.business is not None:
            out |= self.business.flat_metrics()
        if self.vs_champion is not None:
            out["champion/auc_diff"] = self.vs_champion.diff
        if self.leakage is not None:
            out["leakage/flagged_features"] = float(len(self.leakage.flagged))
            out["leakage/max_single_feature_auc"] = max((f.auc for f in self.leakage.features), default=0.5)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging; plot paths become strings."""
        data = asdict(self)
        data["plots"] = [str(p) for p in self.plots]
        data["business"] = self.business.to_dict() if self.business is not None else None
        return data

    def markdown(self) -> str:
        """Tables of the test metrics and the paired comparisons, then one line per diagnostic."""
        m = self.metrics
        level = confidence_percent(m["roc_auc"].confidence)
        comparisons = [*self.vs_baselines.values(), *([self.vs_champion] if self.vs_champion else [])]
        # Every comparison is computed with the metrics' confidence; the fallback only serves the
        # table that lists no comparison at all.
        cmp_level = confidence_percent(comparisons[0].confidence) if comparisons else level
        lines = [
            f"### Test metrics ({self.test_rows:,} rows, {level} bootstrap intervals)",
            "",
            f"| metric | value | {level} CI |",
            "|---|---|---|",
            *[f"| {k} | {v.value:.4f} | {v.low:.4f} – {v.high:.4f} |" for k, v in m.items()],
            "",
            "### Comparison (paired bootstrap of the ROC AUC difference)",
            "",
            f"| against | their AUC | {level} CI | fit time | difference | {cmp_level} CI | p-value |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, cmp in self.vs_baselines.items():
            auc = self.baselines[name]["roc_auc"]
            fit = self.baseline_fit_seconds.get(name)
            lines.append(
                f"| baseline {name} | {auc.value:.4f} | {auc.low:.4f} – {auc.high:.4f} | "
                f"{'' if fit is None else f'{fit:.1f} s'} | {cmp.diff:+.4f} | {cmp.low:+.4f} – {cmp.high:+.4f} | "
                f"{cmp.p_value:.3f} |"
            )
        if self.vs_champion is not None and self.champion_auc is not None:
            c, auc = self.vs_champion, self.champion_auc
            lines.append(
                f"| champion v{self.champion_version} | {auc.value:.4f} | {auc.low:.4f} – {auc.high:.4f} | | "
                f"{c.diff:+.4f} | {c.low:+.4f} – {c.high:+.4f} | {c.p_value:.3f} |"
            )
        elif self.champion_version is None:
            lines.append("| champion | none yet | | | | | |")
        if self.non_inferiority and self.non_inferiority != self.vs_baselines:
            lines += [
                "",
                f"Baseline comparison the promotion policy reads (paired bootstrap on {self.non_inferiority_rows}):",
                "",
                f"| against | difference | {cmp_level} CI |",
                "|---|---|---|",
                *[
                    f"| baseline {name} | {c.diff:+.4f} | {c.low:+.4f} – {c.high:+.4f} |"
                    for name, c in self.non_inferiority.items()
                ],
            ]
        before = (
            f" ({self.calibration_before.ece:.4f} before temperature scaling)"
            if self.calibration_before is not None
            else ""
        )
        lines += [
            "",
            f"Calibration: expected calibration error {self.calibration.ece:.4f}{before}. "
            f"Threshold metrics at the decision threshold {self.threshold:.4f}.",
        ]
        if self.robustness:
            worst = min(self.robustness, key=lambda r: r.delta)
            lines.append(
                f"Robustness: worst AUC change {worst.delta:+.4f} under {worst.perturbation} at {worst.level}."
            )
        if self.importance:
            top = ", ".join(f"{i.feature} ({i.importance:.3f})" for i in self.importance[:5])
            lines.append(f"Top features by permutation importance: {top}.")
        if self.leakage is not None:
            lines += ["", self.leakage.markdown()]
        if self.business is not None:
            lines += ["", self.business.markdown()]
        return "\n".join(lines)


def _subsample(
    df: pd.DataFrame, y: np.ndarray, rows: int | None, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """At most ``rows`` rows drawn without replacement, in their original order (all when ``None``)."""
    if rows is None or len(df) <= rows:
        return df, y
    idx = np.sort(np.random.default_rng(seed).choice(len(df), size=rows, replace=False))
    return df.iloc[idx].reset_index(drop=True), y[idx]


def evaluate_model(
    scorer: TabularScorer,
    test: pd.DataFrame,
    y_test: np.ndarray,
    baselines: list[Baseline],
    champion: ChampionModel | None,
    *,
    features: FeatureConfig,
    config: EvaluationConfig,
    seeds: Seeds,
    plots_dir: Path,
    business: BusinessConfig | None = None,
    held_out: HeldOut | None = None,
    leakage: LeakageCheck | None = None,
) -> EvaluationReport:
    """Metrics with intervals, paired comparisons, calibration, slices, robustness, importance, plots, and
    (given ``leakage``) possible target leakage.

    Slices are the categorical columns of ``features``; robustness perturbs and importance shuffles
    every listed column. Every bootstrap uses ``seeds.bootstrap``, so the model, the baselines and the champion are scored
    on the same resamples. Robustness and permutation importance, which rescore the model many times,
    run on at most ``config.max_eval_rows`` test rows drawn with ``seeds.diagnostics``. The plots are
    written under ``plots_dir`` and their paths listed in the report. The leakage check holds each feature's
    one-feature AUC on the training rows (folds drawn with ``seeds.leakage``) and its share of the
    permutation importance to the limits of ``leakage.config``.
    """
    scores = scorer.predict_proba(test)
    threshold = scorer.decision.threshold if scorer.decision is not None else config.threshold
    boot = dict(n_resamples=config.n_bootstrap, seed=seeds.bootstrap, confidence=config.confidence)
    metrics = bootstrap_metrics(y_test, scores, threshold=threshold, **boot)
    baseline_scores = {b.name: b.predict_proba(test) for b in baselines}
    baseline_metrics = {
        name: bootstrap_metrics(y_test, s, threshold=threshold, **boot) for name, s in baseline_scores.items()
    }
    vs_baselines = {
        name: paired_bootstrap_auc(y_test, scores, s, **boot) for name, s in baseline_scores.items()
    }
    non_inferiority, evidence_rows = dict(vs_baselines), f"the {len(test):,} test rows"
    if held_out is not None:
        non_inferiority = held_out.compare(y_test, scores, baseline_scores, **boot)
        evidence_rows = held_out.describe(len(test))
    vs_champion = champion_auc = champion_scores = None
    if champion is not None:
        try:
            champion_scores = champion.scorer.predict_proba(test)
        except ValueError:
            champion_scores = None  # the champion's features are not in this data
        if champion_scores is not None:
            vs_champion = paired_bootstrap_auc(y_test, scores, champion_scores, **boot)
            champion_auc = bootstrap_metrics(y_test, champion_scores, threshold=threshold, **boot)["roc_auc"]
    categorical, numeric = features.categorical, features.numeric
    cal = calibration(y_test, scores)
    cal_before = calibration(y_test, scorer.predict_proba(test, calibrated=False))
    business_value = None
    if business is not None:
        champion_rule = champion.scorer.decision if champion is not None else None
        business_value = business_report(
            y_test,
            scores,
            business,
            threshold=threshold,
            champion_scores=champion_scores,
            champion_threshold=champion_rule.threshold if champion_rule is not None else None,
            n_resamples=config.n_bootstrap,
            seed=seeds.business,
            confidence=config.confidence,
        )
    slices = (
        slice_metrics(test[categorical], y_test, scores, min_count=config.slice_min_count)
        if categorical
        else []
    )
    diag_x, diag_y = _subsample(test, y_test, config.max_eval_rows, seeds.diagnostics)
    robust = robustness(
        scorer.predict_proba, diag_x, diag_y, numeric=numeric, categorical=categorical, seed=seeds.robustness
    )
    importance = permutation_importance(
        scorer.predict_proba,
        diag_x,
        diag_y,
        columns=numeric + categorical,
        n_repeats=config.importance_repeats,
        seed=seeds.importance,
    )
    leakage_found = None
    if leakage is not None:
        aucs, rows = single_feature_auc(
            leakage.train,
            leakage.y_train,
            numeric=numeric,
            categorical=categorical,
            folds=leakage.config.folds,
            max_rows=leakage.config.max_rows,
            seed=seeds.leakage,
        )
        shares = importance_shares({i.feature: i.importance for i in importance})
        leakage_found = leakage_report(aucs, leakage.config, target=leakage.target, rows=rows, shares=shares)
    plots = [
        plot_roc(y_test, {"model": scores, **baseline_scores}, plots_dir / "roc.png"),
        plot_pr(y_test, {"model": scores, **baseline_scores}, plots_dir / "pr.png"),
        plot_calibration(cal, plots_dir / "calibration.png", before=cal_before),
        plot_confusion(y_test, scores, threshold, plots_dir / "confusion.png"),
        plot_importance(importance, plots_dir / "importance.png"),
        plot_gains(y_test, {"model": scores, **baseline_scores}, plots_dir / "gains.png"),
    ]
    if business is not None:
        curves = {"model": profit_curve(y_test, scores, business)}
        if champion_scores is not None:
            curves[f"champion v{champion.version}"] = profit_curve(y_test, champion_scores, business)
        plots.append(plot_profit(curves, threshold, plots_dir / "profit.png"))
    return EvaluationReport(
        metrics=metrics,
        baselines=baseline_metrics,
        vs_baselines=vs_baselines,
        vs_champion=vs_champion,
        champion_version=champion.version if champion is not None else None,
        champion_auc=champion_auc,
        calibration=cal,
        slices=slices,
        robustness=robust,
        importance=importance,
        test_rows=len(test),
        plots=plots,
        calibration_before=cal_before,
        threshold=threshold,
        business=business_value,
        non_inferiority=non_inferiority,
        non_inferiority_rows=evidence_rows,
        leakage=leakage_found,
        baseline_fit_seconds={b.name: b.fit_seconds for b in baselines},
    )
