"""The automatic promotion policy: may this challenger replace the champion?"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from models.evaluation import EvaluationReport, confidence_percent
from models.params import PromotionPolicy


@dataclass(frozen=True)
class PromotionDecision:
    """The verdict, every check behind it, and a sentence a person can read."""

    promote: bool
    reason: str
    checks: dict[str, bool]
    decided_by: str = "policy"

    def to_dict(self) -> dict:
        return asdict(self)


def decide_promotion(evaluation: EvaluationReport, policy: PromotionPolicy) -> PromotionDecision:
    """Apply ``policy`` to the evaluation: an AUC floor, beating the best baseline, and (when a
    champion exists) a paired AUC gain whose interval lies above zero."""
    challenger_auc = evaluation.metrics["roc_auc"]
    baseline = evaluation.best_baseline
    baseline_name, baseline_auc = baseline.name, baseline.roc_auc.value
    vs_champion, champion_version = evaluation.vs_champion, evaluation.champion_version
    checks = {"min_auc": challenger_auc.value >= policy.min_auc}
    reasons = []
    if not checks["min_auc"]:
        reasons.append(f"test ROC AUC {challenger_auc.value:.4f} is below the floor {policy.min_auc:.4f}")
    if policy.require_beat_baseline:
        checks["beats_baseline"] = challenger_auc.value > baseline_auc
        if not checks["beats_baseline"]:
            reasons.append(
                f"test ROC AUC {challenger_auc.value:.4f} does not beat the {baseline_name} baseline ({baseline_auc:.4f})"
            )
    if champion_version is not None:
        if vs_champion is None:
            checks["beats_champion"] = False
            reasons.append(
                f"champion v{champion_version} could not score this test split, so no paired comparison"
            )
        else:
            gain = vs_champion.low > 0 if policy.require_significant_gain else vs_champion.diff > 0
            checks["beats_champion"] = gain
            if not gain:
                reasons.append(
                    f"AUC gain over champion v{champion_version} is {vs_champion.diff:+.4f} "
                    f"({confidence_percent(vs_champion.confidence)} CI {vs_champion.low:+.4f} to {vs_champion.high:+.4f}), not above zero"
                )
    promote = all(checks.values())
    if promote:
        versus = "beats" if challenger_auc.value > baseline_auc else "does not beat (not required)"
        versus_baseline = f"{versus} the {baseline_name} baseline ({baseline_auc:.4f})"
        if champion_version is None:
            reason = f"first model: test ROC AUC {challenger_auc.value:.4f} {versus_baseline}"
        else:
            reason = (
                f"beats champion v{champion_version} by {vs_champion.diff:+.4f} AUC "
                f"({confidence_percent(vs_champion.confidence)} CI {vs_champion.low:+.4f} to {vs_champion.high:+.4f}); {versus_baseline}"
            )
    else:
        reason = "; ".join(reasons)
    return PromotionDecision(promote=promote, reason=reason, checks=checks)
