"""The ``training-pipeline`` flow: validate -> split -> features -> baselines -> sweep ->
evaluate -> register (challenger) -> promotion decision -> champion -> Bento.

Wiring only: every step is a task over pure code in ``models/``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact

from flows.config import PipelineConfig, load_config
from flows.gates import GateDecision, require_server_for, run_gate
from flows.validation import docs_dir_for_run
from infra.home import ProjectHome
from models.data.validation import ValidationReport
from models.errors import UserInputError
from models.estimate import ResourceEstimate, actual_from_sweep, compare
from models.evaluation import MetricInterval
from models.promotion import PromotionDecision, decide_promotion
from tasks.data import load_data, publish_validation, validate_data
from tasks.estimate import estimate
from tasks.evaluate import EvaluationReport, evaluate
from tasks.lineage import code_version, fingerprint
from tasks.packaging import package_champion
from tasks.registry import load_champion, promote, record_decision, register_challenger
from tasks.tracking import (
    TrackingTarget,
    end_run,
    log_artifacts,
    log_metrics,
    log_model,
    log_trials,
    start_parent_run,
)
from tasks.training import fit_transform, split_data, sweep, train_baselines

REPO = Path(__file__).resolve().parents[1]


class InvalidDataError(UserInputError):
    """The data failed its expectation suite: the pipeline stops before any training."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(f"data validation failed: {report.summary()}")


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
    best_baseline: tuple[str, float] | None = None
    promoted: bool = False
    reason: str = ""
    promotion: GateDecision | None = None
    bento_tag: str | None = None
    trials: int = 0
    resumed_sweep: bool = False
    best_params: dict = field(default_factory=dict)
    estimate_errors: dict[str, float] = field(default_factory=dict)


def tracking_target(config: PipelineConfig, home: ProjectHome, tracking_uri: str) -> TrackingTarget:
    local = tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri
    return TrackingTarget(
        tracking_uri=tracking_uri,
        experiment=config.registry.experiment or config.registry.model_name,
        artifact_root=home.mlflow_artifacts if local else None,
    )


def _decision_tags(policy: PromotionDecision, gate: GateDecision, report: EvaluationReport) -> dict[str, str]:
    """The final outcome under ``promotion.*``, the policy's own verdict under ``policy.*``."""
    return {
        "promotion.decision": "approved" if gate.approved else "rejected",
        "promotion.decided_by": gate.decided_by,
        "promotion.reason": gate.reason[:5000],
        "policy.verdict": "approve" if policy.promote else "reject",
        "policy.reason": policy.reason[:5000],
        "policy.checks": json.dumps(policy.checks),
        "test.roc_auc": f"{report.metrics['roc_auc'].value:.5f}",
        **gate.tags(),
    }


def _run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    if tracking_uri.startswith("http"):
        return (
            f"[MLflow run {run_id}]({tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id})"
        )
    return f"MLflow run `{run_id}` in `{tracking_uri}`"


def budget_evidence(
    config: PipelineConfig, est: ResourceEstimate, validation_md: str, rows: dict[str, int]
) -> str:
    return "\n".join(
        [
            f"## Budget gate: {config.name}",
            "",
            f"Approve to run a sweep of **{est.trials} trials** on **{est.device}**: estimated "
            f"**{est.sweep_seconds / 60:.1f} min** wall time and **{est.cost:.4f} {est.currency}**.",
            f"Training rows {rows['train']:,}, validation {rows['val']:,}, test {rows['test']:,}.",
            "",
            "### Resource and cost estimate",
            est.to_markdown(),
            "",
            validation_md,
        ]
    )


def _fmt_error(value: float, pattern: str) -> str:
    """A relative error, or "n/a" when there is none (NaN: e.g. the wall time of a resumed sweep)."""
    return pattern.format(value) if math.isfinite(value) else "n/a"


