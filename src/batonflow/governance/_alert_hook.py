"""Alerts raised by the process that sees the event, at the moment it happens.

:class:`AlertHook` is an engine hook (:class:`batonflow.Hook`): every engine built by
:class:`batonflow.configuration.Setup` with ``[governance.alerts]`` configured carries one, so
``batonflow run``, ``batonflow worker``, ``resume`` and any embedded engine alert alike:

- a run faults: at once, when its end is recorded;
- a step has failed ``step_failures`` attempts and is retrying: at once, on that failure;
- a run stays open past its deadline (impact tolerance): a precise wake-up at that moment, for
  the runs this engine executes (no minute poll);
- an approval nears its expiry: a wake-up ``expiring_within`` before it, for approvals this
  engine requests (:func:`watch_approval`);
- the store fails (a full disk, a lost database): at once, sent before anything is recorded
  (nothing can be), once per episode per process; recorded, and followed by
  ``store.recovered``, when the store works again;
- anything else (a trigger that failed): :func:`raise_alert`.

Exactly once across processes: the alert record (insert-if-absent, see
:mod:`._alert_dispatch`) decides, never this process's memory. Nothing is sent on the engine's
hot path: the hook hands each alert to a task of its own, and the engine waits for those tasks
(up to ``drain`` seconds) when it closes, so a short-lived ``batonflow run`` still delivers.
What happened while no process was running is found by the monitor (``batonflow worker``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from batonflow.core import (
    Engine,
    FailedAttempt,
    Hook,
    RunEnded,
    RunStarted,
    StoreFailing,
    StoreRecovered,
)
from batonflow.core._ids import short_run_id
from batonflow.errors import ConfigError
from batonflow.governance._alert_channels import ALERT_KINDS, Alert, AlertChannel, AlertKind
from batonflow.governance._alert_dispatch import Dispatcher, clip
from batonflow.governance._alerts import (
    ANY_WORKFLOW,
    APPROVAL_RECORD,
    OPEN_STATUSES,
    _iso,
    approval_record,
    approval_workflow,
    error_details,
    expiring_alert,
    faulted_alert,
    overdue_alert,
)
from batonflow.store import RunRecord, RunStatus

__all__ = ["AlertHook", "raise_alert", "submit_alert", "watch_approval"]

log = logging.getLogger("batonflow.alerts")

#: What a scheduled check gives: the alert to raise then, or None (nothing is wrong any more).
Check = Callable[[], Awaitable[Alert | None]]


class AlertHook(Hook):
    """Raises alerts as the engine it is given to sees their events (see the module).

    ``channels(engine)`` gives the channels once the engine is open, and an optional callable
    to close what they hold (``AlertSettings.hook`` builds it from the configuration).
    ``deadlines``/``deadline_of`` as for :class:`AlertMonitor`; ``step_failures``: alert when a
    step has failed that many attempts and will try again (None: never); ``expiring_within``:
    seconds before an approval's expiry (None: never).
    """

    def __init__(
        self,
        channels: Callable[[Engine], tuple[Sequence[AlertChannel], Callable[[], Awaitable[None]]]],
        *,
        deadlines: Mapping[str, float] | None = None,
        deadline_of: Callable[[RunRecord], float | None] | None = None,
        step_failures: int | None = 3,
        expiring_within: float | None = 3600.0,
        attempts: int = 4,
        retry_delay: float = 1.0,
        drain: float = 30.0,
    ) -> None:
        if step_failures is not None and step_failures < 1:
            raise ConfigError("alert step_failures: expected at least 1")
        self._channels = channels
        self.deadlines = dict(deadlines or {})
        self.deadline_of = deadline_of
        self.step_failures = step_failures
        self.expiring_within = expiring_within
        self._attempts, self._retry_delay, self._drain = attempts, retry_delay, drain
        self._dispatcher: Dispatcher | None = None
        self._release: Callable[[], Awaitable[None]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._submitted: set[str] = set()  # keys handed to a task already (not the decider)
        self._timers: _Timers | None = None
        self._engine: Engine | None = None
        # store alerts sent while the store failed, with their delivery, to record afterwards
        self._unrecorded: list[asyncio.Task[tuple[Alert, list[dict[str, Any]]]]] = []

    # -- lifecycle ------------------------------------------------------------------------------
    async def opened(self, engine: Engine) -> None:
        channels, self._release = self._channels(engine)
        self._dispatcher = Dispatcher(
            engine.store,
            engine.clock,
            channels,
            attempts=self._attempts,
            retry_delay=self._retry_delay,
        )
        self._engine = engine
        self._timers = _Timers(engine, self._spawn_check)

    async def closing(self, engine: Engine) -> None:
        if self._timers is not None:
            await self._timers.stop()
        pending = set(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=self._drain)
            for task in late:
                task.cancel()
            if late:
                log.error(
                    "%d alert(s) still being delivered after %gs; the records say so",
                    len(late),
                    self._drain,
                )
                await asyncio.gather(*late, return_exceptions=True)
        if self._release is not None:
            await self._release()
        self._dispatcher = self._engine = self._timers = None

    # -- what the engine tells ------------------------------------------------------------------
    def run_ended(self, event: RunEnded) -> None:
        if self._timers is not None:  # it can no longer be overdue
            self._timers.cancel(f"run.overdue:{event.run.id}")
        if event.status is not RunStatus.FAULTED:
            return
        run = event.run
        self.submit(
            faulted_alert(run.id, run.workflow, event.at, error_details(event.error), event.at)
        )

    def attempt_failed(self, event: FailedAttempt) -> None:
        if event.retry_at is None or self.step_failures is None:
            return
        if event.attempt != self.step_failures:
            return
        run = event.run
        error = error_details(event.error).get("error", "?")
        summary = (
            f"step {event.step!r} of run …{short_run_id(run.id)} ({run.workflow}) has failed"
            f" {event.attempt} attempts and keeps retrying: {clip(str(error), 200)}"
        )
        details = {
            "step": event.step,
            "step_id": event.step_id,
            "attempts": event.attempt,
            "error": error,
            "next_attempt_at": _iso(event.retry_at),
        }
        key = f"step.retrying:{run.id}:{event.step_id}"
        self.submit(Alert("step.retrying", run.id, run.workflow, summary, event.at, key, details))

    def run_started(self, event: RunStarted) -> None:
        run, timers = event.run, self._timers
        tolerance = self._tolerance(run)
        if tolerance is None or timers is None:
            return
        timers.add(
            run.created_at + tolerance, f"run.overdue:{run.id}", self._overdue(run, tolerance)
        )

    def store_failing(self, event: StoreFailing) -> None:
        dispatcher, engine = self._dispatcher, self._engine
        if dispatcher is None or engine is None:
            log.error("ALERT store.failing (engine closed, not raised here): %s", event.error)
            return
        alert = store_failing_alert(event, dispatcher.id)

        async def announce() -> tuple[Alert, list[dict[str, Any]]]:
            return alert, await dispatcher.announce(alert)

        task = asyncio.ensure_future(announce())
        self._unrecorded.append(task)
        self._track(task)

    def store_recovered(self, event: StoreRecovered) -> None:
        dispatcher = self._dispatcher
        if dispatcher is None:
            return
        sent, self._unrecorded = self._unrecorded, []
        self._track(self._recovered(dispatcher, event, sent))

    async def _recovered(
        self,
        dispatcher: Dispatcher,
        event: StoreRecovered,
        sent: list[asyncio.Task[tuple[Alert, list[dict[str, Any]]]]],
    ) -> None:
        for task in sent:  # what was said while the store failed goes on the record now
            alert, outcomes = await task
            try:
                await dispatcher.record_late(alert, outcomes)
            except Exception:
                log.exception("could not record alert %s after the store recovered", alert.key)
        self.submit(store_recovered_alert(event, dispatcher.id))

    # -- raising --------------------------------------------------------------------------------
    def submit(self, alert: Alert) -> None:
        """Raise ``alert`` in a task of its own (the caller does not wait)."""
        if self._dispatcher is None:
            log.error("ALERT %s (engine closed, not raised here): %s", alert.kind, alert.summary)
            return
        if alert.key in self._submitted:  # a replay seeing it again: the store has it
            return
        if len(self._submitted) > 10_000:
            self._submitted.clear()
        self._submitted.add(alert.key)
        self._track(self._raise(self._dispatcher, alert))

    async def _raise(self, dispatcher: Dispatcher, alert: Alert) -> None:
        if await dispatcher.raise_(alert) is None:  # the store failed: let it be tried again
            self._submitted.discard(alert.key)

    async def raise_now(self, alert: Alert) -> bool:
        """Raise ``alert`` and deliver it before returning; True if this process raised it."""
        if self._dispatcher is None:
            raise ConfigError("the engine carrying these alerts is not open")
        return bool(await self._dispatcher.raise_(alert))

    def watch(self, key: str, expires_at: float) -> None:
        """Alert ``expiring_within`` before the approval ``key`` expires, if still open."""
        if self.expiring_within is None or self._timers is None:
            return
        self._timers.add(expires_at - self.expiring_within, f"approval:{key}", self._expiring(key))

    def _track(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn_check(self, check: Check) -> None:
        async def run() -> None:
            try:
                alert = await check()
            except Exception:
                log.exception("alert check failed; the monitor will look again")
                return
            if alert is not None:
                self.submit(alert)

        self._track(run())

    def _tolerance(self, run: RunRecord) -> float | None:
        tolerance = self.deadlines.get(run.workflow)
        if tolerance is None and self.deadline_of is not None:
            tolerance = self.deadline_of(run)
        if tolerance is None:
            tolerance = self.deadlines.get(ANY_WORKFLOW)
        return tolerance

    def _overdue(self, run: RunRecord, tolerance: float) -> Check:
        async def check() -> Alert | None:
            assert self._engine is not None
            now_run = await self._engine.store.get_run(run.id)
            if now_run is None or now_run.status not in OPEN_STATUSES:
                return None
            return overdue_alert(now_run, tolerance, self._engine.clock.now())

        return check

    def _expiring(self, key: str) -> Check:
        async def check() -> Alert | None:
            assert self._engine is not None
            store = self._engine.store
            data_json = await store.get_record(APPROVAL_RECORD, key)
            approval = approval_record(data_json) if data_json else None
            if approval is None:
                return None
            workflow = await approval_workflow(store, approval)
            return expiring_alert(key, approval, workflow, self._engine.clock.now())

        return check


class _Timers:
    """Checks due at given clock times, run by one task that sleeps until the earliest. A key
    has one check at a time; a cancelled one is dropped when it comes up."""

    def __init__(self, engine: Engine, spawn: Callable[[Check], None]) -> None:
        self._engine, self._spawn = engine, spawn
        self._heap: list[tuple[float, int, str]] = []
        self._checks: dict[str, tuple[int, Check]] = {}
        self._order = itertools.count()
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._loop())

    def add(self, at: float, key: str, check: Check) -> None:
        if key in self._checks:
            return
        order = next(self._order)
        self._checks[key] = (order, check)
        heapq.heappush(self._heap, (at, order, key))
        self._changed.set()

    def cancel(self, key: str) -> None:
        self._checks.pop(key, None)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        clock = self._engine.clock
        while True:
            self._changed.clear()
            while self._heap and self._heap[0][0] <= clock.now():
                _, order, key = heapq.heappop(self._heap)
                entry = self._checks.get(key)
                if entry is not None and entry[0] == order:
                    del self._checks[key]
                    self._spawn(entry[1])
            waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._changed.wait())}
            if self._heap:
                waits.add(asyncio.ensure_future(clock.sleep(self._heap[0][0] - clock.now())))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()


def store_failing_alert(event: StoreFailing, process: str) -> Alert:
    """The alert that ``process``'s store began failing (its key names the process and the
    moment, so each episode is one alert)."""
    summary = (
        f"the store is failing ({clip(event.error, 200)}): runs wait and retry, nothing"
        f" recorded is lost; free disk space or restore the database ({process})"
    )
    details = {"error": clip(event.error, 1000), "process": process, "since": _iso(event.at)}
    key = f"store.failing:{process}:{event.at:.3f}"
    return Alert("store.failing", None, None, summary, event.at, key, details)


def store_recovered_alert(event: StoreRecovered, process: str) -> Alert:
    """The alert that the store failing since ``event.since`` works again: the resolution."""
    summary = (
        f"the store works again after {event.at - event.since:.0f}s of failures"
        f" ({clip(event.error, 200)}); runs continue ({process})"
    )
    details = {
        "error": clip(event.error, 1000),
        "process": process,
        "since": _iso(event.since),
        "resolves": f"store.failing:{process}:{event.since:.3f}",
    }
    key = f"store.recovered:{process}:{event.since:.3f}"
    return Alert("store.recovered", None, None, summary, event.at, key, details)


def _hook(engine: Engine) -> AlertHook | None:
    return next((h for h in engine.hooks.all if isinstance(h, AlertHook)), None)


def watch_approval(engine: Engine, key: str, expires_at: float | None) -> None:
    """Tell ``engine``'s alerts (if any) that approval ``key`` expires at ``expires_at``."""
    hook = _hook(engine)
    if hook is not None and expires_at is not None:
        hook.watch(key, expires_at)


