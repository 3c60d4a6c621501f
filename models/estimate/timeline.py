"""The run's phases as a plan: start and end offsets, the sweep's 90% range, and estimate against actual.

At the budget gate the phases that already ran (validation, split/features/baselines, the estimate) are
measured; the ones to come are estimated (`ResourceEstimate`), and each approval is a wait "until decided":
the phases after a wait are offsets from that decision, since nobody can say when a person answers.
`PhaseClock` measures the phases of the run itself; `compare_phases` sets them against the plan.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TypeVar

from models.estimate.result import ResourceEstimate

VALIDATION = "validation"
PREPARATION = "split, features, baselines"
ESTIMATE = "estimate"
BUDGET_APPROVAL = "budget approval"
SWEEP = "sweep"
CROSS_VALIDATION = "cross-validation, final model"
EVALUATION = "evaluation"
REGISTRATION = "registration"
PROMOTION_APPROVAL = "promotion approval"
PACKAGING = "packaging"
RUN_START = "the run's start"
T = TypeVar("T")


@dataclass(frozen=True)
class Phase:
    """One phase of the run: ``seconds`` None for a wait for a decision; ``low``/``high`` its 90% range."""

    name: str
    seconds: float | None
    low: float | None = None
    high: float | None = None
    measured: bool = False  # ran before the plan was made: its time is measured, not estimated

    @property
    def is_wait(self) -> bool:
        return self.seconds is None


@dataclass(frozen=True)
class Span:
    """Where a phase falls: offsets in seconds from ``after`` (the run's start or the last decision)."""

    phase: Phase
    after: str
    start: float
    end: float | None  # None: until decided
    end_low: float | None = None  # the end's 90% range, carried from every ranged phase before it
    end_high: float | None = None


@dataclass(frozen=True)
class Timeline:
    """The run's phases in order; laid out as spans by `spans`."""

    phases: list[Phase] = field(default_factory=list)

    def spans(self) -> list[Span]:
        """Each phase after the one before: a wait ends its segment, the next starts at 0 after its decision.

        Within a segment the expected offsets add up; the low and high ends add up the phases' ranges (a phase
        without one adds its expected seconds to both), so a later phase's end carries the sweep's spread.
        """
        spans: list[Span] = []
        after, start, low, high = RUN_START, 0.0, 0.0, 0.0
        for phase in self.phases:
            if phase.seconds is None:  # a wait (is_wait), spelled out for the type checker
                spans.append(Span(phase, after, start, None))
                after, start, low, high = f"the {phase.name}", 0.0, 0.0, 0.0
                continue
            low += phase.seconds if phase.low is None else phase.low
            high += phase.seconds if phase.high is None else phase.high
            end = start + phase.seconds
            spans.append(Span(phase, after, start, end, low, high))
            start = end
        return spans

    def get(self, name: str) -> Phase:
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise KeyError(f"no phase named {name!r}; phases: {', '.join(p.name for p in self.phases)}")

    def to_markdown(self) -> str:
        """The plan as a table: phase, from, to (with the 90% range where one applies), duration, basis."""
        lines = ["| Phase | From | To | Duration | Basis |", "|---|---|---|---|---|"]
        for span in self.spans():
            phase = span.phase
            when = f"{clock(span.start)} after {span.after}"
            if span.end is None:
                lines.append(
                    f"| {phase.name} | {when} | until decided | until decided | a person or the policy |"
                )
                continue
            to = clock(span.end)
            if span.end_low is not None and span.end_high is not None and span.end_high - span.end_low >= 1:
                to += f" (90%: {clock(span.end_low)}-{clock(span.end_high)})"
            duration = clock(phase.seconds or 0.0)
            if phase.low is not None and phase.high is not None:
                duration += f" (90%: {clock(phase.low)}-{clock(phase.high)})"
            basis = "measured" if phase.measured else "estimated"
            lines.append(f"| {phase.name} | {when} | {to} | {duration} | {basis} |")
        return "\n".join(lines)


def clock(seconds: float) -> str:
    """Seconds as m:ss (h:mm:ss from an hour), rounded to the second."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def plan_run(est: ResourceEstimate, measured: dict[str, float]) -> Timeline:
    """The run's phases as the budget gate shows them: ``measured`` (name -> seconds) for the phases that ran,
    the estimate for the rest, each approval a wait."""
    ran = [
        Phase(name, measured[name], measured=True)
        for name in (VALIDATION, PREPARATION, ESTIMATE)
        if name in measured
    ]
    start = est.sweep_start_seconds  # Ray's start and the parent run, before the trials
    low, high = est.sweep_seconds_range
    return Timeline(
        [
            *ran,
            Phase(BUDGET_APPROVAL, None),
            Phase(SWEEP, start + est.sweep_seconds, start + low, start + high),
            Phase(CROSS_VALIDATION, est.cv_seconds),
            Phase(EVALUATION, est.evaluation_seconds),
            Phase(REGISTRATION, est.registration_seconds),
            Phase(PROMOTION_APPROVAL, None),
            Phase(PACKAGING, est.packaging_seconds),
        ]
    )


class PhaseClock:
    """Measures a run's phases: `mark(name)` charges the time since the last mark (or the start) to ``name``;
    `done(name, value)` marks and passes ``value`` on, so a flow marks a phase where its last step returns.
    `plan` keeps the plan the budget gate showed; `compare` sets the phases measured so far against it."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self.seconds: dict[str, float] = {}
        self.planned = Timeline()

    def done(self, name: str, value: T) -> T:
        self.mark(name)
        return value

    def plan(self, est: ResourceEstimate) -> Timeline:
        """The run's plan from ``est`` and the phases measured so far (see `plan_run`), kept for `compare`."""
        self.planned = plan_run(est, self.seconds)
        return self.planned

    def compare(self, *, reached_only: bool = False) -> list[PhaseComparison]:
        rows = compare_phases(self.planned, self.seconds)
        return [row for row in rows if row.actual is not None] if reached_only else rows

    def mark(self, name: str) -> float:
        now = time.monotonic()
        spent = now - self._last
        self.seconds[name] = self.seconds.get(name, 0.0) + spent
        self._last = now
        return spent


@dataclass(frozen=True)
class PhaseComparison:
    """One phase, estimated against actual; ``error`` (estimate - actual) / actual, NaN where not comparable."""

    name: str
    estimated: float | None  # None: a wait
    low: float | None
    high: float | None
    actual: float | None  # None: the phase has not run (a rejected gate stops the run)
    measured_before: bool  # the plan already held its measured time

    @property
    def error(self) -> float:
        if self.estimated is None or self.actual is None or self.measured_before or self.actual <= 0:
            return float("nan")
        return (self.estimated - self.actual) / self.actual

    @property
    def within_range(self) -> bool | None:
        if self.low is None or self.high is None or self.actual is None:
            return None
        return self.low <= self.actual <= self.high


def compare_phases(plan: Timeline, actual: dict[str, float]) -> list[PhaseComparison]:
    """Every phase of the plan with its actual seconds (None for a phase the run did not reach)."""
    return [
        PhaseComparison(
            phase.name, phase.seconds, phase.low, phase.high, actual.get(phase.name), phase.measured
        )
        for phase in plan.phases
    ]


def comparison_markdown(rows: list[PhaseComparison]) -> str:
    """Estimate against actual per phase, as the run's summary and the model card show it."""
    lines = ["| Phase | Estimated | Actual | Error |", "|---|---|---|---|"]
    for row in rows:
        if row.estimated is None:
            estimated = "until decided"
        else:
            estimated = clock(row.estimated) + (
                f" (90%: {clock(row.low)}-{clock(row.high)})"
                if row.low is not None and row.high is not None
                else ""
            )
            if row.measured_before:
                estimated = "measured before the plan"
        actual = "not reached" if row.actual is None else clock(row.actual)
        if row.within_range is not None:
            actual += " (inside the range)" if row.within_range else " (outside the range)"
        error = f"{row.error:+.0%}" if math.isfinite(row.error) else ""
        lines.append(f"| {row.name} | {estimated} | {actual} | {error} |")
    return "\n".join(lines)


def phase_metrics(rows: list[PhaseComparison]) -> dict[str, float]:
    """MLflow metrics: ``phase/<key>/seconds`` for every phase that ran, ``phase/<key>/error`` where comparable."""
    out: dict[str, float] = {}
    for row in rows:
        key = metric_key(row.name)
        if row.actual is not None:
            out[f"phase/{key}/seconds"] = row.actual
        if math.isfinite(row.error):
            out[f"phase/{key}/error"] = row.error
    return out


def metric_key(name: str) -> str:
    """A phase's name as an MLflow metric key part: ``cross-validation, final model`` -> ``cross_validation_final_model``."""
    return "_".join("".join(c if c.isalnum() else " " for c in name).split()).lower()
