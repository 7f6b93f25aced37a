"""Around-hooks: cross-cutting behaviour that must enclose a run's activation or a step
attempt (tracing spans), so the kernel has no ``if tracing:`` branches.

An around-hook has ``activation(info)`` and ``attempt(info)``, each returning a context manager
that encloses the work; an exception leaving the work passes through it (a ``BaseException``
that is not an ``Exception`` means the run parked or was stopped, not that it failed). Each
receives one frozen object, so adding a field breaks no hook. Subclass :class:`Around` to
implement only one of them. (Hooks that are only told what happened need no context: see the
engine's notification hooks.)
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from typing import Any

__all__ = ["Activation", "Around", "around"]


@dataclass(frozen=True, slots=True)
class Activation:
    """One activation of a run: executing (or replaying) it until it ends or parks."""

    run_id: str
    workflow: str
    activation: int
    parent_id: str | None = None


class Around:
    """An around-hook that does nothing; override what you need."""

    def activation(self, info: Activation) -> AbstractContextManager[Any]:
        return nullcontext()

    def attempt(self, info: Any) -> AbstractContextManager[Any]:  # info: StepInfo
        return nullcontext()


def around(hooks: Iterable[Around], which: str, info: Any) -> ExitStack:
    """Every hook's ``which`` context, entered in order (left in reverse)."""
    stack = ExitStack()
    for hook in hooks:
        stack.enter_context(getattr(hook, which)(info))
    return stack
