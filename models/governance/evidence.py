"""What a pipeline run tells people and records: gate evidence, tags, artifacts, the run summary.

Pure builders (no Prefect, no MLflow): the flow passes their results to the tasks that publish
them. Every figure shown is computed here, before it is formatted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.data.validation import ValidationReport
from models.estimate.actual import ActualUsage, EstimateComparison
from models.estimate.chart import markdown_image, timeline_png
from models.estimate.result import ResourceEstimate
from models.estimate.timeline import PhaseComparison, Timeline, comparison_markdown
from models.evaluation.bootstrap import MetricInterval
from models.evaluation.evaluate import BaselineScore, ChampionModel, EvaluationReport
from models.governance.approval import BUDGET, PROMOTION, GateDecision, GateRequest, GateSummary
from models.governance.config import GatePolicy
from models.governance.datasets import (
    RETRAINED_FROM_TAG,
    SPLIT_STRATEGY_TAG,
    DatasetIdentity,
    dataset_tags,
)
from models.governance.model_card import CardContext
from models.governance.names import tag_value
from models.governance.promotion import PromotionDecision
from models.training.selection import FinalModel
from models.training.sweep import SweepResult


@dataclass(frozen=True)
class RunIdentity:
    """Names of one pipeline run that evidence and tags refer to."""

    pipeline: str
    model_name: str
    config_hash: str
    data_fingerprint: str
    code_version: str
    flow_run_id: str
    experiment: str = ""  # MLflow experiment; empty = the model's name
    # Where the frame came from beyond the data file (the feature store's service, views, retrieval time).
    data_lineage: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        config: Any,
        data_fingerprint: str,
        code_version: str,
        flow_run_id: Any,
        data_lineage: dict[str, str] | None = None,
    ) -> RunIdentity:
        """From a pipeline config (any object with ``name``, ``registry`` and ``config_hash()``)."""
        registry = config.registry
        return cls(
            pipeline=config.name,
            model_name=registry.model_name,
            config_hash=config.config_hash(),
            data_fingerprint=data_fingerprint,
            code_version=code_version,
            flow_run_id=str(flow_run_id or ""),
            experiment=registry.experiment or registry.model_name,
            data_lineage=dict(data_lineage or {}),
        )

    def run_name(self, flow_run_name: str | None) -> str:
        """The MLflow parent run's name: pipeline and Prefect flow run."""
        return f"{self.pipeline}-{flow_run_name or 'local'}"

    @property
    def tags(self) -> dict[str, str]:
        """Tags of the MLflow parent run."""
        return {
            "pipeline": self.pipeline,
            "prefect.flow_run_id": self.flow_run_id,
            "data.fingerprint": self.data_fingerprint,
        }

    @property
    def sweep_name(self) -> str:
        """The sweep's folder: the same data and config resume the same sweep."""
        return f"{self.pipeline}-{self.data_fingerprint[:10]}-{self.config_hash[:10]}"


