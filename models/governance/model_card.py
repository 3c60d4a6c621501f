"""The model card of a registered version: what it is for, what it was trained on, how good it is, and
where it is weak. Pure: built from the run's own results, written by the pipeline to the registry (the
version's description), the MLflow run (`model_card.md`) and the promotion gate's evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.evaluation.bootstrap import confidence_percent
from models.evaluation.evaluate import EvaluationReport
from models.nn.network import describe
from models.training.selection import FinalModel
from models.training.sweep import SweepResult

# Below this many test rows a metric's interval is wide enough to say so in the limitations.
SMALL_TEST_ROWS = 1000
TRIALS_SHOWN = 5


@dataclass(frozen=True)
class CardContext:
    """Facts about the run that the results do not carry."""

    model_name: str
    version: str
    pipeline: str
    data_path: str
    data_fingerprint: str
    target: str
    positive_class: str
    rows: dict[str, int]
    numeric: list[str]
    categorical: list[str]
    validation: str  # the data validation's one-line summary
    split_strategy: str
    # The run's phases so far, estimate against actual (markdown); the approval and packaging that follow the
    # card are in the run's summary.
    timeline: str = ""


def _trials_table(sweep: SweepResult) -> list[str]:
    ranked = sorted(
        (t for t in sweep.trials if t.best_val_auc is not None), key=lambda t: t.best_val_auc, reverse=True
    )
    lines = ["| trial | validation AUC | epochs | parameters |", "|---|---|---|---|"]
    for trial in ranked[:TRIALS_SHOWN]:
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
        )
        lines.append(
            f"| {trial.trial_id} | {trial.best_val_auc:.4f} | {trial.epochs} | {params or 'defaults'} |"
        )
    return lines


def _limitations(context: CardContext, final: FinalModel, evaluation: EvaluationReport) -> list[str]:
    out = []
    if evaluation.test_rows < SMALL_TEST_ROWS:
        auc = evaluation.metrics["roc_auc"]
        out.append(
            f"The test split has only {evaluation.test_rows:,} rows: the ROC AUC interval is "
            f"{auc.high - auc.low:.3f} wide, so small differences between models are not resolved."
        )
    best = evaluation.best_baseline
    evidence = (evaluation.non_inferiority or evaluation.vs_baselines).get(best.name)
    if evidence is not None and evidence.low <= 0:
        out.append(
            f"Not shown to be better than the {best.name} baseline (AUC difference {evidence.diff:+.4f}, interval "
            f"{evidence.low:+.4f} to {evidence.high:+.4f}): it holds its own, it does not clearly beat it."
        )
    if context.split_strategy != "time":
        out.append(
            "The split is random, not by time: the test figures assume future rows look like past ones. "
            "Watch the drift monitors once it serves."
        )
    small = [s for s in evaluation.slices if s.roc_auc is None]
    if small:
        shown = ", ".join(f"{s.column}={s.value}" for s in small[:5])
        out.append(f"Slices too small to measure ({len(small)}): {shown}.")
    if evaluation.slices:
        scored = [s for s in evaluation.slices if s.roc_auc is not None]
        if scored:
            worst = min(scored, key=lambda s: s.roc_auc)
            out.append(
                f"Weakest slice: {worst.column}={worst.value} (ROC AUC {worst.roc_auc:.3f} on {worst.count:,} rows)."
            )
    out.append(
        f"Calibrated on {final.holdout_rows:,} {final.holdout}; probabilities outside the training data's range "
        "are extrapolations."
    )
    flagged = evaluation.leakage.flagged if evaluation.leakage is not None else []
    if flagged:
        out.insert(
            0,
            f"Possible target leakage: {', '.join(f.feature for f in flagged)} "
            f"{'predicts' if len(flagged) == 1 else 'predict'} `{context.target}` too well "
            "(see *Possible target leakage*). If a value is written after the outcome, every figure on this card "
            "overstates what the model will do in production.",
        )
    return out


def _rule_text(final: FinalModel) -> str:
    rule = final.scorer.decision
    if rule is None:
        return ""
    capacity = f", at most {rule.capacity} per scoring batch" if rule.capacity else ""
    return f" The decision rule saved with it contacts rows scoring at least {rule.threshold:.4f}{capacity} ({rule.source})."


def model_card(
    context: CardContext, sweep: SweepResult, final: FinalModel, evaluation: EvaluationReport
) -> str:
    """The card as markdown."""
    m = evaluation.metrics
    level = confidence_percent(m["roc_auc"].confidence)
    rows = context.rows
    architecture = describe(final.scorer.net_config)
    why = (
        f"chosen by {final.cv.folds}-fold cross-validation among the sweep's best {len(final.cv.candidates)} "
        f"trials (mean fold AUC {final.cv.chosen.roc_auc.mean:.4f})"
        if final.cv is not None
        else f"the best of the sweep's {len(sweep.trials)} trials on the validation split (AUC {sweep.best_val_auc:.4f})"
    )
    lines = [
        f"# Model card: {context.model_name} v{context.version}",
        "",
        "## Intended use",
        f"Scores the probability that `{context.target}` is `{context.positive_class}` for rows like those of the "
        f"`{context.pipeline}` table, to rank and select whom to contact.{_rule_text(final)}",
        "Not intended for decisions about people without human review, for populations unlike the training data, "
        "or for causal conclusions (a high score is not a reason a customer converts or churns).",
        "",
        "## Data",
        f"- Source `{context.data_path}`, fingerprint `{context.data_fingerprint[:16]}`; {context.split_strategy} split: "
        f"{rows['train']:,} train, {rows['val']:,} validation, {rows['test']:,} test rows.",
        f"- Features: {len(context.numeric)} numeric ({', '.join(context.numeric) or 'none'}), "
        f"{len(context.categorical)} categorical ({', '.join(context.categorical) or 'none'}).",
        f"- Data validation: {context.validation}",
        "",
        "## Architecture",
        f"{architecture}; {why}. The alternatives tried (best {TRIALS_SHOWN} of the sweep by validation AUC):",
        "",
        *_trials_table(sweep),
        "",
        *_ensemble(final),
        "## Metrics (test split, {level} bootstrap intervals)".replace("{level}", level),
        "",
        f"| metric | value | {level} CI |",
        "|---|---|---|",
        *[f"| {k} | {v.value:.4f} | {v.low:.4f} – {v.high:.4f} |" for k, v in m.items()],
        *[
            f"| baseline {name} roc_auc | {b['roc_auc'].value:.4f} | {b['roc_auc'].low:.4f} – {b['roc_auc'].high:.4f} |"
            for name, b in evaluation.baselines.items()
        ],
        "",
        *_fit_times(evaluation.baseline_fit_seconds),
        "## Slices (test ROC AUC by category, weakest first)",
        "",
        "| slice | rows | positive rate | ROC AUC |",
        "|---|---|---|---|",
        *[
            f"| {s.column}={s.value} | {s.count:,} | {s.positive_rate:.3f} | {s.roc_auc:.3f} |"
            for s in sorted((s for s in evaluation.slices if s.roc_auc is not None), key=lambda s: s.roc_auc)[
                :8
            ]
        ],
        "",
        "## Calibration",
        f"Temperature scaling (T = {final.scorer.calibration.temperature:.3f}) on {final.holdout_rows:,} {final.holdout}. "
        f"Test ECE {evaluation.calibration.ece:.4f}"
        + (
            f", {evaluation.calibration_before.ece:.4f} before calibration."
            if evaluation.calibration_before
            else "."
        ),
        "",
        *([evaluation.leakage.markdown(level=2), ""] if evaluation.leakage is not None else []),
        "## Business value",
        evaluation.business.markdown()
        if evaluation.business is not None
        else "No `business:` section in the config.",
        "",
        *(
            [
                "## Compute: estimate against actual",
                "The budget gate's plan for each phase up to this card; the promotion approval and packaging that "
                "follow it are in the run's summary.",
                "",
                context.timeline,
                "",
            ]
            if context.timeline
            else []
        ),
        "## Known limitations",
        *[f"- {item}" for item in _limitations(context, final, evaluation)],
    ]
    return "\n".join(lines)


def _fit_times(seconds: dict[str, float]) -> list[str]:
    """One line: each baseline's fit time (on the training split, early stopping included)."""
    if not seconds:
        return []
    return ["Baseline fit times: " + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items()) + ".", ""]


