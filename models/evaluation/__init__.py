"""Pure evaluation of binary classifiers: bootstrap intervals, paired tests, calibration, slices,
robustness and permutation importance.

Everything here takes plain arrays or frames and returns frozen dataclasses of built-in Python types,
so results can be logged with ``dataclasses.asdict`` + ``json.dumps`` by whichever flow calls it.
No orchestration or tracking library is imported on purpose: these functions are the pure core that
tasks wrap.

Modules, one concept each: ``bootstrap`` (intervals and the paired AUC test), ``ranking`` (the
count-weighted AUC/AP kernel they share with the slices), ``calibration``, ``business`` (profit),
``diagnostics`` (slices, robustness, permutation importance) and ``report`` (``evaluate_model`` and
the ``EvaluationReport`` it returns for a trained model).
"""

from models.evaluation.bootstrap import (
    MetricInterval,
    PairedComparison,
    bootstrap_metrics,
    confidence_percent,
    paired_bootstrap_auc,
)
from models.evaluation.business import (
    BusinessOutcome,
    BusinessReport,
    Gains,
    ProfitCurve,
    ThresholdChoice,
    business_report,
    contact_decisions,
    gains,
    optimal_threshold,
    outcome_at,
    profit_curve,
)
from models.evaluation.calibration import Calibration, calibration
from models.evaluation.diagnostics import (
    MISSING_SLICE,
    FeatureImportance,
    RobustnessResult,
    ScoreFn,
    SliceMetric,
    permutation_importance,
    robustness,
    slice_metrics,
)
from models.evaluation.report import BaselineScore, ChampionModel, EvaluationReport, HeldOut, evaluate_model

__all__ = [
    "MISSING_SLICE",
    "BaselineScore",
    "BusinessOutcome",
    "BusinessReport",
    "Calibration",
    "ChampionModel",
    "EvaluationReport",
    "FeatureImportance",
    "HeldOut",
    "Gains",
    "MetricInterval",
    "PairedComparison",
    "ProfitCurve",
    "RobustnessResult",
    "ScoreFn",
    "SliceMetric",
    "ThresholdChoice",
    "bootstrap_metrics",
    "business_report",
    "calibration",
    "confidence_percent",
    "contact_decisions",
    "evaluate_model",
    "gains",
    "optimal_threshold",
    "outcome_at",
    "paired_bootstrap_auc",
    "permutation_importance",
    "profit_curve",
    "robustness",
    "slice_metrics",
]