@dataclass
class PipelineSummary:
    """What a run produced, for the console and the flow's result.

    A run stopped at the budget gate has no version, metrics or sweep: only the estimate and
    the gate's decision.
    """

    model_name: str
    tracking_uri: str
    estimate: ResourceEstimate
    budget: GateDecision
    champion_version: str | None = None
    version: str | None = None
    run_id: str | None = None
    test_auc: MetricInterval | None = None
    best_baseline: BaselineScore | None = None
    promoted: bool = False
    reason: str = ""
    promotion: GateDecision | None = None
    bento_tag: str | None = None
    trials: int = 0
    resumed_sweep: bool = False
    best_params: dict = field(default_factory=dict)
    estimate_errors: EstimateComparison | None = None
    phases: list[PhaseComparison] = field(default_factory=list)  # estimate against actual, per phase
    ensemble: str = ""  # the candidate: the network alone or the blend, and why (empty: ensemble off)

    @classmethod
    def stopped_at_budget(
        cls, model_name: str, tracking_uri: str, est: ResourceEstimate, budget: GateDecision
    ) -> PipelineSummary:
        return cls(model_name, tracking_uri, est, budget, reason=f"budget gate: {budget.reason}")

    @classmethod
    def of_run(
        cls,
        model_name: str,
        tracking_uri: str,
        est: ResourceEstimate,
        budget: GateDecision,
        run_id: str,
        version: str,
        evaluation: EvaluationReport,
        gate: GateDecision,
        champion: ChampionModel | None,
        sweep: SweepResult,
        errors: EstimateComparison,
        bento_tag: str | None,
        phases: list[PhaseComparison] | None = None,
        final: FinalModel | None = None,
    ) -> PipelineSummary:
        """A run that registered ``version``: the champion is it when the gate approved, else the old one."""
        champion_version = version if gate.approved else (champion.version if champion else None)
        return cls(
            model_name=model_name,
            tracking_uri=tracking_uri,
            estimate=est,
            budget=budget,
            champion_version=champion_version,
            version=version,
            run_id=run_id,
            test_auc=evaluation.metrics["roc_auc"],
            best_baseline=evaluation.best_baseline,
            promoted=gate.approved,
            reason=gate.reason,
            promotion=gate,
            bento_tag=bento_tag,
            trials=len(sweep.trials),
            resumed_sweep=sweep.resumed,
            best_params=sweep.best_params,
            estimate_errors=errors,
            phases=phases or [],
            ensemble=final.blend.summary() if final is not None and final.blend is not None else "",
        )


def budget_gate(
    run: RunIdentity,
    est: ResourceEstimate,
    validation_md: str,
    rows: dict[str, int],
    policy: GatePolicy,
    timeline: Timeline | None = None,
) -> GateRequest:
    """The gate before the sweep: approve spending the estimated time and money; ``timeline`` the run's phases
    (measured so far, estimated from here), shown as a table and a chart, with the what-if rows per device."""
    minutes = est.sweep_seconds / 60
    low, high = est.sweep_seconds_range
    plan = (
        [
            "### Timeline",
            "Offsets from the run's start, and after each approval from its decision (nobody can say when a person "
            "answers). The sweep's range is the 5th-95th percentile of the simulated sweeps: how many epochs ASHA "
            "lets the trials run varies from sweep to sweep.",
            "",
            timeline.to_markdown(),
            "",
            markdown_image(timeline_png(timeline), "Run timeline"),
            "",
        ]
        if timeline is not None
        else []
    )
    what_if = ["### The same sweep on other devices", est.what_if_markdown(), ""] if est.what_if else []
    evidence = "\n".join(
        [
            f"## Budget gate: {run.pipeline}",
            "",
            f"Approve to run a sweep of **{est.trials} trials** on **{est.device}**: estimated "
            f"**{minutes:.1f} min** wall time (90%: {low / 60:.1f}-{high / 60:.1f} min) and "
            f"**{est.cost:.4f} {est.currency}** (90%: {est.cost_range[0]:.4f}-{est.cost_range[1]:.4f})"
            + (
                f", then {est.cv_fits} cross-validation fits (about {est.cv_seconds / 60:.1f} min)."
                if est.cv_fits
                else "."
            ),
            f"Training rows {rows['train']:,}, validation {rows['val']:,}, test {rows['test']:,}.",
            "",
            *plan,
            "### Resource and cost estimate",
            est.to_markdown(),
            "",
            *what_if,
            validation_md,
        ]
    )
    return GateRequest(
        gate=BUDGET,
        evidence=evidence,
        policy=policy,
        policy_approves=True,
        policy_reason=f"estimated cost {est.cost:.4f} {est.currency}",
        cost=est.cost,
        resource_id=f"mlops.pipeline.{run.pipeline}",
        summary=GateSummary(run.model_name, None, est.cost, minutes),
    )


