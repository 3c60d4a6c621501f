"""Cross-validation of the sweep's best configurations and of the baselines, on the same stratified folds.

How it meets ASHA: the sweep screens configurations on the one train/validation split, where ASHA's
per-epoch early stopping is cheap and well defined; this module then re-evaluates only the sweep's top few
configurations with K folds over train+validation. Folds inside every trial would make each ASHA rung cost K
fits and each checkpoint K models, for trials ASHA mostly stops anyway. On a small table the one validation
split is noisy: the fold mean is the better basis for choosing among the finalists and for comparing with
the baselines, which are fitted and scored on exactly the same folds (like for like).

The chosen configuration's K fold models become the final model (`FoldEnsemble`): each was trained on
K-1 folds and early-stopped on the last, together they have seen every train+validation row, and their
out-of-fold logits are honest held-out scores for calibration and the decision threshold. The test split is
never touched here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from models.artifact.blend import TreeModel
from models.artifact.scorer import TabularScorer
from models.data.split import stratified_folds
from models.features.transform import EncodedFeatures, FeatureTransform
from models.nn.config import ModelConfig
from models.nn.network import FoldEnsemble, TabularNet
from models.training.baselines import BASELINES, fit_baselines_encoded
from models.training.fit import train_model


@dataclass(frozen=True)
class FoldScores:
    """ROC AUC (or an AUC difference) per fold, their mean and a t-interval of the mean."""

    per_fold: list[float]
    mean: float
    low: float
    high: float
    confidence: float


def fold_interval(values: list[float], confidence: float) -> FoldScores:
    """Mean of per-fold values with a Student-t interval (K-1 degrees of freedom)."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return FoldScores([float(v) for v in x], mean, mean - half, mean + half, confidence)


@dataclass(frozen=True)
class Candidate:
    """A configuration to cross-validate: a sweep trial's sampled parameters and training seed."""

    trial_id: str
    params: dict[str, Any]
    seed: int


@dataclass(frozen=True)
class CandidateScore:
    """A candidate's fold AUCs, and its per-fold AUC difference to the best baseline's."""

    trial_id: str
    params: dict[str, Any]
    roc_auc: FoldScores
    vs_best_baseline: FoldScores


