"""Business value of a binary classifier's scores: contacts, conversions, profit and ROI.

The model is the one an approver reasons with (see ``BusinessConfig``): contacting a row costs
``cost_per_contact``, a contacted positive yields ``value_per_conversion``, an uncontacted row yields
nothing, so ``profit = value * conversions - cost * contacts`` and ``ROI = profit / (cost * contacts)``.
ROI is ``None`` (not NaN, which JSON cannot carry) when nothing is spent: no contacts, or free ones.

Decisions: contact a row when ``score >= threshold``; with a capacity, only the ``capacity``
highest-scored eligible rows of each batch of ``batch_rows`` consecutive rows (ties by position).
"Contact no one" is a threshold just above the highest score, so it is on every curve and the best
profit is never negative.

With priority by score, a row is contacted at threshold ``t`` exactly when its score is ``>= t`` and
its rank by score within its batch is below the capacity: the capacity only removes rows, whatever the
threshold. So the profit curve is exact over every distinct score, with or without a capacity, from one
sort and cumulative sums. The bootstrap reuses that kernel on count-weighted resamples (as in
``bootstrap``): no per-resample Python loop or sort.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from models.artifact.decision import contact_decisions as decide
from models.evaluation.bootstrap import (
    MetricInterval,
    _check_confidence,
    _check_resamples,
    _chunks,
    confidence_percent,
    percentile_interval,
)
from models.evaluation.checks import as_labels, as_scores
from models.evaluation.config import BusinessConfig
from models.evaluation.gains import Gains, gains

# Profits are products of float prices and integer counts, so two thresholds with mathematically equal
# profit can differ in the last bits (0.3 * 3 - 0.1 * 3 < 0.3 * 5 - 0.1 * 9). Profits within this
# fraction of the largest possible amount count as ties, so the tie rule (highest threshold) holds.
_TIE_RTOL = 1e-12


@dataclass(frozen=True)
class BusinessOutcome:
    """What one contact policy yields on a set of rows.

    ``threshold`` is the score a row needs to be contacted (``score >= threshold``); for "contact no
    one" it lies just above the highest score. ``roi`` is ``None`` when nothing was spent.
    """

    threshold: float
    contacts: int
    contact_rate: float  # contacts / rows
    conversions: int  # contacted positives
    profit: float
    roi: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging."""
        return asdict(self)


@dataclass(frozen=True)
class ProfitCurve:
    """Profit at every distinct threshold, ascending; the last point is "contact no one" (profit 0).

    Between two listed thresholds the profit is that of the higher one (contact when ``score >=
    threshold``). ``best_index`` is the profit-maximising point; on ties the highest threshold, which
    is the fewest contacts.
    """

    thresholds: list[float]
    profit: list[float]
    contacts: list[int]
    best_index: int
    currency: str

    @property
    def best_threshold(self) -> float:
        return self.thresholds[self.best_index]

    @property
    def best_profit(self) -> float:
        return self.profit[self.best_index]

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging."""
        return asdict(self)


@dataclass(frozen=True)
class ThresholdChoice:
    """The profit-maximising threshold on some data, with percentile-bootstrap intervals.

    ``threshold.value`` and ``profit.value`` are the point optimum on the full data; ``low``/``high``
    come from re-optimising the threshold on every resample. The profit interval is optimistic: it is
    the profit of a threshold tuned on the very rows it is measured on.
    """

    threshold: MetricInterval
    profit: MetricInterval
    contacts: int  # at the point optimum

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging."""
        return asdict(self)