def submit_alert(
    engine: Engine,
    *,
    kind: AlertKind,
    summary: str,
    key: str,
    run_id: str | None = None,
    workflow: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Like :func:`raise_alert`, without waiting: the alert is raised in a task of its own."""
    alert = Alert(kind, run_id, workflow, summary, engine.clock.now(), key, dict(details or {}))
    hook = _hook(engine)
    if hook is None:
        log.warning("ALERT %s (no alert channels configured): %s", kind, summary)
        return
    hook.submit(alert)


async def raise_alert(
    engine: Engine,
    *,
    kind: AlertKind,
    summary: str,
    key: str,
    run_id: str | None = None,
    workflow: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> bool:
    """Raise an alert through ``engine``'s alert channels, once across every process, and
    deliver it before returning: True if this call raised it, False if it was raised before
    (same ``key``) or the engine has no alerts configured (logged at ERROR then).

    ``kind`` is one of ``ALERT_KINDS`` (a trigger that failed: ``"trigger.failed"``); ``key``
    names the occurrence (``"trigger.failed:mailbox:<message id>"``): the same key raises
    nothing twice.
    """
    if kind not in ALERT_KINDS:
        raise ConfigError(f"alert kind {kind!r}: expected one of {', '.join(ALERT_KINDS)}")
    if not key or not summary:
        raise ConfigError("an alert needs a key and a summary")
    alert = Alert(kind, run_id, workflow, summary, engine.clock.now(), key, dict(details or {}))
    hook = _hook(engine)
    if hook is None:
        log.error("ALERT %s (no alert channels configured): %s", kind, summary)
        return False
    return await hook.raise_now(alert)
