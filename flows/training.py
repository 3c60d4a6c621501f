"""The ``training-pipeline`` flow: validate -> split -> features -> baselines -> sweep ->
evaluate -> register (challenger) -> promotion decision -> champion -> Bento.

Wiring only: every step is a task over pure code in ``models/``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact

from flows.config import PipelineConfig, load_config
from flows.home import ProjectHome
from flows.validation import docs_dir_for_run
from models.data.validation import ValidationReport
from models.errors import UserInputError
from models.evaluation import MetricInterval
from models.promotion import PromotionDecision, decide_promotion
from tasks.data import load_data, publish_validation, validate_data
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
    """What a run produced, for the console and the flow's result."""

    model_name: str
    version: str
    run_id: str
    tracking_uri: str
    test_auc: MetricInterval
    best_baseline: tuple[str, float]
    promoted: bool
    reason: str
    champion_version: str | None
    bento_tag: str | None
    trials: int
    resumed_sweep: bool
    best_params: dict = field(default_factory=dict)


def tracking_target(config: PipelineConfig, home: ProjectHome, tracking_uri: str) -> TrackingTarget:
    local = tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri
    return TrackingTarget(
        tracking_uri=tracking_uri,
        experiment=config.registry.experiment or config.registry.model_name,
        artifact_root=home.mlflow_artifacts if local else None,
    )


def _decision_tags(decision: PromotionDecision, report: EvaluationReport) -> dict[str, str]:
    return {
        "promotion.decision": "approved" if decision.promote else "rejected",
        "promotion.decided_by": decision.decided_by,
        "promotion.reason": decision.reason[:5000],
        "promotion.checks": json.dumps(decision.checks),
        "test.roc_auc": f"{report.metrics['roc_auc'].value:.5f}",
    }


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
    df = load_data(config.data)
    report = validate_data(df, config.data.expectations, docs_dir_for_run(home.data_docs))
    validation_md = publish_validation(report, config.data.path)
    if not report.success:
        raise InvalidDataError(report)

    data_hash = fingerprint(df)
    prepared = split_data(df, config.data, config.split, config.seed)
    transform = fit_transform(prepared, config.features)
    baselines = train_baselines(prepared, transform, config.seed)

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
            target, run_id, evaluation.flat_metrics() | {"sweep/best_val_auc": sweep_result.best_val_auc}
        )
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
            },
        )
        decision = decide_promotion(
            challenger_auc=evaluation.metrics["roc_auc"],
            best_baseline=evaluation.best_baseline,
            vs_champion=evaluation.vs_champion,
            champion_version=champion.version.version if champion else None,
            policy=config.promotion,
        )
        record_decision(target, version, _decision_tags(decision, evaluation))
        champion_version = champion.version.version if champion else None
        bento_tag = None
        if decision.promote:
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
    except BaseException:
        end_run(target, run_id, status="FAILED")
        raise

    summary = PipelineSummary(
        model_name=config.registry.model_name,
        version=version.version,
        run_id=run_id,
        tracking_uri=tracking_uri,
        test_auc=evaluation.metrics["roc_auc"],
        best_baseline=evaluation.best_baseline,
        promoted=decision.promote,
        reason=decision.reason,
        champion_version=champion_version,
        bento_tag=bento_tag,
        trials=len(sweep_result.trials),
        resumed_sweep=sweep_result.resumed,
        best_params=sweep_result.best_params,
    )
    create_markdown_artifact(
        key="training-summary",
        markdown=f"## {summary.model_name} v{summary.version}: "
        f"{'promoted to champion' if summary.promoted else 'not promoted'}\n\n{summary.reason}\n\n{evaluation.markdown()}",
        description="Training pipeline summary",
    )
    return summary