def promotion_gate(
    run: RunIdentity,
    version: str,
    est: ResourceEstimate,
    comparison: EstimateComparison,
    actual: ActualUsage,
    decision: PromotionDecision,
    evaluation: EvaluationReport,
    validation_md: str,
    run_link: str,
    policy: GatePolicy,
    final_md: str = "",
    card: str = "",
) -> GateRequest:
    """The gate before the champion alias moves: the evidence an approver decides on.

    ``final_md`` is the cross-validation and calibration section, ``card`` the version's model card.
    """
    actual_seconds = actual.sweep_seconds
    checks = ", ".join(f"{k}: {'pass' if v else 'FAIL'}" for k, v in decision.checks.items())
    verdict = "approve" if decision.promote else "reject"
    # The sweep's real cost at the estimate's price per second.
    actual_cost = est.cost * actual_seconds / max(est.sweep_seconds, 1e-9)
    auc = evaluation.metrics["roc_auc"].value
    flagged = evaluation.leakage.flagged if evaluation.leakage is not None else []
    warnings = []
    if flagged:
        names = ", ".join(f"`{f.feature}` (alone AUC {f.auc:.3f})" for f in flagged)
        warnings.append(
            f"**Possible target leakage: {names}.** Is each value known when the prediction is made? "
            "The figures may not hold in production; see *Possible target leakage* below."
        )
    warnings += [f"**A person must decide:** {reason}." for reason in decision.human_reasons]
    evidence = "\n".join(
        [
            f"## Promotion gate: {run.model_name} v{version}",
            "",
            f"Approve to make v{version} the champion. Policy verdict: **{verdict}** ({checks}): {decision.reason}.",
            "",
            *[line for w in warnings for line in (w, "")],
            "### Cost: estimate vs actual",
            "",
            "| | estimate | actual | error |",
            "|---|---|---|---|",
            f"| sweep wall time (s) | {est.sweep_seconds:.0f} | {actual_seconds:.0f} | {comparison.describe('sweep_seconds_error')} |",
            f"| compute cost ({est.currency}) | {est.cost:.4f} | {actual_cost:.4f} | |",
            "",
            evaluation.markdown(),
            "",
            final_md,
            "",
            validation_md,
            "",
            run_link,
            "",
            card,
        ]
    )
    return GateRequest(
        gate=PROMOTION,
        evidence=evidence,
        policy=policy,
        policy_approves=decision.promote,
        policy_reason=decision.reason,
        cost=est.cost,
        resource_id=f"mlops.model.{run.model_name}.{version}",
        summary=GateSummary(run.model_name, version, est.cost, actual_seconds / 60, auc),
        human_reasons=list(decision.human_reasons),
    )


def lineage_tags(
    run: RunIdentity,
    run_id: str,
    rows: dict[str, int],
    validation: ValidationReport,
    sweep: SweepResult,
    est: ResourceEstimate,
    comparison: EstimateComparison,
    actual: ActualUsage,
    budget: GateDecision,
    datasets: dict[str, DatasetIdentity],
    split_strategy: str,
    retrained_from: str | None = None,
) -> dict[str, str]:
    """Tags of a new model version: where its data, config, code and run came from, estimate vs actual.

    ``datasets`` are the logged parts of its split (train, validation, test); ``retrained_from`` names the
    version whose logged datasets it was trained on again.
    """
    return {
        "data.fingerprint": run.data_fingerprint,
        "data.rows_train": str(rows["train"]),
        "data.rows_val": str(rows["val"]),
        "data.rows_test": str(rows["test"]),
        **dataset_tags(datasets),
        SPLIT_STRATEGY_TAG: split_strategy,
        **({RETRAINED_FROM_TAG: retrained_from} if retrained_from else {}),
        "validation.result": tag_value(validation.summary()),
        "config.hash": run.config_hash,
        "code.version": run.code_version,
        "prefect.flow_run_id": run.flow_run_id,
        "sweep.best_trial_id": sweep.best_trial_id,
        "mlflow.run_id": run_id,
        **run.data_lineage,
        "actual.sweep_seconds": f"{actual.sweep_seconds:.1f}",
        "actual.epochs_total": str(actual.epochs_total),
        "actual.sweep_resumed": str(sweep.resumed).lower(),
        **comparison.to_tags(),
        **est.to_tags(),
        **budget.tags(),
    }


def decision_tags(
    policy: PromotionDecision, gate: GateDecision, evaluation: EvaluationReport
) -> dict[str, str]:
    """The final outcome under ``promotion.*``, the policy's own verdict under ``policy.*``."""
    return {
        "promotion.decision": gate.outcome,
        "promotion.decided_by": gate.decided_by,
        "promotion.reason": tag_value(gate.reason),
        "policy.verdict": "approve" if policy.promote else "reject",
        "policy.reason": tag_value(policy.reason),
        "policy.checks": json.dumps(policy.checks),
        "test.roc_auc": f"{evaluation.metrics['roc_auc'].value:.5f}",
        **gate.tags(),
    }


