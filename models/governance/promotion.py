"""The automatic promotion policy: may this challenger replace the champion?"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from models.evaluation.bootstrap import confidence_percent
from models.evaluation.evaluate import EvaluationReport
from models.governance.config import PromotionPolicy


@dataclass(frozen=True)
class PromotionDecision:
    """The verdict, every check behind it, and a sentence a person can read."""

    promote: bool
    reason: str
    checks: dict[str, bool]
    decided_by: str = "policy"
    # What only a person can judge (e.g. possible target leakage): the gate waits for one when the policy
    # would promote.
    human_reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def decide_promotion(evaluation: EvaluationReport, policy: PromotionPolicy) -> PromotionDecision:
    """Apply ``policy`` to the evaluation: an AUC floor, non-inferiority to every baseline (the paired
    interval of the AUC difference above ``-baseline_margin``), and (when a champion exists) a paired AUC
    gain whose interval lies above zero. With ``policy.leakage_needs_human``, features flagged as possible
    target leakage and not confirmed safe become a reason for a person to decide."""
    challenger_auc = evaluation.metrics["roc_auc"]
    baseline = evaluation.best_baseline
    baseline_name, baseline_auc = baseline.name, baseline.roc_auc.value
    vs_champion, champion_version = evaluation.vs_champion, evaluation.champion_version
    checks = {"min_auc": challenger_auc.value >= policy.min_auc}
    reasons = []
    if not checks["min_auc"]:
        reasons.append(f"test ROC AUC {challenger_auc.value:.4f} is below the floor {policy.min_auc:.4f}")
    if policy.require_beat_baseline:
        evidence = evaluation.non_inferiority or evaluation.vs_baselines
        inferior = {name: cmp for name, cmp in evidence.items() if not cmp.low > -policy.baseline_margin}
        checks["holds_own_vs_baselines"] = not inferior
        for name, cmp in inferior.items():
            reasons.append(
                f"not non-inferior to the {name} baseline: AUC difference {cmp.diff:+.4f} "
                f"({confidence_percent(cmp.confidence)} CI {cmp.low:+.4f} to {cmp.high:+.4f}) reaches below "
                f"-{policy.baseline_margin:g}"
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
        best = (evaluation.non_inferiority or evaluation.vs_baselines).get(baseline_name)
        if best is None or not policy.require_beat_baseline:
            versus = "beats" if challenger_auc.value > baseline_auc else "does not beat (not required)"
            versus_baseline = f"{versus} the {baseline_name} baseline ({baseline_auc:.4f})"
        else:
            # "beats" only when the evidence says so; otherwise what the check showed: non-inferiority.
            held = "beats" if best.low > 0 else "holds its own against"
            versus_baseline = (
                f"{held} the {baseline_name} baseline ({baseline_auc:.4f}; difference {best.diff:+.4f}, "
                f"{confidence_percent(best.confidence)} CI {best.low:+.4f} to {best.high:+.4f}, "
                f"margin {policy.baseline_margin:g}, on {evaluation.non_inferiority_rows or 'the test rows'})"
            )
        if champion_version is None:
            reason = f"first model: test ROC AUC {challenger_auc.value:.4f} {versus_baseline}"
        else:
            reason = (
                f"beats champion v{champion_version} by {vs_champion.diff:+.4f} AUC "
                f"({confidence_percent(vs_champion.confidence)} CI {vs_champion.low:+.4f} to {vs_champion.high:+.4f}); {versus_baseline}"
            )
    else:
        reason = "; ".join(reasons)
    human = evaluation.leakage.human_reason() if evaluation.leakage is not None else None
    human_reasons = [human] if human and policy.leakage_needs_human else []
    return PromotionDecision(promote=promote, reason=reason, checks=checks, human_reasons=human_reasons)
