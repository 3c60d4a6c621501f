"""Rolling the champion back: which versions may be restored, and what is recorded on the versions.

Pure: `tasks.registry.roll_back` reads the versions' tags, asks `check_rollback`, moves the aliases and
writes `rollback_tags`. A version may become champion again only if it once passed its promotion gate
(tag ``promotion.decision`` = ``approved``): a rejected or never-gated version is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from models.errors import UserInputError

ROLLBACK_EVENT = "mlops.model.rolled_back"


class RollbackRefused(UserInputError):
    """The rollback asked for would put a version in front of traffic that must not be there."""


@dataclass(frozen=True)
class Rollback:
    """One rollback of a registered model's champion, as recorded on its versions and in the event."""

    model: str
    from_version: str  # the champion it replaced
    to_version: str  # the champion now
    by: str
    reason: str
    at: str  # ISO 8601, UTC

    def restored_tags(self) -> dict[str, str]:
        """Tags of the version that is champion again."""
        return {
            "rollback.restored_at": self.at,
            "rollback.restored_by": self.by,
            "rollback.restored_reason": self.reason,
            "rollback.replaced_version": self.from_version,
        }

    def demoted_tags(self) -> dict[str, str]:
        """Tags of the version that was champion until now."""
        return {
            "rollback.demoted_at": self.at,
            "rollback.demoted_by": self.by,
            "rollback.demoted_reason": self.reason,
            "rollback.restored_version": self.to_version,
        }

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def check_rollback(
    model: str, champion: str | None, target: str, target_tags: Mapping[str, str], reason: str
) -> None:
    """Raise `RollbackRefused` naming why ``target`` may not replace ``champion``; pass when it may."""
    if not reason.strip():
        raise RollbackRefused("--reason is required: say why the champion is rolled back (it is recorded)")
    if champion is None:
        raise RollbackRefused(f"{model} has no champion to roll back")
    if target == champion:
        raise RollbackRefused(f"{model} v{target} is already the champion")
    decision = target_tags.get("promotion.decision")
    if decision != "approved":
        why = (
            f"it was {decision} at its promotion gate ({target_tags.get('promotion.reason', 'no reason recorded')})"
            if decision
            else "it never passed a promotion gate"
        )
        raise RollbackRefused(f"{model} v{target} cannot become champion again: {why}")