def promotion_evidence(
    config: PipelineConfig,
    version: str,
    est: ResourceEstimate,
    errors: dict[str, float],
    actual_seconds: float,
    policy: PromotionDecision,
    evaluation: EvaluationReport,
    validation_md: str,
    run_link: str,
) -> str:
    checks = ", ".join(f"{k}: {'pass' if v else 'FAIL'}" for k, v in policy.checks.items())
    return "\n".join(
        [
            f"## Promotion gate: {config.registry.model_name} v{version}",
            "",
            f"Approve to make v{version} the champion. Policy verdict: **{'approve' if policy.promote else 'reject'}** "
            f"({checks}): {policy.reason}.",
            "",
            "### Cost: estimate vs actual",
            "",
            "| | estimate | actual | error |",
            "|---|---|---|---|",
            f"| sweep wall time (s) | {est.sweep_seconds:.0f} | {actual_seconds:.0f} | {_fmt_error(errors.get('sweep_seconds_error', float('nan')), '{:+.0%}')} |",
            f"| compute cost ({est.currency}) | {est.cost:.4f} | {est.cost * actual_seconds / max(est.sweep_seconds, 1e-9):.4f} | |",
            "",
            evaluation.markdown(),
            "",
            validation_md,
            "",
            run_link,
        ]
    )


def resolve_runtime() -> tuple[ProjectHome, str]:
    """The project home and tracking URI of this process (set up by the CLI or the deployment runner)."""
    home = ProjectHome.from_env()
    home.configure_environment()
    return home, os.environ["MLFLOW_TRACKING_URI"]