def _ensemble(final: FinalModel) -> list[str]:
    """The blend's members and weights when the model is one, else why it is the network alone."""
    choice, blend = final.blend, final.scorer.blend
    if choice is None:
        return []
    d = choice.difference
    measured = (
        f"held-out ROC AUC on {choice.rows:,} {choice.holdout}: network alone {choice.network_auc:.4f}, blend "
        f"{choice.blend_auc:.4f} (cross-fitted), difference {d.diff:+.4f} "
        f"({confidence_percent(d.confidence)} CI {d.low:+.4f} to {d.high:+.4f})"
    )
    if blend is None:
        return [
            "## Ensemble",
            f"The network alone (model.ensemble: {choice.mode}): {choice.reason}; {measured}.",
            "",
        ]
    members = [f"| network | {blend.network_weight:.3f} | 1 |"] + [
        f"| {m.name} | {m.weight:.3f} | {len(m.models)} |" for m in blend.members
    ]
    return [
        "## Ensemble",
        f"A blend (model.ensemble: {choice.mode}): {choice.reason}; {measured}. The score is the calibrated "
        "sigmoid of the weighted sum of each member's log-odds (a member of several models: their mean), plus "
        f"the intercept {blend.intercept:+.3f}.",
        "",
        "| member | weight | models |",
        "|---|---|---|",
        *members,
        "",
    ]