def _as_array(values: Any, name: str) -> np.ndarray:
    """A 1-D finite float array of any length, zero and one included (one request may be one row)."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _check_threshold(threshold: float) -> None:
    if math.isnan(threshold):
        raise ValueError("threshold is NaN")


def _batch_size(config: BusinessConfig, n: int) -> int:
    """Rows per capacity batch; the whole array when ``batch_rows`` is unset."""
    return config.batch_rows if config.batch_rows is not None else max(n, 1)


def contacts_at(
    scores: np.ndarray, threshold: float, config: BusinessConfig, order: np.ndarray | None = None
) -> np.ndarray:
    """Which rows to contact: ``score >= threshold``, within the capacity of each batch.

    With ``config.capacity``, the rows are cut into batches of ``config.batch_rows`` consecutive rows
    (the whole array when unset; the last batch may be shorter) and in each batch only the
    ``capacity`` eligible rows of highest priority are contacted. The priority is ``order`` (higher
    first) or, when ``None``, the score itself; ties go to the earlier row, so the result is
    deterministic. Any length works, including 0 and 1, so a service can pass one request as one batch.
    Returns a boolean array aligned with ``scores``.
    """
    s = _as_array(scores, "scores")
    _check_threshold(threshold)
    if order is not None:
        order = _as_array(order, "order")
    return decide(s, threshold, config.capacity, config.batch_rows, order)


def _outcome(
    y: np.ndarray, contacted: np.ndarray, threshold: float, config: BusinessConfig
) -> BusinessOutcome:
    contacts = int(contacted.sum())
    conversions = int(y[contacted].sum())
    profit = config.value_per_conversion * conversions - config.cost_per_contact * contacts
    spent = config.cost_per_contact * contacts
    return BusinessOutcome(
        threshold=float(threshold),
        contacts=contacts,
        contact_rate=contacts / y.size,
        conversions=conversions,
        profit=float(profit),
        roi=float(profit / spent) if spent > 0 else None,
    )


def outcome_at(
    y_true: np.ndarray, y_score: np.ndarray, threshold: float, config: BusinessConfig
) -> BusinessOutcome:
    """Contacts, conversions, profit and ROI of contacting by ``contacts_at`` at ``threshold``."""
    y = as_labels(y_true)
    s = as_scores(y_score, y.size)
    return _outcome(y, contacts_at(s, threshold, config), threshold, config)


def _no_one_threshold(s: np.ndarray) -> float:
    """The smallest float above every score: contacting at it reaches no one, and it stays JSON-safe."""
    return float(np.nextafter(s.max(), np.inf))


@dataclass(frozen=True)
class _Batches:
    """Capacity bookkeeping: rows by (batch, score descending, position), the layout's batch order."""

    capacity: int
    order: np.ndarray  # (n,) rows in batch order
    first: np.ndarray  # (n,) for each batch-order slot, the first slot of its batch
    to_score: np.ndarray  # (n,) for each score-order slot, its slot in batch order


@dataclass(frozen=True)
class _Layout:
    """Sort orders computed once for the curve kernel, shared by the point estimate and every resample."""

    score_order: np.ndarray  # (n,) rows by score descending, ties by position
    y_sorted: np.ndarray  # (n,) labels in score_order
    group_ends: np.ndarray  # (g,) last slot in score_order of each distinct score
    thresholds: np.ndarray  # (g + 1,) descending: "no one", then the distinct scores
    batches: _Batches | None  # None without a capacity


def _layout(y: np.ndarray, s: np.ndarray, config: BusinessConfig) -> _Layout:
    n = s.size
    score_order = np.argsort(-s, kind="stable")
    s_sorted = s[score_order]
    group_ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    thresholds = np.r_[_no_one_threshold(s), s_sorted[group_ends]]
    batches = None
    if config.capacity is not None:
        size = _batch_size(config, n)
        position = np.arange(n)
        batch = position // size
        order = np.lexsort((position, -s, batch))
        slot = np.empty(n, dtype=np.int64)
        slot[order] = position
        batches = _Batches(config.capacity, order, batch[order] * size, slot[score_order])
    return _Layout(score_order, y[score_order], group_ends, thresholds, batches)


