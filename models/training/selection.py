"""From the sweep's result to the model that is registered: cross-validate (small tables), calibrate, decide.

Three steps, all on rows the final network was not fitted on and never on the test split:

1. Small tables (`SplitConfig.cross_validates`): the sweep's best trials are cross-validated with the
   baselines on the same folds, and the chosen trial's fold models become the model (`models.training.cv`). The
   held-out rows are then the out-of-fold rows of train+validation. Otherwise the sweep's best checkpoint
   is the model and the held-out rows are the validation split.
2. The ensemble (`models.training.blend`, ``model.ensemble``): the network blended with the CatBoost and
   LightGBM baselines when their held-out predictions, blended, beat the network's alone by the margin. The
   blend's members are the baselines' fold models (cross-validated) or those fitted on the training split.
   The held-out logits below are then the blend's, cross-fitted (each row blended by weights fitted without
   its fold).
3. Temperature scaling fitted on the held-out logits (`models.artifact.calibrator`).
4. The decision threshold: profit-maximising on the held-out calibrated scores when the config has a
   `business:` section, else `evaluation.threshold`; saved with the model (`models.artifact.decision`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from models.artifact.blend import Blend, BlendMember
from models.artifact.calibrator import fit_temperature
from models.artifact.decision import DecisionRule
from models.artifact.scorer import TabularScorer
from models.data.config import SplitConfig
from models.evaluation.business import ThresholdChoice, optimal_threshold
from models.evaluation.calibration import Calibration, calibration
from models.evaluation.config import BusinessConfig, EvaluationConfig
from models.evaluation.evaluate import HeldOut
from models.features.store import FeatureLookup
from models.features.transform import FeatureTransform
from models.nn.config import ModelConfig
from models.training.baselines import Baseline
from models.training.blend import NETWORK, BlendChoice, choose_blend, tree_kind
from models.training.cv import Candidate, CrossValidation, cross_validate
from models.training.sweep import SweepResult


@dataclass
class FinalModel:
    """The model to register, with the held-out evidence behind its calibration and threshold."""

    scorer: TabularScorer  # calibrated, carrying its decision rule
    cv: CrossValidation | None
    holdout: str  # which rows calibration and threshold were fitted on, in words
    holdout_rows: int
    calibration_before: Calibration  # reliability on the held-out rows, network's own probabilities
    calibration_after: Calibration  # the same rows, calibrated
    threshold: ThresholdChoice | None  # the profit-maximising threshold with its interval (business only)
    blend: BlendChoice | None = None  # what the held-out rows said about blending (None: ensemble off)
    held_logits: np.ndarray | None = None  # [rows] the held-out logits calibration was fitted on

    def reading(self, lookup: FeatureLookup) -> FinalModel:
        """The same model, scoring requests that carry only the entity id through ``lookup``."""
        return replace(self, scorer=self.scorer.with_lookup(lookup))

    def held_out(self) -> HeldOut | None:
        """The cross-validation's out-of-fold scores for the baseline comparison (None without CV)."""
        if self.cv is None:
            return None
        logits = self.held_logits if self.held_logits is not None else self.cv.oof_logits
        return HeldOut(
            y=self.cv.y,
            scores=_sigmoid(self.scorer.calibration.apply(logits)),
            baseline_scores=self.cv.baseline_oof,
            fold_of_row=self.cv.fold_of_row,
            folds=self.cv.folds,
        )

    def markdown(self) -> str:
        t = self.scorer.calibration
        lines = [
            f"### Calibration (temperature scaling on {self.holdout_rows:,} {self.holdout})",
            "",
            f"Temperature {t.temperature:.3f}, offset {t.offset:+.3f} (fitted from log of the training loss's positive weight). "
            f"Expected calibration error on those rows: {self.calibration_before.ece:.4f} before, "
            f"{self.calibration_after.ece:.4f} after.",
        ]
        decision = self.scorer.decision
        if decision is not None:
            lines += [
                "",
                f"Decision rule saved with the model: contact when the score is at least "
                f"{decision.threshold:.4f} ({decision.source})"
                + (f", at most {decision.capacity} per scoring batch." if decision.capacity else "."),
            ]
        if self.blend is not None:
            lines = [self.blend.markdown(), "", *lines]
        if self.cv is not None:
            lines = [self.cv.markdown(), "", *lines]
        return "\n".join(lines)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + e^-z), without overflow warnings