@flow(name="training-pipeline")
def training_pipeline(config_path: str, data_path: str | None = None) -> PipelineSummary:
    """Train, evaluate and (by policy) promote a model for the config at ``config_path``.

    The flow is the entry point both for ``mlops run`` and for deployment runs, so it takes the
    config's path (readable in the Prefect UI) and loads and validates it itself.
    """
    home, tracking_uri = resolve_runtime()
    config = load_config(
        Path(config_path), home=home.root, overrides={"data.path": data_path} if data_path else None
    )
    require_server_for(config.approval)
    df = load_data(config.data)
    report = validate_data(df, config.data.expectations, docs_dir_for_run(home.data_docs))
    validation_md = publish_validation(report, config.data.path)
    if not report.success:
        raise InvalidDataError(report)

    data_hash = fingerprint(df)
    prepared = split_data(df, config.data, config.split, config.seed)
    transform = fit_transform(prepared, config.features)
    baselines = train_baselines(prepared, transform, config.seed)
    est = estimate(prepared, transform, config.model, config.sweep, config.estimate, config.seed)
    budget = run_gate(
        "budget",
        budget_evidence(config, est, validation_md, prepared.split.sizes()),
        policy=config.approval.budget,
        approval=config.approval,
        policy_approves=True,
        policy_reason=f"estimated cost {est.cost:.4f} {est.currency}",
        cost=est.cost,
        resource_id=f"mlops.pipeline.{config.name}",
        summary={"model": config.registry.model_name, "version": None, "cost": round(est.cost, 4),
                 "sweep_minutes": round(est.sweep_seconds / 60, 1), "roc_auc": None},
    )  # fmt: skip
    if not budget.approved:
        return PipelineSummary(
            config.registry.model_name, tracking_uri, est, budget, reason=f"budget gate: {budget.reason}"
        )

    target = tracking_target(config, home, tracking_uri)
    flow_run_id = str(runtime.flow_run.id or "")
    run_id = start_parent_run(
        target,
        run_name=f"{config.name}-{runtime.flow_run.name or 'local'}",
        params=config.model_dump(mode="json"),
        tags={"pipeline": config.name, "prefect.flow_run_id": flow_run_id, "data.fingerprint": data_hash},
    )
    try:
        sweep_result = sweep(
            prepared, transform, config.model, config.sweep,
            seed=config.seed, storage_path=home.ray_results, name=f"{config.name}-{data_hash[:10]}-{config.config_hash()[:10]}",
        )  # fmt: skip
        log_trials(target, run_id, sweep_result.trials)
        actual = actual_from_sweep(sweep_result, est.device)
        errors = compare(est, actual)
        champion = load_champion(target, config.registry.model_name)
        evaluation = evaluate(
            sweep_result.scorer,
            prepared.split.test,
            prepared.y_test,
            baselines,
            (champion.version.version, champion.scorer) if champion else None,
            categorical=config.features.categorical,
            numeric=config.features.numeric,
            config=config.evaluation,
            seed=config.seed,
            plots_dir=home.reports / "plots" / run_id,
        )
        log_metrics(
            target,
            run_id,
            evaluation.flat_metrics()
            | {"sweep/best_val_auc": sweep_result.best_val_auc, "estimate/sweep_seconds": est.sweep_seconds,
               "actual/sweep_seconds": actual.sweep_seconds, "estimate/cost": est.cost}
            | {f"estimate/{k}": v for k, v in errors.items() if v == v},
        )  # fmt: skip
        log_artifacts(target, run_id, {p.name: p for p in evaluation.plots}, folder="plots")
        log_artifacts(
            target,
            run_id,
            {
                "config.json": json.dumps(config.model_dump(mode="json"), indent=2),
                "validation.json": json.dumps(report.to_dict(), indent=2),
                "evaluation.json": json.dumps(evaluation.to_dict(), indent=2, default=str),
                "evaluation.md": evaluation.markdown(),
                "validation.md": validation_md,
                "estimate.json": json.dumps(est.to_dict(), indent=2, default=str),
                "estimate.md": est.to_markdown(),
            },
        )
        model_uri = log_model(target, run_id, sweep_result.scorer, prepared.split.test.head(5))
        sizes = prepared.split.sizes()
        version = register_challenger(
            target,
            config.registry.model_name,
            model_uri,
            run_id,
            tags={
                "data.fingerprint": data_hash,
                "data.rows_train": str(sizes["train"]),
                "data.rows_val": str(sizes["val"]),
                "data.rows_test": str(sizes["test"]),
                "validation.result": report.summary()[:5000],
                "config.hash": config.config_hash(),
                "code.version": code_version(REPO),
                "prefect.flow_run_id": flow_run_id,
                "sweep.best_trial_id": sweep_result.best_trial_id,
                "mlflow.run_id": run_id,
                "actual.sweep_seconds": f"{actual.sweep_seconds:.1f}",
                "actual.epochs_total": str(actual.epochs_total),
                "actual.sweep_resumed": str(actual.resumed).lower(),
                "actual.sweep_seconds_error": _fmt_error(errors["sweep_seconds_error"], "{:+.3f}"),
                **est.to_tags(),
                **budget.tags(),
            },
        )
        policy = decide_promotion(
            challenger_auc=evaluation.metrics["roc_auc"],
            best_baseline=evaluation.best_baseline,
            vs_champion=evaluation.vs_champion,
            champion_version=champion.version.version if champion else None,
            policy=config.promotion,
        )
        experiment_id = target.client().get_run(run_id).info.experiment_id
        gate = run_gate(
            "promotion",
            promotion_evidence(
                config, version.version, est, errors, actual.sweep_seconds, policy, evaluation, validation_md,
                _run_link(tracking_uri, experiment_id, run_id),
            ),
            policy=config.approval.promotion,
            approval=config.approval,
            policy_approves=policy.promote,
            policy_reason=policy.reason,
            cost=est.cost,
            resource_id=f"mlops.model.{config.registry.model_name}.{version.version}",
            summary={"model": config.registry.model_name, "version": version.version, "cost": round(est.cost, 4),
                     "sweep_minutes": round(actual.sweep_seconds / 60, 1),
                     "roc_auc": round(evaluation.metrics["roc_auc"].value, 4)},
        )  # fmt: skip
        record_decision(target, version, _decision_tags(policy, gate, evaluation))
        champion_version = champion.version.version if champion else None
        bento_tag = None
        if gate.approved:
            promote(target, version)
            champion_version = version.version
            bento_tag = package_champion(
                sweep_result.scorer,
                config.serving,
                model_name=config.registry.model_name,
                version=version.version,
                run_id=run_id,
            )
        end_run(target, run_id)
    except Exception:
        # Not BaseException: a suspended run exits through Prefect's Pause signal and resumes later.
        end_run(target, run_id, status="FAILED")
        raise

    summary = PipelineSummary(
        model_name=config.registry.model_name,
        tracking_uri=tracking_uri,
        estimate=est,
        budget=budget,
        champion_version=champion_version,
        version=version.version,
        run_id=run_id,
        test_auc=evaluation.metrics["roc_auc"],
        best_baseline=evaluation.best_baseline,
        promoted=gate.approved,
        reason=gate.reason,
        promotion=gate,
        bento_tag=bento_tag,
        trials=len(sweep_result.trials),
        resumed_sweep=sweep_result.resumed,
        best_params=sweep_result.best_params,
        estimate_errors=errors,
    )
    create_markdown_artifact(
        key="training-summary",
        markdown=f"## {summary.model_name} v{summary.version}: "
        f"{'promoted to champion' if summary.promoted else 'not promoted'}\n\n{summary.reason}\n\n{evaluation.markdown()}",
        description="Training pipeline summary",
    )
    return summary