def _contacts_conversions(w: np.ndarray, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Weighted contacts and conversions at each threshold of ``layout``, shape (r, g + 1) each.

    ``w`` (r, n) holds row multiplicities in the original order (a row of ones is the full data). With
    a capacity, the first ``capacity`` units of weight of each batch in score order are contactable;
    every threshold then contacts the contactable weight at or above it.
    """
    b = layout.batches
    if b is None:
        contactable = w[:, layout.score_order]
    else:
        wb = w[:, b.order]  # (r, n) in batch order
        before = np.cumsum(wb, axis=1) - wb  # weight ahead of each slot, all batches
        within = before - before[:, b.first]  # ... ahead of it in its own batch
        contactable = np.clip(b.capacity - within, 0.0, wb)[:, b.to_score]
    zeros = np.zeros((w.shape[0], 1))
    contacts = np.cumsum(contactable, axis=1)[:, layout.group_ends]
    conversions = np.cumsum(contactable * layout.y_sorted, axis=1)[:, layout.group_ends]
    return np.hstack([zeros, contacts]), np.hstack([zeros, conversions])


def _profits(contacts: np.ndarray, conversions: np.ndarray, config: BusinessConfig) -> np.ndarray:
    return config.value_per_conversion * conversions - config.cost_per_contact * contacts


def _best(profit: np.ndarray, total_weight: np.ndarray, config: BusinessConfig) -> np.ndarray:
    """Per resample, the first (highest-threshold) column within tie tolerance of the maximum profit."""
    scale = (config.value_per_conversion + config.cost_per_contact) * total_weight  # (r,)
    top = profit.max(axis=1) - _TIE_RTOL * scale
    return np.argmax(profit >= top[:, None], axis=1)


def profit_curve(y_true: np.ndarray, y_score: np.ndarray, config: BusinessConfig) -> ProfitCurve:
    """Profit at every distinct threshold plus "contact no one", and the profit-maximising point.

    Exact and vectorised with or without a capacity (one sort, cumulative sums; see the module
    docstring). On ties of profit the highest threshold wins: the fewest contacts for the same money.
    """
    y = as_labels(y_true)
    s = as_scores(y_score, y.size)
    layout = _layout(y, s, config)
    contacts, conversions = _contacts_conversions(np.ones((1, y.size)), layout)
    profit = _profits(contacts, conversions, config)
    best = int(_best(profit, np.array([float(y.size)]), config)[0])
    return ProfitCurve(
        thresholds=[float(t) for t in layout.thresholds[::-1]],
        profit=[float(p) for p in profit[0, ::-1]],
        contacts=[int(c) for c in contacts[0, ::-1]],
        best_index=layout.thresholds.size - 1 - best,
        currency=config.currency,
    )


def _stratified_counts(
    rng: np.random.Generator, rows: int, first: np.ndarray, size: np.ndarray
) -> np.ndarray:
    """Bootstrap multiplicities (rows, n), each row drawn from its own batch ``[first, first + size)``."""
    n = first.size
    idx = first + rng.integers(0, size, size=(rows, n))  # (rows, n) indices, per-column batch bounds
    idx += (np.arange(rows) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)


def optimal_threshold(
    y_true: np.ndarray,
    y_score: np.ndarray,
    config: BusinessConfig,
    *,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> ThresholdChoice:
    """The profit-maximising threshold on these rows, with percentile-bootstrap intervals.

    Each resample draws rows with replacement and re-optimises the threshold, so the interval shows
    how much the best threshold (and its profit) moves with the sample. With batches of
    ``batch_rows``, rows are drawn within their own batch, so every batch keeps its size and the
    capacity keeps its meaning. Resampled thresholds are points of the full data's curve ("contact no
    one" is the full data's, above every score). Vectorised over resamples in chunks; seeded with
    ``np.random.default_rng(seed)``.
    """
    y = as_labels(y_true)
    s = as_scores(y_score, y.size)
    _check_resamples(n_resamples)
    _check_confidence(confidence)
    n = y.size
    layout = _layout(y, s, config)

    def optimise(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        contacts, conversions = _contacts_conversions(w, layout)
        profit = _profits(contacts, conversions, config)
        best = _best(profit, w.sum(axis=1), config)
        rows = np.arange(w.shape[0])
        return layout.thresholds[best], profit[rows, best], contacts[rows, best]

    point_t, point_p, point_c = optimise(np.ones((1, n)))
    size = _batch_size(config, n) if config.capacity is not None else n
    first = (np.arange(n) // size) * size
    rng = np.random.default_rng(seed)
    parts = [
        optimise(_stratified_counts(rng, rows, first, np.minimum(size, n - first)))
        for rows in _chunks(n_resamples, n)
    ]
    return ThresholdChoice(
        threshold=percentile_interval(float(point_t[0]), np.concatenate([p[0] for p in parts]), confidence),
        profit=percentile_interval(float(point_p[0]), np.concatenate([p[1] for p in parts]), confidence),
        contacts=int(point_c[0]),
    )


@dataclass(frozen=True)
class BusinessReport:
    """The money view of a model on the test split, next to the champion and the trivial policies.

    ``model`` is the outcome at the saved threshold (chosen on validation data); ``optimal`` is the best
    threshold on these same rows, for reference only: how far the saved threshold is from the best in
    hindsight. With a capacity, ``contact_all`` contacts the first ``capacity`` rows of each batch in
    the given order (unranked): contacting everyone is impossible, and ranking would be the model's work.
    ``break_even`` is ``cost / value``, the optimal threshold for perfectly calibrated scores without a
    capacity (contact when the expected value ``p * value`` covers the cost).
    """

    config: BusinessConfig
    rows: int
    model: BusinessOutcome
    optimal: ThresholdChoice
    champion: BusinessOutcome | None
    contact_all: BusinessOutcome
    contact_none: BusinessOutcome
    break_even: float
    gains: Gains
    champion_gains: Gains | None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON logging: no NaN (undefined values are ``None``)."""
        data = asdict(self)
        data["config"] = self.config.model_dump()
        return data

    def flat_metrics(self) -> dict[str, float]:
        """``business/profit``, ``business/optimal_threshold_low`` ... for MLflow; finite values only."""
        o = self.optimal
        out: dict[str, float | None] = {
            "business/profit": self.model.profit,
            "business/roi": self.model.roi,
            "business/contacts": float(self.model.contacts),
            "business/contact_rate": self.model.contact_rate,
            "business/conversions": float(self.model.conversions),
            "business/threshold": self.model.threshold,
            "business/optimal_threshold": o.threshold.value,
            "business/optimal_threshold_low": o.threshold.low,
            "business/optimal_threshold_high": o.threshold.high,
            "business/optimal_profit": o.profit.value,
            "business/optimal_profit_low": o.profit.low,
            "business/optimal_profit_high": o.profit.high,
            "business/profit_contact_all": self.contact_all.profit,
            "business/break_even": self.break_even,
            "business/captured_top10": self.gains.captured_at(0.1),
            "business/lift_top10": self.gains.lift_at(0.1),
        }
        if self.champion is not None:
            out["business/profit_champion"] = self.champion.profit
            out["business/roi_champion"] = self.champion.roi
        return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}

    def markdown(self) -> str:
        """A table of the contact policies, then the best threshold in hindsight, break-even and gains."""

        def row(name: str, o: BusinessOutcome, threshold: str) -> str:
            roi = "—" if o.roi is None else f"{o.roi:.1%}"
            return f"| {name} | {threshold} | {o.contacts:,} | {o.conversions:,} | {o.profit:,.2f} | {roi} |"

        cfg = self.config
        lines = [
            f"### Business value ({cfg.currency})",
            "",
            f"{self.rows:,} rows; a contact costs {cfg.cost_per_contact:,.2f}, "
            f"a conversion is worth {cfg.value_per_conversion:,.2f}.",
        ]
        if cfg.capacity is not None:
            batch = f"batch of {cfg.batch_rows:,} rows" if cfg.batch_rows is not None else "scored table"
            lines.append(
                f"Capacity: at most {cfg.capacity:,} contacts per {batch}, highest scores first; "
                f"'contact everyone' takes the first {cfg.capacity:,} rows of each batch, unranked."
            )
        lines += [
            "",
            "| policy | threshold | contacts | conversions | profit | ROI |",
            "|---|---|---|---|---|---|",
            row("model (saved threshold)", self.model, f"{self.model.threshold:.4f}"),
        ]
        if self.champion is not None:
            lines.append(row("champion", self.champion, f"{self.champion.threshold:.4f}"))
        lines += [
            row("contact everyone", self.contact_all, "—"),
            row("contact no one", self.contact_none, "—"),
            "",
        ]
        t, p = self.optimal.threshold, self.optimal.profit
        level = confidence_percent(t.confidence)
        lines.append(
            f"Profit-maximising threshold on this data: {t.value:.4f} ({level} bootstrap interval "
            f"{t.low:.4f} – {t.high:.4f}), profit {p.value:,.2f} ({level}: {p.low:,.2f} – {p.high:,.2f}; "
            f"optimistic, tuned on these rows). Break-even probability (cost / value): {self.break_even:.4f}."
        )
        lines.append(f"Gains: {_gains_text('model', self.gains)}")
        if self.champion_gains is not None:
            lines[-1] += f"; {_gains_text('champion', self.champion_gains)}"
        lines[-1] += "."
        return "\n".join(lines)


