"""The run's timeline as a chart (PNG) for the budget gate's evidence: one bar per phase, in order.

Waits for a decision have no length: each is drawn as a hatched bar of a fixed width marked "until
decided", and the phases after it continue from its end, so the chart reads as "this long, then a
decision, then this long". A phase with a 90% range (the sweep) carries it as a whisker at its end.
Built on an Agg canvas (no pyplot state), like the evaluation plots.
"""

from __future__ import annotations

import base64
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.estimate.timeline import Timeline, clock

_MEASURED, _ESTIMATED, _WAIT = "#7f7f7f", "#1f77b4", "#ffffff"


def timeline_png(timeline: Timeline) -> bytes:
    """The chart as PNG bytes."""
    spans = timeline.spans()
    timed = [span.phase.seconds or 0.0 for span in spans]
    wait_width = max(sum(timed) * 0.12, 1.0)  # drawn width of a wait, in seconds of the axis
    fig = Figure(figsize=(7.5, 0.42 * len(spans) + 1.3), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = 0.0
    for row, span in enumerate(spans):
        phase = span.phase
        if phase.seconds is None:
            ax.barh(row, wait_width, left=x, color=_WAIT, edgecolor="black", hatch="//", linewidth=0.8)
            ax.text(x + wait_width * 1.05, row, "until decided", va="center", fontsize=8)
            x += wait_width
            continue
        color = _MEASURED if phase.measured else _ESTIMATED
        ax.barh(row, max(phase.seconds, wait_width * 0.02), left=x, color=color)
        if phase.low is not None and phase.high is not None:
            ax.errorbar(
                x + phase.seconds,
                row,
                xerr=[[phase.seconds - phase.low], [phase.high - phase.seconds]],
                fmt="none",
                ecolor="black",
                capsize=4,
                linewidth=1,
            )
        label = clock(phase.seconds)
        if phase.low is not None and phase.high is not None:
            label += f" (90%: {clock(phase.low)}-{clock(phase.high)})"
        ax.text(
            x + max(phase.high or 0.0, phase.seconds) + wait_width * 0.05, row, label, va="center", fontsize=8
        )
        x += phase.seconds
    ax.set_yticks(range(len(spans)), [span.phase.name for span in spans], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, x * 1.35)
    ax.set_xlabel("seconds of run time (waits not to scale)")
    ax.set_title("Run timeline: grey measured, blue estimated, hatched a wait for a decision", fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format="png")
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """The PNG inline in markdown (a data URI), as the Prefect UI renders an artifact's images."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
