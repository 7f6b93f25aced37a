"""Engine hooks: cross-cutting behaviour (alerts, metrics, tracing) plugged in around the kernel.

A hook is told what happens as it happens, each time with one frozen object (adding a field
breaks no hook). The kernel knows nothing of what a hook does with it. The notifications are
called on the engine's hot path, so they must return at once: a hook that has slow work to do
(send a webhook, write to a store) queues it for a task of its own, started in ``opened`` and
drained in ``closing``. A hook that raises is logged and ignored: it never changes a run.

::

    class Count(batonflow.Hook):
        def __init__(self) -> None:
            self.faults = 0

        def run_ended(self, event: batonflow.RunEnded) -> None:
            if event.status is batonflow.RunStatus.FAULTED:
                self.faults += 1
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batonflow.store import RunRecord, RunStatus

if TYPE_CHECKING:
    from batonflow.core._engine import Engine

__all__ = [
    "FailedAttempt",
    "Hook",
    "RunEnded",
    "RunStarted",
    "StoreFailing",
    "StoreRecovered",
]

log = logging.getLogger("batonflow.engine")


@dataclass(frozen=True, slots=True)
class RunStarted:
    """This engine began executing ``run`` (new, woken, resumed or taken over); ``at`` is the
    engine clock's time."""

    run: RunRecord
    at: float


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """Attempt number ``attempt`` of step ``step`` (journal position ``step_id``) failed with
    ``error`` (``{"type", "message", ...}``). ``retry_at`` is when the next attempt is due, or
    None when the step gave up (the error then goes on to the workflow)."""

    run: RunRecord
    step_id: str
    step: str
    attempt: int
    error: dict[str, object]
    at: float
    retry_at: float | None


@dataclass(frozen=True, slots=True)
class RunEnded:
    """A run this engine executed reached ``status`` (COMPLETED or FAULTED), durably recorded
    with ``at`` as its ``finished_at``; ``error`` is the recorded error of a faulted run."""

    run: RunRecord
    status: RunStatus
    error: dict[str, object] | None
    at: float


@dataclass(frozen=True, slots=True)
class StoreFailing:
    """This engine's store began failing (a full disk, a lost database) at ``at``: runs are
    handed back and claims pause, ``error`` says why. Told once per episode, until
    :class:`StoreRecovered`."""

    error: str
    at: float


@dataclass(frozen=True, slots=True)
class StoreRecovered:
    """The store failing since ``since`` works again at ``at`` (``error``: what it was)."""

    error: str
    since: float
    at: float


class Hook:
    """Base class of engine hooks: every method does nothing; override the ones you need."""

    async def opened(self, engine: Engine) -> None:
        """The engine opened its store and is about to execute runs."""

    async def closing(self, engine: Engine) -> None:
        """The engine stopped executing runs; its store is still open (finish queued work)."""

    def run_started(self, event: RunStarted) -> None:
        """Must return at once (see the module's docstring)."""

    def attempt_failed(self, event: FailedAttempt) -> None:
        """Must return at once (see the module's docstring)."""

    def run_ended(self, event: RunEnded) -> None:
        """Must return at once (see the module's docstring)."""

    def store_failing(self, event: StoreFailing) -> None:
        """Must return at once, and must not need the store (it is failing)."""

    def store_recovered(self, event: StoreRecovered) -> None:
        """Must return at once (see the module's docstring)."""


class Hooks:
    """The engine's hooks, called in order; a failing hook is logged, never propagated."""

    def __init__(self, hooks: Iterable[object]) -> None:
        found: list[Hook] = []
        for hook in hooks:
            if not isinstance(hook, Hook):
                from batonflow.errors import ConfigError

                raise ConfigError(f"expected a batonflow.Hook, got {type(hook).__name__}")
            found.append(hook)
        self.all = tuple(found)

    def __bool__(self) -> bool:
        return bool(self.all)

    async def opened(self, engine: Engine) -> None:
        for hook in self.all:
            await hook.opened(engine)

    async def closing(self, engine: Engine) -> None:
        for hook in self.all:
            try:
                await hook.closing(engine)
            except Exception:
                log.exception("hook %s failed while the engine closed", type(hook).__name__)

    def run_started(self, event: RunStarted) -> None:
        for hook in self.all:
            _call(hook, "run_started", event)

    def attempt_failed(self, event: FailedAttempt) -> None:
        for hook in self.all:
            _call(hook, "attempt_failed", event)

    def run_ended(self, event: RunEnded) -> None:
        for hook in self.all:
            _call(hook, "run_ended", event)

    def store_failing(self, event: StoreFailing) -> None:
        for hook in self.all:
            _call(hook, "store_failing", event)

    def store_recovered(self, event: StoreRecovered) -> None:
        for hook in self.all:
            _call(hook, "store_recovered", event)


def _call(hook: Hook, name: str, event: object) -> None:
    try:
        getattr(hook, name)(event)
    except Exception:
        log.exception("hook %s.%s failed; the run goes on", type(hook).__name__, name)
