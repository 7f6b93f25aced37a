"""A started run's handle: await its result or read its status."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from batonflow._serde import error_from_dict, loads
from batonflow.errors import RunCancelled, RunFailed
from batonflow.store import RunRecord, RunStatus

if TYPE_CHECKING:
    from batonflow.core._engine import Engine

O = TypeVar("O")  # noqa: E741

ENDED = (RunStatus.COMPLETED, RunStatus.FAULTED, RunStatus.CANCELLED)


class RunHandle(Generic[O]):
    """A started run: await its result, or read its status."""

    def __init__(self, engine: Engine, run_id: str, created: RunRecord | None = None) -> None:
        self.engine = engine
        self.run_id = run_id
        #: the run as ``start`` recorded it (or found it, for a used idempotency key): what a
        #: caller can answer with without reading it back; None for a handle made from an id
        self.created = created

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id}>"

    async def record(self) -> RunRecord:
        return await self.engine.get_run(self.run_id)

    async def status(self) -> RunStatus:
        return (await self.record()).status

    async def result(self, timeout: float | None = None) -> O:
        """The run's output once it completes.

        Raises ``RunFailed`` (with the recorded error as ``.error`` and the rebuilt original
        exception as ``__cause__``) if it faulted, ``RunCancelled`` if it was cancelled, and
        ``TimeoutError`` if ``timeout`` seconds (of the engine's clock) pass first.
        """
        engine = self.engine
        deadline = None if timeout is None else engine.clock.now() + timeout
        while True:
            watch = engine._watch(self.run_id)
            if self.run_id in engine._active:  # it will tell us how it ends
                status = RunStatus.RUNNING
            else:
                record = await self.record()
                status = record.status
                if status in ENDED:
                    watch.cancel()
                    return _outcome(Final.of(record))  # type: ignore[no-any-return]
            delay = engine.poll_interval
            if deadline is not None:
                remaining = deadline - engine.clock.now()
                if remaining <= 0:
                    watch.cancel()
                    raise TimeoutError(f"run {self.run_id} is still {status.value}")
                delay = min(delay, remaining)
            poll = asyncio.ensure_future(engine.clock.sleep(delay))
            waits: set[asyncio.Future[Any]] = {watch, poll}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                poll.cancel()
                watch.cancel()
            final = watch.result() if watch.done() and not watch.cancelled() else None
            if final is not None:
                return _outcome(final)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Final:
    """How a run ended, as result() needs it."""

    run_id: str
    workflow: str
    status: RunStatus
    output_json: str | None
    error_json: str | None

    @classmethod
    def of(cls, record: RunRecord) -> Final:
        return cls(record.id, record.workflow, record.status, record.output_json, record.error_json)


def _outcome(final: Final) -> Any:
    if final.status is RunStatus.COMPLETED:
        return loads(final.output_json)
    error = loads(final.error_json) or {}
    if final.status is RunStatus.CANCELLED:
        raise RunCancelled(error.get("message") or f"run {final.run_id} was cancelled")
    cause = error_from_dict(error)
    raise RunFailed(
        f"run {final.run_id} ({final.workflow}) faulted: {error.get('message', '')}", error
    ) from cause
