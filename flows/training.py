"""The ``training-pipeline`` flow: validate -> split -> features -> baselines -> estimate -> budget
gate -> sweep -> evaluate -> register (challenger) -> promotion gate -> champion -> Bento.

Wiring only: each step is a task over pure code in ``models/``; evidence, tags and the summary are
built by ``models.governance.evidence``. The split's three parts are logged as the run's datasets; a
retrain of a version (``retrain_version``) reads them back instead of loading and splitting the data.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, runtime

from flows.config import load_config
from flows.features import model_lookup, training_frame
from flows.gates import require_server_for, run_gate
from flows.validation import docs_dir_for_run
from infra.home import ProjectHome
from models.estimate.actual import actual_from_sweep, compare
from models.estimate.timeline import (
    BUDGET_APPROVAL,
    CROSS_VALIDATION,
    ESTIMATE,
    EVALUATION,
    PACKAGING,
    PREPARATION,
    PROMOTION_APPROVAL,
    REGISTRATION,
    SWEEP,
    VALIDATION,
    PhaseClock,
    comparison_markdown,
    phase_metrics,
)
from models.evaluation.evaluate import LeakageCheck
from models.governance.evidence import (
    PipelineSummary,
    RunIdentity,
    budget_gate,
    card_context,
    decision_tags,
    lineage_tags,
    plot_files,
    promotion_gate,
    run_documents,
    run_metrics,
    summary_markdown,
)
from models.governance.model_card import model_card
from models.governance.promotion import decide_promotion
from models.seeds import Seeds
from tasks.data import InvalidDataError, require_valid
from tasks.estimate import estimate
from tasks.evaluate import evaluate
from tasks.lineage import code_version, fingerprint
from tasks.monitoring import save_drift_reference
from tasks.packaging import package_version
from tasks.registry import (
    decide,
    load_champion,
    logged_split,
    publish_model_card,
    record_serving_integrity,
    register_challenger,
)
from tasks.summary import publish_summary
from tasks.tracking import (
    TrackingTarget,
    log_artifacts,
    log_datasets,
    log_metrics,
    log_model,
    log_trials,
    parent_run,
)
from tasks.training import finalize, fit_transform, reuse_split, split_data, sweep, train_baselines

REPO = Path(__file__).resolve().parents[1]
__all__ = ["InvalidDataError", "PipelineSummary", "training_pipeline"]


@flow(name="training-pipeline")
def training_pipeline(
    config_path: str, data_path: str | None = None, retrain_version: str | None = None
) -> PipelineSummary:
    """Train, evaluate and (by policy or approval) promote a model for the config at ``config_path``.

    The entry point of both ``mlops run`` and deployment runs, so it takes the config's path
    (readable in the Prefect UI) and loads and validates it itself. ``retrain_version`` (NAME/VERSION)
    trains on the train, validation and test rows that version logged instead of the config's data.
    """
    clock = PhaseClock()  # each phase's wall time, set against the budget gate's plan after the run
    home = ProjectHome.configured()
    overrides = {"data.path": data_path} if data_path else None
    config = load_config(Path(config_path), home=home.root, overrides=overrides)
    seeds, approval = Seeds.from_root(config.seed), config.approval
    require_server_for(approval)
    logged = logged_split(home.active_tracking_uri(), retrain_version) if retrain_version else None
    # The data file, or the label spine's rows with their features from the feature store.
    frame = None if logged else training_frame(config)
    df = logged.rows() if logged else frame.data
    validation = require_valid(df, config.data, docs_dir_for_run(home.data_docs))
    data_lineage = frame.lineage if frame else None
    run = clock.done(
        VALIDATION,
        RunIdentity.of(config, fingerprint(df), code_version(REPO), runtime.flow_run.id, data_lineage),
    )
    prepared = (
        reuse_split(logged, config.data) if logged else split_data(df, config.data, config.split, seeds.split)
    )
    transform = fit_transform(prepared, config.features)
    baselines = clock.done(
        PREPARATION, train_baselines(prepared, transform, seeds.baselines, config.evaluation)
    )
    est = estimate(
        prepared, transform, config.model, config.sweep, config.estimate, seeds.estimate, config.split
    )
    rows = clock.done(ESTIMATE, prepared.split.sizes())
    budget = clock.done(
        BUDGET_APPROVAL,
        run_gate(
            budget_gate(run, est, validation.markdown, rows, approval.budget, clock.plan(est)), approval
        ),
    )
    target = TrackingTarget.for_store(home.active_tracking_uri(), run.experiment, home.mlflow_artifacts)
    if not budget.approved:
        return PipelineSummary.stopped_at_budget(run.model_name, target.tracking_uri, est, budget)

    with parent_run(
        target, run.run_name(runtime.flow_run.name), config.model_dump(mode="json"), run.tags
    ) as tracked:
        datasets = log_datasets(
            target, tracked.run_id, prepared.split, label=config.data.target, data_path=str(config.data.path)
        )
        result = sweep(
            prepared,
            transform,
            config.model,
            config.sweep,
            seed=seeds.sweep,
            storage_path=home.ray_results,
            name=run.sweep_name,
        )
        clock.done(SWEEP, log_trials(target, tracked.run_id, result.trials))
        final = finalize(
            result,
            prepared,
            transform,
            config.model,
            config.split,
            config.business,
            config.evaluation,
            seeds,
            model_lookup(config),  # trained from a feature service: it also scores by entity id through it
            baselines,  # fitted on the training split: the blend's members when not cross-validated
        )
        actual = clock.done(CROSS_VALIDATION, actual_from_sweep(result, est.device))
        errors = compare(est, actual)
        champion = load_champion(target, run.model_name)
        evaluation = evaluate(
            final.scorer,
            prepared.split.test,
            prepared.y_test,
            baselines,
            champion,
            features=config.features,
            config=config.evaluation,
            seeds=seeds,
            plots_dir=home.reports / "plots" / tracked.run_id,
            business=config.business,
            held_out=final.held_out(),
            leakage=LeakageCheck(prepared.split.train, prepared.y_train, config.leakage, config.data.target),
        )
        log_metrics(target, tracked.run_id, run_metrics(evaluation, result, est, errors, actual, final))
        log_artifacts(target, tracked.run_id, plot_files(evaluation), folder="plots")
        documents = run_documents(
            config.model_dump(mode="json"), validation.report, validation.markdown, evaluation, est, final
        )
        clock.done(EVALUATION, log_artifacts(target, tracked.run_id, documents))
        lineage = lineage_tags(
            run,
            tracked.run_id,
            rows,
            validation.report,
            result,
            est,
            errors,
            actual,
            budget,
            datasets,
            prepared.split.strategy,
            retrained_from=logged.reference if logged else None,
        )
        version = register_challenger(
            target,
            run.model_name,
            log_model(target, tracked.run_id, final.scorer, prepared.split.test.head(5)),
            tracked.run_id,
            lineage,
        )
        record_serving_integrity(target, version, final.scorer, prepared.split.val)
        card = model_card(
            card_context(
                run,
                version.version,
                config,
                rows,
                validation.report,
                prepared.split.strategy,
                comparison_markdown(clock.compare(reached_only=True)),
            ),
            result,
            final,
            evaluation,
        )
        publish_model_card(target, version, card)
        clock.done(
            REGISTRATION,
            save_drift_reference(
                target, version, prepared, final.scorer, config.features, config.monitoring, seeds.reference
            ),
        )
        policy = decide_promotion(evaluation, config.promotion)
        gate = clock.done(
            PROMOTION_APPROVAL,
            run_gate(
                promotion_gate(
                    run,
                    version.version,
                    est,
                    errors,
                    actual,
                    policy,
                    evaluation,
                    validation.markdown,
                    tracked.link,
                    approval.promotion,
                    final.markdown(),
                    card,
                ),
                approval,
            ),
        )
        decide(target, version, decision_tags(policy, gate, evaluation), approved=gate.approved)
        bento_tag = clock.done(
            PACKAGING,
            (
                package_version(target, version, config.serving, entity_column=config.data.id_column)
                if gate.approved
                else None
            ),
        )
        log_metrics(target, tracked.run_id, phase_metrics(clock.compare()))

    summary = PipelineSummary.of_run(
        run.model_name,
        target.tracking_uri,
        est,
        budget,
        tracked.run_id,
        version.version,
        evaluation,
        gate,
        champion,
        result,
        errors,
        bento_tag,
        clock.compare(),
        final,
    )
    publish_summary(summary_markdown(summary, evaluation))
    return summary
