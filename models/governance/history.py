"""Production history: every move of the ``champion`` and ``candidate`` aliases, one record per move.

Each move is one tag of the registered model, ``history.<time of writing, ns>.<random>`` (time first, so keys
sort in the order the moves were made), whose value is the move as JSON; a record is written once and never rewritten, so a
version that moves twice keeps both moves (the version's own decision and rollback tags are overwritten by
the second). The tags live in the registry's own store, with its backups; Prefect's events expire after 7 days.

Moves made before this record existed are rebuilt from the versions' decision, rollback and A/B tags
(`reconstruct`), marked ``reconstructed``; the registry keeps no time for the first champion's alias itself,
so a reconstructed promotion is dated by its decision.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

PREFIX = "history."
PROMOTION, ROLLBACK, AB_START, AB_STOP = "promotion", "rollback", "ab-start", "ab-stop"


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias: from one version (None: it named none) to another (None: removed)."""

    at: str  # ISO 8601, UTC
    alias: str  # "champion" or "candidate"
    kind: str  # PROMOTION, ROLLBACK, AB_START or AB_STOP
    from_version: str | None
    to_version: str | None
    by: str  # the person, or "policy (<mode>)"
    reason: str
    run: str = ""  # the Prefect flow run (or MLflow run) that made it, when one did
    reconstructed: bool = False  # rebuilt from tags written before this record existed

    def tag(self) -> tuple[str, str]:
        """The registered-model tag that records this move: a key of its own (the time of writing in
        nanoseconds, so keys sort in the order the moves were made, even within one second, then a random
        suffix), the move as JSON."""
        return f"{PREFIX}{time.time_ns():020d}.{secrets.token_hex(4)}", json.dumps(
            asdict(self), sort_keys=True
        )

    def describe(self) -> str:
        moved = f"{self.alias} {_v(self.from_version)} -> {_v(self.to_version)}"
        note = " (reconstructed from tags)" if self.reconstructed else ""
        run = f", run {self.run}" if self.run else ""
        return f"{self.at}  {self.kind:<9} {moved} by {self.by}{run}: {self.reason}{note}"


def _v(version: str | None) -> str:
    return f"v{version}" if version is not None else "none"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_moves(model_tags: Mapping[str, str]) -> list[AliasMove]:
    """The recorded moves in a registered model's tags, in the order they were made (by key)."""
    moves = []
    for key in sorted(k for k in model_tags if k.startswith(PREFIX)):
        try:
            moves.append(AliasMove(**json.loads(model_tags[key])))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"history record {key} is not a move: {exc}") from None
    return moves


def reconstruct(versions: Mapping[str, Mapping[str, str]]) -> list[AliasMove]:
    """Moves rebuilt from each version's tags (``versions``: version -> tags), oldest first.

    Promotions from ``approval.promotion.*`` (approved, with its decision time; the champion it replaced is
    the one promoted before it), rollbacks from ``rollback.restored_*``, A/B starts and stops from
    ``approval.ab.*``. Where a version moved twice only the last of each kind survived in its tags: what the
    tags lost cannot be rebuilt, which is why moves are now recorded one by one.
    """
    found: list[AliasMove] = []
    for version, tags in versions.items():
        if tags.get("approval.promotion.outcome") == "approved" and tags.get("approval.promotion.decided_at"):
            approver = (
                tags.get("approval.promotion.approver")
                or f"policy ({tags.get('approval.promotion.decided_by', '?')})"
            )
            found.append(
                AliasMove(
                    tags["approval.promotion.decided_at"],
                    "champion",
                    PROMOTION,
                    None,
                    version,
                    approver,
                    tags.get("promotion.reason", ""),
                    tags.get("prefect.flow_run_id", ""),
                    True,
                )
            )
        for at_key, alias, kind, by_key, reason_key, was, now_ in (
            ("rollback.restored_at", "champion", ROLLBACK, "rollback.restored_by", "rollback.restored_reason",
             tags.get("rollback.replaced_version"), version),
            ("approval.ab.decided_at", "candidate", AB_START, "approval.ab.approver", "approval.ab.reason",
             None, version),
            ("approval.ab.stopped_at", "candidate", AB_STOP, "approval.ab.stopped_by", "approval.ab.stopped_reason",
             version, None),
        ):  # fmt: skip
            if tags.get(at_key):
                found.append(
                    AliasMove(
                        tags[at_key],
                        alias,
                        kind,
                        was,
                        now_,
                        tags.get(by_key, ""),
                        tags.get(reason_key, ""),
                        reconstructed=True,
                    )
                )
    ordered = sorted(found, key=lambda m: m.at)
    # A promotion replaced whichever version held the champion alias before it.
    champion: str | None = None
    out = []
    for move in ordered:
        if move.kind == PROMOTION:
            move = replace(move, from_version=champion)
        if move.alias == "champion":
            champion = move.to_version
        out.append(move)
    return out


def history(model_tags: Mapping[str, str], versions: Mapping[str, Mapping[str, str]]) -> list[AliasMove]:
    """The model's moves, oldest first: the recorded ones, preceded by those rebuilt from tags that happened
    before the first record and are not themselves recorded (none when every move was recorded).

    A recorded promotion's version also carries its decision's tags, timed when the gate decided, a moment
    before the move was recorded: rebuilt, it would come before the first record as a second copy of it.
    """
    recorded = read_moves(model_tags)
    first = recorded[0].at if recorded else None
    known = {_identity(m) for m in recorded}
    earlier = [
        m for m in reconstruct(versions) if (first is None or m.at < first) and _identity(m) not in known
    ]
    return earlier + recorded


def _identity(move: AliasMove) -> tuple[str, str, str | None]:
    """What a rebuilt move and its record share: the kind, the alias and the version it concerns."""
    return move.kind, move.alias, move.from_version if move.kind == AB_STOP else move.to_version


def served(moves: list[AliasMove], version: str) -> list[tuple[str, str | None]]:
    """When ``version`` was the champion: (from, until) per period, until None while it still is."""
    periods: list[tuple[str, str | None]] = []
    start: str | None = None
    for move in moves:
        if move.alias != "champion":
            continue
        if move.to_version == version and start is None:
            start = move.at
        elif start is not None and move.to_version != version:
            periods.append((start, move.at))
            start = None
    if start is not None:
        periods.append((start, None))
    return periods


SERVICE_HEADING = "## In production"


def with_service_section(card: str, periods: list[tuple[str, str | None]]) -> str:
    """``card`` with its "In production" section (when the version was the champion) replaced or appended."""
    head = card.split(f"\n{SERVICE_HEADING}\n", 1)[0].rstrip()
    lines = [f"- champion from {start} until {end or 'now'}" for start, end in periods] or [
        "- never the champion"
    ]
    return f"{head}\n\n{SERVICE_HEADING}\n" + "\n".join(lines) + "\n"