@dataclass
class CrossValidation:
    """What the cross-validation measured, the chosen configuration and its fold ensemble."""

    folds: int
    rows: int
    candidates: list[CandidateScore]
    chosen: CandidateScore
    baselines: dict[str, FoldScores]
    best_baseline: str
    scorer: TabularScorer  # the chosen configuration's fold models as one, not yet calibrated
    oof_logits: np.ndarray  # [rows] the chosen configuration's out-of-fold logits
    y: np.ndarray  # [rows] labels of train+validation, aligned with oof_logits
    positive_weight: float  # the loss weight the fold models were trained with
    fold_of_row: np.ndarray  # [rows] the fold that held each row out
    baseline_oof: dict[str, np.ndarray]  # name -> [rows] out-of-fold probabilities of the fold baselines
    # The gradient-boosted trees' fold models (name -> one per fold) and their out-of-fold margins (log-odds):
    # the members a blend is fitted on and made of.
    tree_folds: dict[str, list[TreeModel]] = field(default_factory=dict)
    tree_oof_margin: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (no arrays, no model)."""
        return {
            "folds": self.folds,
            "rows": self.rows,
            "chosen_trial": self.chosen.trial_id,
            "candidates": [
                c.__dict__ | {"roc_auc": c.roc_auc.__dict__, "vs_best_baseline": c.vs_best_baseline.__dict__}
                for c in self.candidates
            ],
            "baselines": {name: scores.__dict__ for name, scores in self.baselines.items()},
            "best_baseline": self.best_baseline,
        }

    def flat_metrics(self) -> dict[str, float]:
        """``cv/roc_auc`` (mean, low, high) of the chosen configuration and ``cv/baseline/<name>/roc_auc``."""
        auc = self.chosen.roc_auc
        out = {"cv/roc_auc": auc.mean, "cv/roc_auc_low": auc.low, "cv/roc_auc_high": auc.high}
        diff = self.chosen.vs_best_baseline
        out |= {"cv/auc_diff_best_baseline": diff.mean, "cv/auc_diff_best_baseline_low": diff.low}
        for name, scores in self.baselines.items():
            out[f"cv/baseline/{name}/roc_auc"] = scores.mean
        return out

    def markdown(self) -> str:
        level = f"{self.chosen.roc_auc.confidence * 100:g}%"
        lines = [
            f"### Cross-validation ({self.folds} stratified folds of {self.rows:,} train+validation rows, {level} t-intervals)",
            "",
            f"| model | mean ROC AUC | {level} CI | vs {self.best_baseline} | {level} CI |",
            "|---|---|---|---|---|",
        ]
        for c in self.candidates:
            mark = " (chosen)" if c.trial_id == self.chosen.trial_id else ""
            d = c.vs_best_baseline
            lines.append(
                f"| trial {c.trial_id}{mark} | {c.roc_auc.mean:.4f} | {c.roc_auc.low:.4f} – {c.roc_auc.high:.4f} | "
                f"{d.mean:+.4f} | {d.low:+.4f} – {d.high:+.4f} |"
            )
        for name, scores in self.baselines.items():
            lines.append(
                f"| baseline {name} | {scores.mean:.4f} | {scores.low:.4f} – {scores.high:.4f} | | |"
            )
        lines += ["", f"The final model is the chosen trial's {self.folds} fold models, averaged."]
        return "\n".join(lines)


def _rows(features: EncodedFeatures, index: np.ndarray) -> EncodedFeatures:
    return EncodedFeatures(
        numeric=np.ascontiguousarray(features.numeric[index]),
        categorical=np.ascontiguousarray(features.categorical[index]),
    )


def _fold_seed(seed: int, fold: int) -> int:
    return int(np.random.SeedSequence([seed, fold]).generate_state(1, np.uint32)[0])


def cross_validate(
    features: EncodedFeatures,
    y: np.ndarray,
    *,
    transform: FeatureTransform,
    base: ModelConfig,
    candidates: list[Candidate],
    folds: int,
    seed: int,
    confidence: float,
    baselines: list[str] | tuple[str, ...] = BASELINES,
) -> CrossValidation:
    """K-fold CV of `candidates` and the baselines on the same stratified folds of `features` (train+val).

    Every fold model is trained with `train_model` (early stopping on its held-out fold); the candidate with
    the highest mean fold AUC is chosen and its fold models are returned as one `FoldEnsemble` scorer.
    """
    assert candidates, "nothing to cross-validate"
    y = np.asarray(y)
    assignment = stratified_folds(y, folds, seed)
    splits = [(np.flatnonzero(assignment != f), np.flatnonzero(assignment == f)) for f in range(folds)]

    baseline_aucs: dict[str, list[float]] = {}
    baseline_oof: dict[str, np.ndarray] = {}
    tree_folds: dict[str, list[TreeModel]] = {}
    tree_oof_margin: dict[str, np.ndarray] = {}
    for fit_rows, held_out in splits:
        held = _rows(features, held_out)
        fitted = fit_baselines_encoded(transform, _rows(features, fit_rows), y[fit_rows], seed, baselines)
        for baseline in fitted:
            scores = baseline.predict_encoded(held)
            baseline_oof.setdefault(baseline.name, np.empty(len(y)))[held_out] = scores
            baseline_aucs.setdefault(baseline.name, []).append(float(roc_auc_score(y[held_out], scores)))
            tree = baseline.tree_model()
            if tree is not None:
                tree_folds.setdefault(baseline.name, []).append(tree)
                tree_oof_margin.setdefault(baseline.name, np.empty(len(y)))[held_out] = tree.margin(held)
    best_baseline = max(baseline_aucs, key=lambda name: np.mean(baseline_aucs[name]))

    scored: list[tuple[CandidateScore, list[TabularNet], np.ndarray]] = []
    for candidate in candidates:
        config = base.with_overrides(candidate.params)
        nets: list[TabularNet] = []
        oof = np.empty(len(y), dtype=np.float64)
        aucs = []
        for fold, (fit_rows, held_out) in enumerate(splits):
            held = _rows(features, held_out)
            result = train_model(
                _rows(features, fit_rows),
                y[fit_rows],
                held,
                y[held_out],
                transform=transform,
                config=config,
                seed=_fold_seed(candidate.seed, fold),
            )
            nets.append(result.module.net)
            oof[held_out] = result.scorer.logits_encoded(held)
            aucs.append(float(roc_auc_score(y[held_out], oof[held_out])))
        diffs = [a - b for a, b in zip(aucs, baseline_aucs[best_baseline], strict=True)]
        score = CandidateScore(
            candidate.trial_id,
            candidate.params,
            fold_interval(aucs, confidence),
            fold_interval(diffs, confidence),
        )
        scored.append((score, nets, oof))

    chosen, nets, oof = max(scored, key=lambda entry: entry[0].roc_auc.mean)
    ensemble = FoldEnsemble([net.architecture() for net in nets])
    with torch.no_grad():
        for member, net in zip(ensemble.members, nets, strict=True):
            member.load_state_dict(net.state_dict())
    config = base.with_overrides(chosen.params).for_data(len(y), float(np.mean(y)))
    return CrossValidation(
        folds=folds,
        rows=len(y),
        candidates=[entry[0] for entry in scored],
        chosen=chosen,
        baselines={name: fold_interval(aucs, confidence) for name, aucs in baseline_aucs.items()},
        best_baseline=best_baseline,
        scorer=TabularScorer(transform, ensemble, ensemble.architecture()),
        oof_logits=oof,
        y=y,
        positive_weight=float(config.positive_weight),
        fold_of_row=assignment,
        baseline_oof=baseline_oof,
        tree_folds=tree_folds,
        tree_oof_margin=tree_oof_margin,
    )
