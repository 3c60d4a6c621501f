"""Which versions a rollback may restore, and what it records (models/governance/rollback.py)."""

from __future__ import annotations

import pytest

from models.governance.rollback import Rollback, RollbackRefused, check_rollback

APPROVED = {"promotion.decision": "approved"}


def test_an_approved_earlier_version_may_be_restored() -> None:
    check_rollback("m", champion="3", target="2", target_tags=APPROVED, reason="bad conversions")


@pytest.mark.parametrize(
    ("champion", "target", "tags", "reason", "message"),
    [
        ("3", "2", APPROVED, "  ", "--reason is required"),
        (None, "2", APPROVED, "why", "m has no champion to roll back"),
        ("3", "3", APPROVED, "why", "m v3 is already the champion"),
        (
            "3",
            "2",
            {"promotion.decision": "rejected", "promotion.reason": "AUC below the champion"},
            "why",
            "m v2 cannot become champion again: it was rejected at its promotion gate (AUC below the champion)",
        ),
        ("3", "2", {}, "why", "m v2 cannot become champion again: it never passed a promotion gate"),
    ],
    ids=["no-reason", "no-champion", "already-champion", "rejected", "never-gated"],
)
def test_refusals_name_the_reason(champion, target, tags, reason, message) -> None:
    with pytest.raises(RollbackRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_rollback("m", champion=champion, target=target, target_tags=tags, reason=reason)


def test_both_versions_record_the_rollback() -> None:
    record = Rollback(
        model="m", from_version="3", to_version="2", by="ops", reason="drop", at="2026-12-02T10:00:00+00:00"
    )
    assert record.restored_tags() == {
        "rollback.restored_at": record.at,
        "rollback.restored_by": "ops",
        "rollback.restored_reason": "drop",
        "rollback.replaced_version": "3",
    }
    assert record.demoted_tags()["rollback.restored_version"] == "2"
    assert record.to_dict()["from_version"] == "3"
