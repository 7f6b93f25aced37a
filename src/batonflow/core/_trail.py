"""Audit entries raised by code running inside a step (a model call, an outbound HTTP call).

Layers above the kernel call :func:`audit` without knowing which run or step they serve; the
step executing in the current task (or thread: the engine copies the context into its thread
pool) collects the entries, and the engine hands them to the store with the step's record, in
the same transaction (architecture rule 5). Outside a step, :func:`audit` does nothing.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrailEntry", "audit", "collecting"]


@dataclass(frozen=True, slots=True)
class TrailEntry:
    """One audit entry raised during a step: ``kind`` names what happened (``"model.call"``,
    ``"egress.call"``); ``data`` is a JSON-able object describing it (no secrets)."""

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


_sink: contextvars.ContextVar[list[TrailEntry] | None] = contextvars.ContextVar(
    "batonflow_trail", default=None
)


def audit(kind: str, data: Mapping[str, Any]) -> None:
    """Record ``kind``/``data`` on the audit trail of the step executing now (thread-safe)."""
    sink = _sink.get()
    if sink is not None:
        sink.append(TrailEntry(kind, dict(data)))


@contextmanager
def collecting() -> Iterator[list[TrailEntry]]:
    """Collect the entries raised inside the block (the engine wraps each step attempt)."""
    entries: list[TrailEntry] = []
    token = _sink.set(entries)
    try:
        yield entries
    finally:
        _sink.reset(token)