def run_metrics(
    evaluation: EvaluationReport,
    sweep: SweepResult,
    est: ResourceEstimate,
    comparison: EstimateComparison,
    actual: ActualUsage,
    final: FinalModel,
) -> dict[str, float]:
    """The parent run's final metrics: test figures, cross-validation, calibration, the sweep's best,
    estimate vs actual."""
    calibrated = {
        "holdout/ece_before_calibration": final.calibration_before.ece,
        "holdout/ece": final.calibration_after.ece,
        "calibration/temperature": final.scorer.calibration.temperature,
    }
    return (
        evaluation.flat_metrics()
        | (final.cv.flat_metrics() if final.cv is not None else {})
        | (final.blend.flat_metrics() if final.blend is not None else {})
        | calibrated
        | {
            "sweep/best_val_auc": sweep.best_val_auc,
            "estimate/sweep_seconds": est.sweep_seconds,
            "estimate/sweep_seconds_p05": est.sweep_seconds_range[0],
            "estimate/sweep_seconds_p95": est.sweep_seconds_range[1],
            "estimate/sweep_epochs": est.sweep_epochs,
            "estimate/sweep_epochs_p05": est.sweep_epochs_range[0],
            "estimate/sweep_epochs_p95": est.sweep_epochs_range[1],
            "actual/sweep_seconds": actual.sweep_seconds,
            "actual/sweep_epochs": float(actual.epochs_total),
            "estimate/cost": est.cost,
        }
        | comparison.finite()
    )


def run_documents(
    config: dict,
    validation: ValidationReport,
    validation_md: str,
    evaluation: EvaluationReport,
    est: ResourceEstimate,
    final: FinalModel,
) -> dict[str, str]:
    """Files attached to the parent run (name -> content)."""
    cv = {"cross_validation.json": json.dumps(final.cv.to_dict(), indent=2, default=str)} if final.cv else {}
    if final.blend is not None:
        cv["ensemble.json"] = json.dumps(final.blend.to_dict(), indent=2, default=str)
    return cv | {
        "model_selection.md": final.markdown(),
        "config.json": json.dumps(config, indent=2),
        "validation.json": json.dumps(validation.to_dict(), indent=2),
        "evaluation.json": json.dumps(evaluation.to_dict(), indent=2, default=str),
        "evaluation.md": evaluation.markdown(),
        "validation.md": validation_md,
        "estimate.json": json.dumps(est.to_dict(), indent=2, default=str),
        "estimate.md": est.to_markdown(),
    }


def plot_files(evaluation: EvaluationReport) -> dict[str, Path]:
    return {p.name: p for p in evaluation.plots}


def summary_markdown(summary: PipelineSummary, evaluation: EvaluationReport) -> str:
    """The run's closing artifact: version, verdict and reason, then the evaluation."""
    verdict = "promoted to champion" if summary.promoted else "not promoted"
    timeline = (
        f"\n\n### Timeline: estimate against actual\n{comparison_markdown(summary.phases)}"
        if summary.phases
        else ""
    )
    return (
        f"## {summary.model_name} v{summary.version}: {verdict}\n\n{summary.reason}{timeline}\n\n"
        f"{evaluation.markdown()}"
    )


def card_context(
    run: RunIdentity,
    version: str,
    config: Any,
    rows: dict[str, int],
    validation: ValidationReport,
    split_strategy: str,
    timeline: str = "",
) -> CardContext:
    """The run facts a model card states, from the pipeline config (any object with ``data`` and ``features``)."""
    return CardContext(
        model_name=run.model_name,
        version=version,
        pipeline=run.pipeline,
        data_path=str(config.data.path),
        data_fingerprint=run.data_fingerprint,
        target=config.data.target,
        positive_class=str(config.data.positive_class),
        rows=rows,
        numeric=list(config.features.numeric),
        categorical=list(config.features.categorical),
        validation=validation.summary(),
        split_strategy=split_strategy,
        timeline=timeline,
    )
