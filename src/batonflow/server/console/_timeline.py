"""A run's steps on a time axis, as SVG: one row a step, a bar from its start to its end (or
to now while it runs or waits), coloured by what it is (work, a wait, a retry, a failure).
Drawn on the server, so the page needs no script to show it."""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

from batonflow.server._models import AttemptOut, StepOut

_ROW, _LABEL, _WIDTH, _TOP = 26, 220, 900, 24
_WAITS = frozenset({"sleep", "event", "child"})
_COLOURS = {"work": "#0b5cad", "wait": "#7a5cc0", "failed": "#a3161b", "retried": "#b86e00"}


def _fmt(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def timeline_svg(
    steps: Sequence[StepOut], attempts: Sequence[AttemptOut], start: float, now: float
) -> str:
    """The picture; ``start`` is the run's creation, ``now`` ends open bars."""
    shown = [s for s in steps if s.started_at is not None and s.kind != "value"]
    end = max([now if s.finished_at is None else s.finished_at for s in shown] + [start + 0.001])
    span = end - start
    scale = (_WIDTH - _LABEL - 90) / span
    tries = {a.step_id for a in attempts}
    height = _TOP + _ROW * max(1, len(shown)) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {height}" role="img"'
        f' aria-labelledby="timeline-title" font-family="sans-serif" font-size="12">',
        f'<title id="timeline-title">Timeline of {len(shown)} steps over {_fmt(span)}</title>',
        f'<text x="{_LABEL}" y="14" fill="#4f5963">0</text>',
        f'<text class="dur" x="{_WIDTH - 90}" y="14" fill="#4f5963" text-anchor="end">'
        f"{_fmt(span)}</text>",
    ]
    for row, step in enumerate(shown):
        y = _TOP + row * _ROW
        began = step.started_at or start
        finished = step.finished_at if step.finished_at is not None else now
        x = _LABEL + (began - start) * scale
        width = max(2.0, (finished - began) * scale)
        kind = _kind(step, step.step_id in tries)
        note = _fmt(finished - began) + (f" · {step.attempts} tries" if step.attempts > 1 else "")
        if step.finished_at is None:
            note += " · still open"
        label = escape(f"{step.step_id} {step.name}"[:34])
        parts.append(
            f'<g class="step-{kind}"><text x="4" y="{y + 16}">{label}</text>'
            f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="16" rx="3"'
            f' fill="{_COLOURS[kind]}"><title>{escape(kind)}: {escape(note)}</title></rect>'
            f'<text class="dur" x="{x + width + 4:.1f}" y="{y + 16}" fill="#1b1f24">'
            f"{escape(note)}</text></g>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _kind(step: StepOut, retried: bool) -> str:
    if step.status == "failed":
        return "failed"
    if step.kind in _WAITS:
        return "wait"
    return "retried" if retried else "work"
