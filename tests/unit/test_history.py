"""Production history records (models/governance/history.py): keys in time order, one per move, read back."""

from __future__ import annotations

import pytest

from models.governance.history import (
    PROMOTION,
    ROLLBACK,
    SERVICE_HEADING,
    AliasMove,
    history,
    read_moves,
    served,
    with_service_section,
)


def _move(at: str, to: str, kind: str = PROMOTION, frm: str | None = None) -> AliasMove:
    return AliasMove(at, "champion", kind, frm, to, "ada", "why")


def test_records_are_keyed_in_the_order_they_were_made_and_read_back() -> None:
    first, second = _move("2026-12-06T10:00:00+00:00", "1"), _move("2026-12-06T10:00:00+00:00", "2")
    written = [first.tag(), second.tag()]  # the same second: the key's nanoseconds keep them in order
    tags = dict([written[1], ("owner", "crm team"), written[0]])
    assert written[0][0] < written[1][0] and written[0][0].startswith("history.")
    assert read_moves(tags) == [first, second]
    with pytest.raises(ValueError, match="history.x is not a move"):
        read_moves({"history.x": '{"at": "now"}'})


def test_recorded_moves_follow_the_ones_rebuilt_from_older_tags() -> None:
    recorded = _move("2026-12-05T00:00:00+00:00", "3", frm="2")
    versions = {
        "1": {
            "approval.promotion.outcome": "approved",
            "approval.promotion.decided_at": "2026-12-01T00:00:00+00:00",
        },
        # Decided after the first record: the record itself holds it, the tags do not add it twice.
        "3": {
            "approval.promotion.outcome": "approved",
            "approval.promotion.decided_at": "2026-12-05T00:00:00+00:00",
        },
    }
    moves = history(dict([recorded.tag()]), versions)
    assert [(m.to_version, m.reconstructed) for m in moves] == [("1", True), ("3", False)]
    assert moves[0].by == "policy (?)"
    # The gate decides a moment before the promotion is recorded: its tags are older than the record, and
    # still the record is the only copy of that move (it was listed twice, found by a test whose literal
    # decision times the clock overtook).
    versions["3"]["approval.promotion.decided_at"] = "2026-12-04T23:59:59+00:00"
    moves = history(dict([recorded.tag()]), versions)
    assert [(m.to_version, m.reconstructed) for m in moves] == [("1", True), ("3", False)]


def test_served_periods_and_the_cards_section() -> None:
    moves = [
        _move("t1", "1"),
        _move("t2", "2", frm="1"),
        AliasMove("t3", "candidate", "ab-start", None, "1", "bob", "try"),  # the candidate alias: not service
        _move("t4", "1", ROLLBACK, frm="2"),
    ]
    assert served(moves, "1") == [("t1", "t2"), ("t4", None)] and served(moves, "9") == []
    card = with_service_section("# Model card\n\nbody", served(moves, "1"))
    assert card.endswith(f"{SERVICE_HEADING}\n- champion from t1 until t2\n- champion from t4 until now\n")
    again = with_service_section(card, [("t1", "t2")])  # replaced, not appended twice
    assert again.count(SERVICE_HEADING) == 1 and again.startswith("# Model card\n\nbody\n\n")
    assert with_service_section("", []).endswith("- never the champion\n")