def top_candidates(result: SweepResult, count: int) -> list[Candidate]:
    """The sweep's `count` best trials by validation AUC (failed or unscored trials left out)."""
    scored = [t for t in result.trials if t.best_val_auc is not None and t.status != "ERROR"]
    scored.sort(key=lambda t: t.best_val_auc, reverse=True)
    return [Candidate(t.trial_id, dict(t.params), int(t.seed or 0)) for t in scored[:count]]


def finalize_model(
    result: SweepResult,
    train: pd.DataFrame,
    y_train: np.ndarray,
    val: pd.DataFrame,
    y_val: np.ndarray,
    *,
    transform: FeatureTransform,
    model: ModelConfig,
    split: SplitConfig,
    business: BusinessConfig | None,
    evaluation: EvaluationConfig,
    cv_seed: int,
    business_seed: int,
    baselines: list[Baseline] | None = None,
) -> FinalModel:
    """Cross-validate when the table is small, decide on the blend, then calibrate and choose the decision
    threshold. ``baselines`` (fitted on the training split) are the blend's members on a table that is not
    cross-validated; without them (or with ``model.ensemble: off``) the model is the network alone."""
    rows = len(train) + len(val)
    cv = None
    if split.cross_validates(rows):
        features = transform.transform(pd.concat([train, val], ignore_index=True))
        y = np.concatenate([y_train, y_val])
        cv = cross_validate(
            features,
            y,
            transform=transform,
            base=model,
            candidates=top_candidates(result, split.cv_top_trials),
            folds=split.cv_folds,
            seed=cv_seed,
            confidence=evaluation.confidence,
            baselines=evaluation.baselines,
        )
        scorer, logits, y_held, weight = cv.scorer, cv.oof_logits, cv.y, cv.positive_weight
        holdout = f"out-of-fold rows of train+validation ({split.cv_folds} folds)"
    else:
        scorer, y_held = result.scorer, np.asarray(y_val)
        logits = scorer.logits(val)
        trained = model.with_overrides(result.best_params).for_data(len(y_train), float(np.mean(y_train)))
        weight = float(trained.positive_weight)
        holdout = "validation rows"

    offset, choice_blend, blend = math.log(weight), None, None
    members = _members(cv, baselines, transform, val) if model.ensemble != "off" else {}
    if members:
        choice_blend, blended_logits = choose_blend(
            logits,
            {name: margin for name, (margin, _) in members.items()},
            y_held,
            fold_of_row=cv.fold_of_row if cv is not None else None,
            holdout=holdout,
            mode=model.ensemble,
            margin=model.ensemble_margin,
            n_resamples=evaluation.n_bootstrap,
            seed=cv_seed,
            confidence=evaluation.confidence,
        )
        if choice_blend.blended:
            weights = choice_blend.weights.as_dict()
            blend = Blend(
                weights[NETWORK],
                choice_blend.weights.intercept,
                [
                    BlendMember(name, tree_kind(name), weights[name], models)
                    for name, (_, models) in members.items()
                    if weights[name] > 0.0  # a member the fit left out is not saved or scored
                ],
            )
            # Calibrated and thresholded on honest logits: each row blended by weights fitted without its fold.
            logits, offset = blended_logits, 0.0

    temperature = fit_temperature(logits, y_held, offset=offset)
    before = calibration(y_held, _sigmoid(logits))
    held_scores = _sigmoid(temperature.apply(logits))
    after = calibration(y_held, held_scores)
    choice = None
    if business is not None:
        choice = optimal_threshold(
            y_held,
            held_scores,
            business,
            n_resamples=evaluation.n_bootstrap,
            seed=business_seed,
            confidence=evaluation.confidence,
        )
        rule = DecisionRule(choice.threshold.value, f"profit-maximising on the {holdout}", business.capacity)
    else:
        rule = DecisionRule(evaluation.threshold, "evaluation.threshold (no business section)")
    final = scorer.with_blend(blend, temperature).with_decision(rule)
    return FinalModel(final, cv, holdout, len(y_held), before, after, choice, choice_blend, logits)


def _members(
    cv: CrossValidation | None,
    baselines: list[Baseline] | None,
    transform: FeatureTransform,
    val: pd.DataFrame,
) -> dict[str, tuple[np.ndarray, list]]:
    """Per tree baseline: its held-out margins and the models a blend would hold (fold models, or the one
    fitted on the training split)."""
    if cv is not None:
        return {name: (cv.tree_oof_margin[name], models) for name, models in cv.tree_folds.items()}
    trees = [(b.name, b.tree_model()) for b in baselines or []]
    encoded = transform.transform(val) if trees else None
    return {name: (tree.margin(encoded), [tree]) for name, tree in trees if tree is not None}
