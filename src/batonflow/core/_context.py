"""What a workflow sees: ``ctx.step``, ``ctx.sleep``, ``ctx.wait_for_event``, ``ctx.child``, ...

Every call gets the next *position* in the run ("1", "2", ... and "3.0.1" inside branch 0 of a
parallel group at position 3). On replay, a position with a journal entry answers from it; the
first position without one executes. When a run must wait (a timer, an event, a child run, a
retry's backoff) the call raises ``_Suspend``, the workflow unwinds, the engine parks the run in the
store, and nothing of it stays in memory: it is replayed from the top when it is woken.

Step results are buffered and written before the next thing with an effect outside the run
starts (the next step, a child run, a wait) or together with the run's end, so the commit that
makes a step durable is shared with whatever comes next.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import functools
import math
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, overload

from batonflow._serde import (
    dumps_lenient,
    error_from_dict,
    error_to_dict,
    loads,
    roundtrip,
)
from batonflow.core._around import around
from batonflow.core._hooks import FailedAttempt
from batonflow.core._trail import TrailEntry, collecting
from batonflow.core._workflow import Workflow, step_options
from batonflow.errors import (
    ConfigError,
    ConnectorDisabled,
    DeadlineExceeded,
    EventTimeout,
    NonDeterminismError,
    StepTimeout,
)
from batonflow.store import AttemptRecord, AuditEntry, RunRecord, StepKind, StepRecord, StepStatus

if TYPE_CHECKING:
    from batonflow.core._engine import Engine

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
O = TypeVar("O")  # noqa: E741


class _Suspend(BaseException):
    """Unwinds a workflow that must wait. A BaseException so ``except Exception`` in user code
    cannot swallow it."""


class _Scope:
    """Hands out positions; each parallel branch has its own."""

    __slots__ = ("counter", "prefix")

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.counter = 0

    def next_id(self) -> str:
        self.counter += 1
        return f"{self.prefix}{self.counter}"


_scope: contextvars.ContextVar[_Scope] = contextvars.ContextVar("batonflow_scope")


@dataclass(frozen=True, slots=True)
class StepInfo:
    """The step being executed, for code inside it (``batonflow.current_step()``)."""

    run_id: str
    step_id: str
    name: str
    attempt: int
    workflow: str = ""
    #: The engine's outbound client (None when the engine was given none: see ``Engine``).
    client: Any = None

    @property
    def http(self) -> Any:
        """The egress-controlled HTTP client for this step's outbound calls (an
        ``httpx.AsyncClient``): every call is checked against the egress policy and recorded
        on this step's audit trail."""
        return _require_client(self.client)

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and replays: give it to external systems to de-duplicate."""
        return f"{self.run_id}:{self.step_id}"


_step_info: contextvars.ContextVar[StepInfo] = contextvars.ContextVar("batonflow_step")
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "batonflow_deadline", default=None
)


_identifiers: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "batonflow_run_identifiers", default=()
)


def run_identifiers() -> tuple[str, ...]:
    """The data subjects (ids, as the workflow's ``subjects`` finds them in the run's input)
    of the run executing in this task or thread; ``()`` outside a run or for a run without.
    Model-bound redaction keeps them from every model."""
    return _identifiers.get()


@contextlib.contextmanager
def identifying(subjects: tuple[str, ...]) -> Iterator[None]:
    """Within the block (a run's activation), :func:`run_identifiers` gives ``subjects``."""
    token = _identifiers.set(subjects)
    try:
        yield
    finally:
        _identifiers.reset(token)


def _require_client(client: Any) -> Any:
    if client is None:
        raise ConfigError(
            "this engine has no outbound HTTP client: build it with Setup.engine() or"
            " Session.engine() (the egress-controlled client), or pass Engine(http=...)"
        )
    return client


def current_step() -> StepInfo:
    """The step running in this task or thread; ConfigError outside a step."""
    try:
        return _step_info.get()
    except LookupError:
        raise ConfigError("current_step() is only available inside a step function") from None


LATEST_WAKE: Final = 253_402_300_799.0
"""The latest wake-up time: 9999-12-31T23:59:59Z, the last moment a date can show."""


def _wake_time(when: float) -> float:
    if not math.isfinite(when) or not 0 <= when <= LATEST_WAKE:
        raise ConfigError(
            f"a sleep must end between 1970 and 9999-12-31T23:59:59Z; got epoch {when!r}"
        )
    return when


def _seconds(duration: float | dt.timedelta) -> float:
    return duration.total_seconds() if isinstance(duration, dt.timedelta) else float(duration)


class Context:
    """A run's handle on the durable world. One per activation; never shared between runs."""

    def __init__(self, engine: Engine, run: RunRecord, journal: list[StepRecord]) -> None:
        self._engine = engine
        self._clock = engine.clock
        self.run = run
        self._journal = {s.step_id: s for s in journal}
        self._visited: set[str] = set()
        self._buffer: dict[str, StepRecord] = {}
        self._attempts: list[AttemptRecord] = []
        self._flush_lock = asyncio.Lock()
        self.wakes: list[float | None] = []
        self.nondeterminism: NonDeterminismError | None = None
        self.started_children = False
        # audit entries raised inside steps, by position: they go to the store with the records
        self.trail: list[tuple[str | None, TrailEntry]] = []

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def http(self) -> Any:
        """The engine's egress-controlled HTTP client (see :attr:`StepInfo.http`); call it
        inside a step, so the call is recorded once and replayed from the journal."""
        return _require_client(self._engine.http)

    @property
    def workflow(self) -> str:
        return self.run.workflow

    @property
    def engine(self) -> Engine:
        """The engine executing this run (its clock, store and events, for extensions)."""
        return self._engine

    # -- positions and the journal -------------------------------------------------------------
    def _next_id(self) -> str:
        try:
            scope = _scope.get()
        except LookupError:
            scope = _Scope()
            _scope.set(scope)
        return scope.next_id()

    def _replay(self, step_id: str, kind: StepKind, name: str) -> StepRecord | None:
        self._visited.add(step_id)
        record = self._journal.get(step_id)
        if record is not None and (record.kind is not kind or record.name != name):
            error = NonDeterminismError(
                f"run {self.run_id} position {step_id}: the journal recorded {record.kind.value} "
                f"{record.name!r} but the workflow now asks for {kind.value} {name!r}; the "
                "workflow code changed while this run was in flight"
            )
            self.nondeterminism = self.nondeterminism or error
            raise error
        return record

    def _record(self, record: StepRecord) -> None:
        self._journal[record.step_id] = record
        self._buffer[record.step_id] = record

    def _suspend(self, wake_at: float | None) -> BaseException:
        """Park the run until ``wake_at`` (or a signal), never past the innermost deadline; past
        that deadline, fail the scope instead."""
        deadline = _deadline.get()
        if deadline is not None:
            if self._clock.now() >= deadline:
                return DeadlineExceeded(f"run {self.run_id}: a scope passed its deadline")
            wake_at = deadline if wake_at is None else min(wake_at, deadline)
        self.wakes.append(wake_at)
        return _Suspend()

    @contextlib.contextmanager
    def deadline(self, at: float) -> Iterator[None]:
        """Within this block, everything ends by ``at``: the run parks no later than then, a
        wait still unfinished at ``at`` raises :class:`DeadlineExceeded`, and a step's timeout
        is cut to the time left (a step cut off fails with DeadlineExceeded, recorded, so a
        replay reaches the same verdict). Nested deadlines keep the earliest."""
        current = _deadline.get()
        token = _deadline.set(at if current is None else min(current, at))
        try:
            yield
        finally:
            _deadline.reset(token)

    def take_buffer(self) -> tuple[list[StepRecord], list[AttemptRecord]]:
        steps, attempts = list(self._buffer.values()), self._attempts
        self._buffer, self._attempts = {}, []
        return steps, attempts

    def note(self, kind: str, data: Mapping[str, Any]) -> None:
        """Put a decision the workflow code made here (a route it chose) on the audit trail,
        once: while a replay re-runs code its journal has already gone past, nothing is noted.
        The entry goes to the store with the run's next write."""
        scope = _scope.get(None)
        upcoming = f"{scope.prefix}{scope.counter + 1}" if scope is not None else "1"
        if upcoming in self._journal:
            return  # replaying: this was noted when the run first passed here
        self.trail.append((None, TrailEntry(kind, dict(data))))

    def take_trail(self) -> list[AuditEntry]:
        """The audit entries raised inside steps since the last call, for the store."""
        trail, self.trail = self.trail, []
        subjects = self.run.subjects
        return [
            AuditEntry(e.kind, dumps_lenient(e.data), self.run_id, step_id, "engine", subjects)
            for step_id, e in trail
        ]

    async def flush(self) -> None:
        """Make every buffered record durable (waits for writes other branches started)."""
        async with self._flush_lock:
            if self._buffer or self._attempts or self.trail:
                steps, attempts = self.take_buffer()
                await self._engine.store.save_steps(
                    self.run_id, self._engine.owner, steps, attempts, self._clock.now(),
                    audit=self.take_trail(),
                )  # fmt: skip

    def _args_json(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """A step's arguments as recorded (redacted by the step's persist policy)."""
        if not args and not kwargs:
            return None
        value = {"args": list(args), "kwargs": kwargs} if kwargs else list(args)
        return dumps_lenient(self._engine.redacted(self.workflow, name, value))

    def unvisited(self) -> list[str]:
        return [sid for sid in self._journal if sid not in self._visited]

    def failure_being_handled(self, error: BaseException) -> str | None:
        """The step whose error ``error`` was raised while handling (``except E: raise
        Other(...)``, without ``from``), if the run recorded nothing after that step: then
        retrying that step on ``resume`` cannot leave a handler's work behind."""
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            step = getattr(current, "__batonflow_step__", None)
            if isinstance(step, str):
                after = _position(step)
                later = [s for s in (*self._journal, *self._visited) if _position(s) > after]
                return None if later else step
            suppressed = current.__suppress_context__ and current.__cause__ is None
            current = None if suppressed else (current.__cause__ or current.__context__)
        return None

    @staticmethod
    def _answer(record: StepRecord) -> Any:
        if record.status is StepStatus.FAILED:
            error = error_from_dict(loads(record.error_json) or {})
            _tag(error, record.step_id)
            raise error
        return loads(record.output_json)

    # -- steps --------------------------------------------------------------------------------
    @overload
    async def step(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...
    @overload
    async def step(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...
    async def step(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` as a durable step and return its (JSON) result.

        Once recorded, the result is returned from the journal and ``fn`` never runs again for
        this run. Failures are retried per the step's ``Retry``; the last error is raised.
        """
        call, name, options, is_async = step_options(fn)
        step_id = self._next_id()
        record = self._replay(step_id, StepKind.STEP, name)
        attempts = 0
        if record is not None:
            if record.status is not StepStatus.PENDING:
                return self._answer(record)
            attempts = record.attempts
            if record.wake_at is not None and record.wake_at > self._clock.now():
                raise self._suspend(record.wake_at)  # still backing off before a retry
        await self.flush()
        self._engine.check_fence(self.run_id)
        attempt = attempts + 1
        started = self._clock.now()
        timeout, clipped = self._step_timeout(options.timeout, started, name)
        info = StepInfo(self.run_id, step_id, name, attempt, self.workflow, self._engine.http)
        try:
            try:
                with collecting() as raised:
                    try:
                        value = await self._invoke(call, args, kwargs, is_async, timeout, info)
                        # what is recorded is what the flow goes on with, now and on replay
                        value = self._engine.redacted(self.workflow, name, value)
                    finally:
                        self.trail.extend((step_id, entry) for entry in raised)
            except StepTimeout:
                if not clipped:
                    raise
                raise DeadlineExceeded(
                    f"step {name!r} was cut off by its scope's deadline"
                ) from None
            result, output_json = roundtrip(value, what=f"the result of step {name!r}")
        except Exception as exc:
            self._failed_attempt(step_id, name, args, kwargs, attempt, started, exc, options)
            raise
        self._record(
            StepRecord(
                self.run_id, step_id, StepKind.STEP, name, StepStatus.COMPLETED,
                input_json=self._args_json(name, args, kwargs), output_json=output_json,
                attempts=attempt, started_at=started, finished_at=self._clock.now(),
            )
        )  # fmt: skip
        if _scope.get().prefix:
            # Inside a parallel branch, siblings may run for a long time before anything else
            # flushes: record this result now (concurrent branches share the commit).
            await self.flush()
        return result

    def _step_timeout(
        self, timeout: float | None, now: float, name: str
    ) -> tuple[float | None, bool]:
        """The attempt's timeout within any deadline scope, and whether the scope cut it."""
        deadline = _deadline.get()
        if deadline is None:
            return timeout, False
        remaining = deadline - now
        if remaining <= 0:
            raise DeadlineExceeded(f"step {name!r} did not start: its scope's deadline passed")
        if timeout is None or remaining < timeout:
            return remaining, True
        return timeout, False

    def _failed_attempt(
        self,
        step_id: str,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        attempt: int,
        started: float,
        exc: Exception,
        options: Any,
    ) -> None:
        now = self._clock.now()
        error = error_to_dict(exc)
        error_json = dumps_lenient(error)
        if isinstance(exc, ConnectorDisabled):
            # Not a failure: the run waits for the connector without using up an attempt.
            waiting = StepRecord(
                self.run_id, step_id, StepKind.STEP, name, StepStatus.PENDING,
                input_json=self._args_json(name, args, kwargs), error_json=error_json,
                attempts=attempt - 1, started_at=started, wake_at=now + exc.retry_after,
            )  # fmt: skip
            self._record(waiting)
            raise self._suspend(now + exc.retry_after) from exc
        self._attempts.append(
            AttemptRecord(self.run_id, step_id, attempt, started, now, error_json)
        )
        base = StepRecord(
            self.run_id, step_id, StepKind.STEP, name, StepStatus.FAILED,
            input_json=self._args_json(name, args, kwargs), error_json=error_json, attempts=attempt,
            started_at=started, finished_at=now,
        )  # fmt: skip
        retry = options.retry.should_retry(exc, attempt)
        wake = now + options.retry.delay(attempt, self._engine.rng) if retry else None
        hooks = self._engine.hooks
        if hooks:
            hooks.attempt_failed(FailedAttempt(self.run, step_id, name, attempt, error, now, wake))
        if wake is not None:
            self._record(replace(base, status=StepStatus.PENDING, wake_at=wake, finished_at=None))
            raise self._suspend(wake) from exc
        self._record(base)
        _tag(exc, step_id)

    def report_retry(
        self, step: str, attempt: int, error: Mapping[str, Any], retry_at: float
    ) -> None:
        """Tell the engine's hooks that ``step`` of a retry loop written in workflow code (a
        DSL ``try``/``catch``/``retry``) failed attempt ``attempt`` with ``error`` and will try
        again at ``retry_at``, as :meth:`step` does for its own retries. Once: a replay that
        re-runs code its journal has gone past tells nothing."""
        hooks = self._engine.hooks
        scope = _scope.get(None)
        upcoming = f"{scope.prefix}{scope.counter + 1}" if scope is not None else "1"
        if hooks and upcoming not in self._journal:
            now = self._clock.now()
            event = FailedAttempt(self.run, step, step, attempt, dict(error), now, retry_at)
            hooks.attempt_failed(event)

    async def _invoke(
        self,
        call: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        is_async: bool,
        timeout: float | None,
        info: StepInfo,
    ) -> Any:
        token = _step_info.set(info)
        try:
            with around(self._engine.around, "attempt", info):
                return await self._call(call, args, kwargs, is_async, timeout, info)
        finally:
            _step_info.reset(token)

    async def _call(
        self,
        call: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        is_async: bool,
        timeout: float | None,
        info: StepInfo,
    ) -> Any:
        if is_async and timeout is None:
            return await call(*args, **kwargs)
        if is_async:
            work: asyncio.Future[Any] = asyncio.ensure_future(call(*args, **kwargs))
        else:
            # Sync functions run in the engine's thread pool; on timeout the thread cannot be
            # stopped and finishes in the background, its result discarded.
            bound = functools.partial(contextvars.copy_context().run, call, *args, **kwargs)
            work = asyncio.get_running_loop().run_in_executor(self._engine.threads, bound)
        if timeout is None:
            return await work
        return await self._within(work, timeout, info)

    async def _within(self, work: asyncio.Future[Any], timeout: float, info: StepInfo) -> Any:
        timer = asyncio.ensure_future(self._clock.sleep(timeout))
        try:
            done, _ = await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not work.done():
                work.cancel()
        if work in done:
            return work.result()
        raise StepTimeout(
            f"step {info.name!r} (attempt {info.attempt}) ran past its {timeout:g}s timeout"
        )

    # -- time ---------------------------------------------------------------------------------
    async def sleep(self, duration: float | dt.timedelta) -> None:
        """Sleep durably: the run is parked in the store, holds no thread or memory, and wakes
        on time even if the engine restarted in between."""
        await self._sleep_until(lambda now: now + _seconds(duration))

    async def sleep_until(self, when: float | dt.datetime) -> None:
        """Sleep durably until an epoch time or an aware datetime."""
        if isinstance(when, dt.datetime):
            if when.tzinfo is None:
                raise ConfigError("sleep_until needs a timezone-aware datetime")
            target = when.timestamp()
        else:
            target = float(when)
        await self._sleep_until(lambda _now: target)

    async def _sleep_until(self, target: Callable[[float], float]) -> None:
        step_id = self._next_id()
        record = self._replay(step_id, StepKind.SLEEP, "sleep")
        now = self._clock.now()
        if record is None:
            record = StepRecord(
                self.run_id, step_id, StepKind.SLEEP, "sleep", StepStatus.PENDING,
                started_at=now, wake_at=_wake_time(target(now)),
            )  # fmt: skip
            self._record(record)
        if record.status is StepStatus.COMPLETED:
            return
        if record.wake_at is None or record.wake_at <= now:
            self._record(replace(record, status=StepStatus.COMPLETED, finished_at=now))
            return
        raise self._suspend(record.wake_at)

    async def now(self, name: str = "now") -> float:
        """The current time, recorded: a replay sees the same value. ``name`` labels the record
        (the DSL marks each task's start with it)."""
        return float(await self._value(name, self._clock.now))

    async def uuid4(self) -> str:
        """A random UUID, recorded: a replay sees the same value."""
        return str(await self._value("uuid4", lambda: str(uuid.uuid4())))

    async def _value(self, name: str, make: Callable[[], Any]) -> Any:
        step_id = self._next_id()
        record = self._replay(step_id, StepKind.VALUE, name)
        if record is not None:
            return self._answer(record)
        value, text = roundtrip(make(), what=name)
        now = self._clock.now()
        self._record(
            StepRecord(
                self.run_id, step_id, StepKind.VALUE, name, StepStatus.COMPLETED,
                output_json=text, started_at=now, finished_at=now,
            )
        )  # fmt: skip
        return value

    # -- events -------------------------------------------------------------------------------
    async def wait_for_event(
        self,
        topic: str,
        *,
        key: str | None = None,
        timeout: float | dt.timedelta | None = None,
        detail: Any = None,
    ) -> Any:
        """Wait durably for an event and return its payload.

        An event matches when its topic is ``topic`` and it was sent to this run (with the same
        ``key``, if one is given) or, when ``key`` is given, to that correlation key. Events that
        arrived before the wait are kept and consumed in order. Raises ``EventTimeout`` after
        ``timeout`` seconds without one. ``detail`` is recorded with the wait (as its input),
        for whoever lists waits on this topic: the DSL keeps a ``listen`` task's filter there.
        """
        if not topic:
            raise ConfigError("wait_for_event needs a topic")
        step_id = self._next_id()
        record = self._replay(step_id, StepKind.EVENT, topic)
        if record is not None and record.status is not StepStatus.PENDING:
            return self._answer(record)
        now = self._clock.now()
        if record is None:
            deadline = now + _seconds(timeout) if timeout is not None else None
            record = StepRecord(
                self.run_id, step_id, StepKind.EVENT, topic, StepStatus.PENDING,
                input_json=None if detail is None else dumps_lenient(detail),
                started_at=now, wake_at=deadline, topic=topic, key=key,
            )  # fmt: skip
        await self.flush()
        record = await self._engine.store.begin_wait(record, self._engine.owner, now)
        self._journal[step_id] = record
        if record.status is StepStatus.COMPLETED:
            return loads(record.output_json)
        if record.wake_at is not None and record.wake_at <= now:
            detail = f" with key {key!r}" if key is not None else ""
            error = EventTimeout(f"no event {topic!r}{detail} arrived before the wait timed out")
            self._record(
                replace(
                    record,
                    status=StepStatus.FAILED,
                    error_json=dumps_lenient(error_to_dict(error)),
                    finished_at=now,
                )
            )
            _tag(error, step_id)
            raise error
        raise self._suspend(record.wake_at)

    # -- children and fan-out -----------------------------------------------------------------
    async def child(self, workflow: Workflow[Any, O], input: Any = None) -> O:
        """Run ``workflow`` as a child run and return its output (``ChildWorkflowFailed`` if it
        faults or is cancelled). The child is durable on its own; this run waits parked."""
        step_id = self._next_id()
        record = self._replay(step_id, StepKind.CHILD, workflow.name)
        if record is not None:
            if record.status is StepStatus.PENDING:
                raise self._suspend(None)
            answer: O = self._answer(record)
            return answer
        await self.flush()
        self.started_children = True
        await self._engine._start_child(self, workflow, input, step_id)
        raise self._suspend(None)

    async def parallel(self, *branches: Coroutine[Any, Any, T]) -> list[T]:
        """Run branches concurrently (fan-out) and return their results in order (fan-in).

        Each branch is a coroutine such as ``ctx.step(f, x)`` or a call of your own ``async def``
        that uses ``ctx``; its positions are its own, so branches may interleave freely. All
        branches finish before an error is raised (the first, in branch order).
        """
        for branch in branches:
            if not asyncio.iscoroutine(branch):
                raise ConfigError(
                    f"ctx.parallel takes coroutines such as ctx.step(fn, x), got "
                    f"{type(branch).__name__}"
                )
        group = self._next_id()
        record = self._replay(group, StepKind.PARALLEL, "parallel")
        if record is None:
            now = self._clock.now()
            self._record(
                StepRecord(
                    self.run_id, group, StepKind.PARALLEL, "parallel", StepStatus.COMPLETED,
                    output_json=str(len(branches)), started_at=now, finished_at=now,
                )
            )  # fmt: skip
        tasks = [self._branch_task(group, i, b) for i, b in enumerate(branches)]
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        suspended = [o for o in outcomes if isinstance(o, _Suspend)]
        if suspended:
            raise suspended[0]
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return list(outcomes)  # type: ignore[arg-type]

    async def race(self, *branches: Coroutine[Any, Any, T]) -> tuple[int, T]:
        """Run branches concurrently; the first to succeed wins and the others are cancelled.

        Returns (winner's index, its result). The winner is recorded, so a replay runs only the
        winning branch (from its journal) and always picks the same one. If no branch succeeds,
        the first error in branch order is raised.
        """
        for branch in branches:
            if not asyncio.iscoroutine(branch):
                raise ConfigError(f"ctx.race takes coroutines, got {type(branch).__name__}")
        group = self._next_id()
        recorded = _recorded_winner(self._replay(group, StepKind.PARALLEL, "race"))
        if recorded is not None:
            for index, branch in enumerate(branches):
                if index != recorded:
                    branch.close()  # never started: the winner is already known
            self._visit_branches(group, keep=recorded)
            return recorded, await self._branch_task(group, recorded, branches[recorded])
        tasks = [self._branch_task(group, i, b) for i, b in enumerate(branches)]
        winner = await _first_success(tasks)
        self._visit_branches(group, keep=winner)
        now = self._clock.now()
        self._record(
            StepRecord(
                self.run_id, group, StepKind.PARALLEL, "race", StepStatus.COMPLETED,
                output_json=f'{{"winner":{winner},"branches":{len(branches)}}}',
                started_at=now, finished_at=now,
            )
        )  # fmt: skip
        return winner, tasks[winner].result()

    def _branch_task(
        self, group: str, index: int, branch: Coroutine[Any, Any, T]
    ) -> asyncio.Task[T]:
        branch_context = contextvars.copy_context()
        branch_context.run(_scope.set, _Scope(f"{group}.{index}."))
        return asyncio.get_running_loop().create_task(branch, context=branch_context)

    def _visit_branches(self, group: str, *, keep: int) -> None:
        """A losing branch's recorded positions are history, not a sign of changed code."""
        prefix = f"{group}."
        for step_id in self._journal:
            if step_id.startswith(prefix) and not step_id.startswith(f"{prefix}{keep}."):
                self._visited.add(step_id)


def _recorded_winner(record: StepRecord | None) -> int | None:
    if record is None:
        return None
    return int(loads(record.output_json)["winner"])


async def _first_success(tasks: list[asyncio.Task[T]]) -> int:
    """Index of the first task to succeed (ties broken by branch order); losers are cancelled
    and awaited. Parks the run if none succeeded but some must wait; else raises the first error."""
    pending: set[asyncio.Task[T]] = set(tasks)
    winner: int | None = None
    while pending and winner is None:
        _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for index, task in enumerate(tasks):
            if task.done() and not task.cancelled() and task.exception() is None:
                winner = index
                break
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if winner is not None:
        return winner
    errors = [t.exception() for t in tasks if not t.cancelled()]
    suspended = [e for e in errors if isinstance(e, _Suspend)]
    if suspended:
        raise suspended[0]
    first = next(e for e in errors if e is not None)
    raise first


def _position(step_id: str) -> tuple[int, ...]:
    """Journal order: "10" after "9", a branch's "3.0.1" after its group's "3"."""
    return tuple(int(part) for part in step_id.split("."))


def _tag(error: BaseException, step_id: str) -> None:
    """Remember which step raised, so ``resume`` of a faulted run knows what to try again."""
    with contextlib.suppress(AttributeError):  # exceptions with __slots__
        error.__batonflow_step__ = step_id  # type: ignore[attr-defined]