def _gains_text(name: str, g: Gains) -> str:
    return (
        f"the {name}'s top 10% of scores capture {g.captured_at(0.1):.1%} of positives "
        f"(lift {g.lift_at(0.1):.2f}), its top 20% {g.captured_at(0.2):.1%}"
    )


def business_report(
    y_true: np.ndarray,
    y_score: np.ndarray,
    config: BusinessConfig,
    *,
    threshold: float,
    champion_scores: np.ndarray | None = None,
    champion_threshold: float | None = None,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> BusinessReport:
    """Profit of the model at its saved ``threshold`` on the test rows, against the alternatives.

    ``threshold`` comes from validation data (saved with the model); the champion is judged at its own
    ``champion_threshold``, or at ``threshold`` when that is ``None``. See ``BusinessReport`` for the
    trivial policies and the break-even probability. Needs at least one positive (for the gains).
    """
    y = as_labels(y_true)
    s = as_scores(y_score, y.size)
    _check_threshold(threshold)
    n = y.size
    champion = champion_gains = None
    if champion_scores is not None:
        c = as_scores(champion_scores, n, "champion_scores")
        c_threshold = threshold if champion_threshold is None else champion_threshold
        champion = outcome_at(y, c, c_threshold, config)
        champion_gains = gains(y, c)
    # Scores are probabilities, so 0 makes every row eligible; priority by position = unranked.
    everyone = contacts_at(s, 0.0, config, order=-np.arange(n, dtype=np.float64))
    return BusinessReport(
        config=config,
        rows=n,
        model=outcome_at(y, s, threshold, config),
        optimal=optimal_threshold(y, s, config, n_resamples=n_resamples, seed=seed, confidence=confidence),
        champion=champion,
        contact_all=_outcome(y, everyone, 0.0, config),
        contact_none=_outcome(y, np.zeros(n, dtype=bool), _no_one_threshold(s), config),
        break_even=config.cost_per_contact / config.value_per_conversion,
        gains=gains(y, s),
        champion_gains=champion_gains,
    )
