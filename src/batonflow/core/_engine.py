"""The engine: starts runs, executes them, parks and wakes them, and recovers them after crashes.

An *activation* executes a run's workflow function from the top against its journal until the
run completes, faults, or must wait. One dispatcher loop claims runnable runs from the store
(new, woken, or orphaned by a dead engine); a heartbeat renews this engine's leases and notices
runs that were cancelled or taken from it elsewhere.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from batonflow._serde import dumps, error_to_dict, loads, roundtrip
from batonflow.core import _leases
from batonflow.core._around import Activation, Around, around
from batonflow.core._clock import Clock, SystemClock
from batonflow.core._context import LATEST_WAKE, Context, _Suspend, identifying
from batonflow.core._handle import Final, RunHandle
from batonflow.core._hooks import (
    Hook,
    Hooks,
    RunEnded,
    RunStarted,
    StoreFailing,
    StoreRecovered,
)
from batonflow.core._ids import time_ordered_id
from batonflow.core._loader import load_workflow
from batonflow.core._queues import Queue, queue_limits, served
from batonflow.core._trouble import StoreTrouble
from batonflow.core._workflow import Redact, Workflow
from batonflow.errors import (
    ConfigError,
    IdempotencyConflict,
    LeaseLost,
    NonDeterminismError,
    RunCancelled,
    RunNotFound,
    RunTimeout,
    StoreError,
    WorkflowNotFound,
)
from batonflow.store import (
    EventRecord,
    NewRun,
    RunRecord,
    RunStatus,
    StepKind,
    StepRecord,
    StepStatus,
    Store,
    WakeUps,
    open_store,
)

log = logging.getLogger("batonflow.engine")
#: How long a run waits before an engine tries again to load a workflow it could not find.
UNKNOWN_WORKFLOW_RETRY = 60.0
O = TypeVar("O")  # noqa: E741


class _Activation:
    __slots__ = ("fence_at", "finishing", "reason", "run", "task")

    def __init__(self, run: RunRecord, fence_at: float) -> None:
        self.run = run
        self.fence_at = fence_at  # when it must stop unless its lease is renewed (monotonic)
        self.task: asyncio.Task[None] | None = None
        self.reason: str | None = (
            None  # why it was cancelled: cancelled|suspended|lost|fenced|timeout|shutdown
        )
        self.finishing = False

    def stop(self, reason: str) -> bool:
        if self.task is not None and self.reason is None and not self.finishing:
            self.reason = reason
            self.task.cancel()
            return True
        return False


#: The ``step`` the redact hook is given for a run's result.
OUTPUT = "$output"


class Engine:
    """Executes workflows durably against a store.

    ``async with Engine("runs.db", workflows=[triage]) as engine:`` then ``engine.start(...)``.
    ``store`` is a Store, a ``sqlite:///`` URL, a file path or a ``postgresql://`` URL.
    Workflows started through the engine are registered automatically; list the others (or
    rely on their module reference) so that runs found in the store after a restart can be
    resumed.

    ``redact`` removes personal data before anything of a run is stored: its input, each step's
    arguments and result (the flow goes on with the redacted result, the same on replay), its
    output. Sealing (encryption per data subject) is the store's: see ``SealedStore``.
    ``http`` is the outbound client offered to steps (``ctx.http``, ``current_step().http``):
    the egress-controlled client of ``Setup.client``, so Python steps' calls are checked and
    recorded like every other.

    Scale-out (PostgreSQL, several engines on one store): ``queues`` gives the limits of named
    queues (``{"llm": Queue(concurrency=4, rate=RateLimit(50, per=60))}``), enforced across all
    engines, which should all be given the same; ``serve`` restricts this engine to runs of
    the listed queues (``"default"`` names runs on no queue). ``lease_seconds`` is how long a
    dead engine's runs wait before another engine takes them over.

    ``hooks`` (:class:`~batonflow.Hook`) are told as things happen: a run starts executing, a
    step's attempt fails, a run completes or faults (alerts are such a hook).
    """

    def __init__(
        self,
        store: Store | str | Path = "batonflow.db",
        *,
        workflows: Iterable[Workflow[Any, Any]] = (),
        clock: Clock | None = None,
        max_concurrent_runs: int = 500,
        lease_seconds: float = 30.0,
        poll_interval: float = 1.0,
        step_threads: int = 32,
        rng: random.Random | None = None,
        autoload: bool = True,
        queues: Mapping[str, Queue] | None = None,
        serve: Iterable[str] | None = None,
        redact: Redact | None = None,
        hooks: Iterable[Hook] = (),
        http: Any = None,
        around: Iterable[Around] = (),
    ) -> None:
        if max_concurrent_runs < 1:
            raise ConfigError("max_concurrent_runs must be at least 1")
        if lease_seconds <= 0 or poll_interval <= 0:
            raise ConfigError("lease_seconds and poll_interval must be positive")
        self.store: Store = open_store(store) if isinstance(store, str | Path) else store
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.max_concurrent_runs = max_concurrent_runs
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.autoload = autoload
        self.queues = dict(queues or {})
        self._limits = queue_limits(self.queues)
        self._serve = served(serve)
        self._redact = redact
        self.hooks = Hooks(hooks)
        #: The outbound HTTP client steps use (``ctx.http``, ``current_step().http``): give the
        #: egress-controlled one (``Setup.client``) so their calls are checked and recorded.
        self.http = http
        self.around: tuple[Around, ...] = tuple(around)
        self._fenced: set[str] = set()  # runs stopped by their lease fence, to hand back
        # runs whose hand-back the failing store refused: still ours, handed back once it works
        self._unreleased: set[str] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._step_threads = step_threads
        self._workflows: dict[str, Workflow[Any, Any]] = {}
        for wf in workflows:
            self.register(wf)
        self._active: dict[str, _Activation] = {}
        # futures of RunHandle.result() callers: resolved with the run's end, or None to re-read
        self._waiters: dict[str, list[asyncio.Future[Final | None]]] = {}
        self._wake = asyncio.Event()
        self._claim_lock = asyncio.Lock()
        self._busy = asyncio.Event()  # set while runs are active: the heartbeat idles otherwise
        self._loops: list[asyncio.Task[None]] = []
        self._threads: ThreadPoolExecutor | None = None
        self._open = False
        self._saturated = False
        self._store_trouble = StoreTrouble(self._store_failing, self._store_recovered)
        self._failing_since: float | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def open(self) -> Engine:
        """Open the store, take over orphaned runs, and start executing."""
        if self._open:
            return self
        await self.store.open()
        try:
            await self.store.acquire_worker(self.owner, self.clock.now())
        except BaseException:
            await self.store.close()
            raise
        try:
            await self.hooks.opened(self)
        except BaseException:
            await self.store.release_worker(self.owner, self.clock.now())
            await self.store.close()
            raise
        self._threads = ThreadPoolExecutor(self._step_threads, thread_name_prefix="batonflow-step")
        self._wake = asyncio.Event()
        self._claim_lock = asyncio.Lock()
        self._busy = asyncio.Event()
        self._open = True
        if isinstance(self.store, WakeUps):  # other processes' news wakes the dispatcher at once
            self._unsubscribe = self.store.on_work(self._poke)
        self._loops = [
            asyncio.create_task(self._dispatch(), name="batonflow-dispatch"),
            asyncio.create_task(_leases.heartbeat(self), name="batonflow-heartbeat"),
        ]
        return self

    async def close(self, grace: float = 0.0) -> None:
        """Stop executing: in-flight runs record what they finished and are handed back.

        With ``grace`` (seconds, real time), no new runs start, and runs in flight get that
        long to end or park by themselves before the rest are stopped and handed back.
        """
        if not self._open:
            return
        self._open = False
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._loops[0].cancel()  # the dispatcher: claim nothing more
        in_flight = [a.task for a in self._active.values() if a.task is not None]
        if grace > 0 and in_flight:
            await asyncio.wait(in_flight, timeout=grace)
        await _cancel(self._loops)
        activations = list(self._active.values())
        for act in activations:
            act.stop("shutdown")
        await asyncio.gather(*(a.task for a in activations if a.task), return_exceptions=True)
        await self.hooks.closing(self)
        try:
            await self.store.release_worker(self.owner, self.clock.now())
        finally:
            if self._threads is not None:
                self._threads.shutdown(wait=False, cancel_futures=True)
            await self.store.close()
            self._notify_all()

    async def __aenter__(self) -> Engine:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def threads(self) -> ThreadPoolExecutor:
        if self._threads is None:
            raise ConfigError("the engine is not open")
        return self._threads

    def register(self, wf: Workflow[Any, Any]) -> None:
        if not isinstance(wf, Workflow):
            raise ConfigError(f"expected a @workflow, got {type(wf).__name__}")
        known = self._workflows.get(wf.name)
        if known is not None and known is not wf and known.fn is not wf.fn and known.ref != wf.ref:
            raise ConfigError(f"two different workflows are named {wf.name!r}")
        self._workflows[wf.name] = wf

    # -- starting runs ------------------------------------------------------------------------
    async def start(
        self,
        wf: Workflow[Any, O],
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        run_id: str | None = None,
        timeout: float | None = None,
        started_by: str | None = None,
        subjects: Iterable[str] | None = None,
    ) -> RunHandle[O]:
        """Start a run and return its handle once the run is durably recorded.

        With an ``idempotency_key`` already used, the handle of that earlier run is returned and
        nothing new starts; reusing a key for another workflow or input is an IdempotencyConflict.
        ``timeout`` (seconds) overrides the workflow's own deadline for this run. ``started_by``
        names the identity starting it (audited; an approval's separation of duties uses it).
        The run is tagged with the data subjects the workflow's ``subjects`` finds in ``input``
        (or with ``subjects``, when given).
        """
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"a run timeout must be positive seconds, got {timeout}")
        self._require_open()
        self.register(wf)
        name = wf.name_for(input)
        input, tags = await wf.prepare(input, self._redact)
        if subjects is not None:
            tags = tuple(dict.fromkeys(subjects))
        self._check_sealed(wf, tags)
        _, input_json = roundtrip(input, what=f"the input of workflow {wf.name!r}")
        now, requested_at = self.clock.now(), time.monotonic()
        queue = wf.queue
        run_now = len(self._active) < self.max_concurrent_runs and self._runs_here(queue)
        new = NewRun(
            id=run_id or time_ordered_id(now),
            workflow=name,
            workflow_ref=wf.ref,
            input_json=input_json,
            status=RunStatus.RUNNING if run_now else RunStatus.PENDING,
            owner=self.owner if run_now else None,
            lease_until=now + self.lease_seconds if run_now else None,
            created_at=now,
            deadline=_deadline(now, timeout or wf.timeout),
            idempotency_key=idempotency_key,
            queue=queue,
            subjects=tags,
            started_by=started_by,
        )
        record, created = await self.store.create_run(new)
        if not created:
            _check_same_start(record, name, input_json, idempotency_key or new.id)
        elif run_now:
            self._launch(record, fresh=True, requested_at=requested_at)
        else:
            self._poke()
        return RunHandle(self, record.id, record)

    async def run(self, wf: Workflow[Any, O], input: Any = None, **start: Any) -> O:
        """Start a run and wait for its result."""
        return await (await self.start(wf, input, **start)).result()

    def _check_sealed(self, wf: Workflow[Any, Any], subjects: tuple[str, ...]) -> None:
        """Data subjects are stored as keyed references and their runs' data sealed, by a
        sealed store; a plain one would keep the ids (e-mail addresses) in clear for good."""
        if subjects and not getattr(self.store, "seals_subjects", False):
            raise ConfigError(
                f"workflow {wf.name!r} names data subjects; give the engine a sealed store:"
                " Engine(batonflow.governance.wrap_store(store)) (the CLI always does)"
            )

    def check_fence(self, run_id: str) -> None:
        """Before a step's side effect starts: if the run's fence has passed (its lease may be
        gone, and another engine may take it over), stop the activation now. The heartbeat
        stops fenced runs too, but it can be late when the event loop is busy; a new side
        effect must never begin past the fence."""
        act = self._active.get(run_id)
        if act is None or not act.fence_at or time.monotonic() < act.fence_at:
            return
        if act.stop("fenced"):
            self._fenced.add(run_id)
            log.warning(
                "run %s: lease not renewed in time; stopped it before its next step", run_id
            )
        raise asyncio.CancelledError

    def redacted(self, workflow: str, step: str | None, value: Any) -> Any:
        """``value`` as it may be stored: after the ``redact`` hook's persist policy for
        ``workflow``'s ``step`` (None: the run's input; ``OUTPUT``: its result)."""
        return value if self._redact is None else self._redact(workflow, step, value)

    def handle(self, run_id: str) -> RunHandle[Any]:
        return RunHandle(self, run_id)

    async def _start_child(
        self, ctx: Context, wf: Workflow[Any, Any], input: Any, step_id: str
    ) -> None:
        self.register(wf)
        name = wf.name_for(input)
        input, own = await wf.prepare(input, self._redact)
        self._check_sealed(wf, own)
        subjects = (*ctx.run.subjects, *own)
        _, input_json = roundtrip(input, what=f"the input of child workflow {wf.name!r}")
        now, requested_at = self.clock.now(), time.monotonic()
        child_id = f"{ctx.run_id}.{step_id}"
        run_now = len(self._active) < self.max_concurrent_runs and self._runs_here(wf.queue)
        new = NewRun(
            id=child_id,
            workflow=name,
            workflow_ref=wf.ref,
            input_json=input_json,
            status=RunStatus.RUNNING if run_now else RunStatus.PENDING,
            owner=self.owner if run_now else None,
            lease_until=now + self.lease_seconds if run_now else None,
            created_at=now,
            deadline=_deadline(now, wf.timeout),
            parent_id=ctx.run_id,
            parent_step=step_id,
            queue=wf.queue,
            subjects=tuple(dict.fromkeys(subjects)),
            started_by=ctx.run.started_by,
        )
        pending = StepRecord(
            ctx.run_id, step_id, StepKind.CHILD, wf.name, StepStatus.PENDING,
            input_json=input_json, started_at=now, child_id=child_id,
        )  # fmt: skip
        record, created = await self.store.create_run(new, parent_step=pending)
        if created and run_now:
            self._launch(record, fresh=True, requested_at=requested_at)
        else:
            self._poke()

    # -- operator actions and events ----------------------------------------------------------
    async def cancel(self, run_id: str, *, actor: str | None = None) -> RunRecord:
        """Cancel a run and its unfinished child runs; a parent waiting on it sees the failure.
        ``actor``: who did it, for the audit trail (likewise for suspend and resume)."""
        error = dumps(error_to_dict(RunCancelled(f"run {run_id} was cancelled")))
        record = await self.store.transition(
            run_id, RunStatus.CANCELLED, self.clock.now(), error, actor=actor
        )
        await self._after_operator_action(run_id, "cancelled")
        return record

    async def suspend(self, run_id: str, *, actor: str | None = None) -> RunRecord:
        """Pause a run at its next step boundary until ``resume``."""
        record = await self.store.transition(
            run_id, RunStatus.SUSPENDED, self.clock.now(), actor=actor
        )
        await self._after_operator_action(run_id, "suspended")
        return record

    async def resume(self, run_id: str, *, actor: str | None = None) -> RunRecord:
        """Continue a suspended run, or retry a faulted run from the step that failed."""
        record = await self.store.transition(
            run_id, RunStatus.PENDING, self.clock.now(), actor=actor
        )
        self._poke()
        return record

    async def _after_operator_action(self, run_id: str, reason: str) -> None:
        act = self._active.get(run_id)
        if act is not None:
            act.stop(reason)
        if self._open:
            await self._renew()  # stops local children that the store just cancelled
        self._notify_all()

    async def send_event(
        self, topic: str, payload: Any = None, *, run_id: str | None = None, key: str | None = None
    ) -> EventRecord:
        """Deliver an event to one run (``run_id``) or to whoever waits on ``key``.

        The event is stored first; a run that starts waiting for it later still receives it.
        """
        if not topic:
            raise ConfigError("an event needs a topic")
        payload_json = dumps(payload, what=f"the payload of event {topic!r}")
        event = await self.store.deliver_event(
            topic, payload_json, self.clock.now(), key=key, run_id=run_id
        )
        self._poke()
        return event

    # -- reading ------------------------------------------------------------------------------
    async def get_run(self, run_id: str) -> RunRecord:
        record = await self.store.get_run(run_id)
        if record is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        return record

    # -- execution ----------------------------------------------------------------------------
    def _require_open(self) -> None:
        if not self._open:
            raise ConfigError("the engine is not open: use `async with Engine(...) as engine:`")

    def _poke(self) -> None:
        self._wake.set()

    def poke(self) -> None:
        """Tell the dispatcher the store changed (runs became runnable): it looks at once
        instead of at its next poll. For extensions that write to the store directly."""
        self._poke()

    def _runs_here(self, queue: str | None) -> bool:
        """May this engine execute a new run of ``queue`` at once, without a claim? Not when the
        queue has limits (the claim enforces them) or is one this engine does not serve."""
        if queue is not None and queue in self._limits:
            return False
        return self._serve is None or (queue or "") in self._serve

    def _launch(self, run: RunRecord, *, fresh: bool, requested_at: float) -> None:
        act = _Activation(run, _leases.fence_at(requested_at, self.lease_seconds))
        self._active[run.id] = act
        if self.hooks:
            self.hooks.run_started(RunStarted(run, self.clock.now()))
        self._busy.set()
        # A fresh context: a child launched from inside its parent's task must not inherit the
        # parent's position counter or step info.
        act.task = asyncio.get_running_loop().create_task(
            self._activate(act, fresh),
            name=f"batonflow-run-{run.id}",
            context=contextvars.Context(),
        )

    async def _activate(self, act: _Activation, fresh: bool) -> None:
        run = act.run
        ctx: Context | None = None
        timer: asyncio.Task[None] | None = None
        try:
            try:
                wf = self._workflow_for(run)
            except WorkflowNotFound as missing:
                await self._set_aside(act, missing)
                return
            ctx = Context(self, run, [] if fresh else await self.store.load_steps(run.id))
            if run.deadline is not None:
                if self.clock.now() >= run.deadline:
                    raise RunTimeout(f"run {run.id} passed its deadline")
                timer = asyncio.create_task(self._deadline(act, run.deadline))
            info = Activation(run.id, run.workflow, run.activations, run.parent_id)
            try:
                given = loads(run.input_json)
                with identifying(_subject_ids(wf, given)), around(self.around, "activation", info):
                    output = await wf.invoke(ctx, given)  # subject ids kept from models
            except _Suspend:
                await self._park(act, ctx)
                self._store_trouble.ok()
                return
            _check_replayed_everything(ctx)
            if not wf.redacts_itself:
                output = self.redacted(wf.name, OUTPUT, output)
            _, output_json = roundtrip(output, what=f"the result of workflow {wf.name!r}")
            await self._finish(act, ctx, RunStatus.COMPLETED, output_json, None)
            self._store_trouble.ok()
        except asyncio.CancelledError:
            await self._stopped(act, ctx)
        except LeaseLost:
            log.warning("run %s: lease lost, leaving it to its new owner", run.id)
        except StoreError as exc:
            log.error("run %s: store failure, handing the run back: %s", run.id, exc)
            self._store_trouble.failed(exc)
            await self._release_quietly(run.id)
        except Exception as exc:
            cause = ctx.nondeterminism if ctx is not None and ctx.nondeterminism else exc
            error = error_to_dict(cause)
            handled = ctx.failure_being_handled(exc) if ctx is not None else None
            if "step" not in error and cause is exc and handled is not None:
                error["step"] = handled  # resume retries that step
            await self._finish(act, ctx, RunStatus.FAULTED, None, dumps(error))
        finally:
            if timer is not None:
                timer.cancel()
            self._active.pop(run.id, None)
            self._notify(run.id)
            if self._saturated or run.queue in self._limits:
                self._poke()  # room for a run that waits for this one's slot

    async def _set_aside(self, act: _Activation, missing: WorkflowNotFound) -> None:
        """An engine that cannot load a run's workflow does not fault it (its code may be
        missing here only: a misconfigured worker must not destroy runs); it parks the run for
        a while so that an engine that knows the workflow takes it, and says so loudly."""
        log.error(
            "run %s: %s; parked for %gs for an engine that has it", act.run.id, missing,
            UNKNOWN_WORKFLOW_RETRY,
        )  # fmt: skip
        act.finishing = True
        now = self.clock.now()
        await self.store.suspend_run(
            act.run.id, self.owner, now + UNKNOWN_WORKFLOW_RETRY, act.run.signal, [], [], now
        )

    async def _deadline(self, act: _Activation, deadline: float) -> None:
        await self.clock.sleep(deadline - self.clock.now())
        act.stop("timeout")

    async def _park(self, act: _Activation, ctx: Context) -> None:
        wakes = [w for w in ctx.wakes if w is not None]
        if act.run.deadline is not None:
            wakes.append(act.run.deadline)
        wake_at = min(wakes) if wakes else None
        steps, attempts = ctx.take_buffer()
        act.finishing = True
        status = await self.store.suspend_run(
            act.run.id, self.owner, wake_at, act.run.signal, steps, attempts, self.clock.now(),
            audit=ctx.take_trail(),
        )  # fmt: skip
        if status is RunStatus.PENDING or wake_at is not None:
            self._poke()

    async def _finish(
        self,
        act: _Activation,
        ctx: Context | None,
        status: RunStatus,
        output_json: str | None,
        error_json: str | None,
    ) -> None:
        steps, attempts = ctx.take_buffer() if ctx is not None else ([], [])
        act.finishing = True
        now = self.clock.now()  # the run's finished_at, which hooks are told too
        try:
            await self.store.finish_run(
                act.run.id, self.owner, status, output_json, error_json, steps, attempts,
                now, audit=ctx.take_trail() if ctx is not None else (),
            )  # fmt: skip
        except LeaseLost:
            log.warning("run %s: lease lost before it could finish", act.run.id)
            return
        run = act.run
        if self.hooks:
            error = loads(error_json) if error_json is not None else None
            self.hooks.run_ended(RunEnded(run, status, error, now))
        self._notify(run.id, Final(run.id, run.workflow, status, output_json, error_json))
        if status is RunStatus.FAULTED:
            log.warning("run %s (%s) faulted: %s", act.run.id, act.run.workflow, error_json)
        if act.run.parent_id is not None:
            self._poke()  # the parent may be runnable now
        if ctx is not None and ctx.started_children:
            await self._renew()  # stop local children the store just cancelled

    async def _stopped(self, act: _Activation, ctx: Context | None) -> None:
        run_id = act.run.id
        if act.reason == "timeout":
            error = RunTimeout(f"run {run_id} ran past its deadline")
            await self._finish(act, ctx, RunStatus.FAULTED, None, dumps(error_to_dict(error)))
        elif act.reason == "shutdown" and ctx is not None:
            steps, attempts = ctx.take_buffer()
            try:
                trail = ctx.take_trail()
                if steps or attempts or trail:
                    await self.store.save_steps(
                        run_id, self.owner, steps, attempts, self.clock.now(), audit=trail
                    )
                await self.store.release_run(run_id, self.owner, self.clock.now())
            except StoreError as exc:  # the lease will expire and another engine resumes it
                log.warning("run %s: could not hand back cleanly: %s", run_id, exc)
        elif act.reason is None:
            raise asyncio.CancelledError  # not ours: let it propagate
        # lost, fenced, cancelled, suspended: the store already says what became of the run

    async def _release_quietly(self, run_id: str) -> None:
        try:
            await self.store.release_run(run_id, self.owner, self.clock.now())
        except StoreError as exc:
            # it still reads RUNNING under our lease, which no claim of ours takes: remember it
            self._unreleased.add(run_id)
            log.warning("run %s: could not release (will again): %s", run_id, exc)
        else:
            self._unreleased.discard(run_id)

    async def _release_unreleased(self) -> bool:
        """Hand back the runs a failing store would not let go of; False if it still fails."""
        for run_id in sorted(self._unreleased):
            if run_id in self._active:
                continue
            try:
                await self.store.release_run(run_id, self.owner, self.clock.now())
            except StoreError as exc:
                self._store_trouble.failed(exc)
                return False
            self._unreleased.discard(run_id)
        return True

    def _workflow_for(self, run: RunRecord) -> Workflow[Any, Any]:
        wf = self._workflows.get(run.workflow)
        if wf is None:  # a workflow that runs many (an interpreter of documents) may claim it
            wf = next((w for w in self._workflows.values() if w.serves(run.workflow)), None)
        if wf is None and self.autoload and run.workflow_ref:
            wf = load_workflow(run.workflow_ref)
            if not wf.serves(run.workflow):
                raise WorkflowNotFound(
                    f"{run.workflow_ref} now defines workflow {wf.name!r}, not {run.workflow!r}"
                )
            self.register(wf)
        if wf is None:
            raise WorkflowNotFound(
                f"run {run.id} needs workflow {run.workflow!r}, which this engine does not know;"
                " pass it in Engine(workflows=[...])"
            )
        return wf

    def _store_failing(self, error: str) -> None:
        self._failing_since = now = self.clock.now()
        if self.hooks:
            self.hooks.store_failing(StoreFailing(error, now))

    def _store_recovered(self, error: str) -> None:
        now = self.clock.now()
        since, self._failing_since = self._failing_since or now, None
        if self.hooks:
            self.hooks.store_recovered(StoreRecovered(error, since, now))

    async def _dispatch(self) -> None:
        while True:
            pause = self._store_trouble.waiting()
            if pause > 0:  # a failing store (a full disk): wait, then try again; nothing is lost
                await asyncio.sleep(pause)
                continue
            self._wake.clear()
            room = await self._claim_once(self.clock.now())
            timer = None
            next_wake = await self.store.next_wake_at()
            if next_wake is not None and room > 0:
                # the clock may have moved while the store answered (a test's FakeClock)
                timer = max(next_wake - self.clock.now(), 0.0)
            if timer != 0.0 or not self._saturated:
                await self._idle(timer)

    async def _claim_once(self, now: float) -> int:
        """Launch what is runnable at ``now``; return how much room there was."""
        async with self._claim_lock:
            room = self.max_concurrent_runs - len(self._active)
            if room <= 0 or not self._open:  # closing: claim nothing more
                return room
            if self._store_trouble.waiting() > 0:  # the store is failing: let it recover
                return room
            if self._unreleased and not await self._release_unreleased():
                return room
            requested_at = time.monotonic()
            queued: dict[str, Any] = {}
            if self._limits or self._serve is not None:
                queued = {"queues": self._limits, "serve": self._serve}
            try:
                claimed = await self.store.claim_runs(
                    self.owner, now, now + self.lease_seconds, room, **queued
                )
            except StoreError as exc:
                log.error("cannot claim runs, retrying: %s", exc)
                self._store_trouble.failed(exc)
                return room
            self._saturated = len(claimed) >= room
            for run in claimed:
                if run.id not in self._active:
                    self._launch(run, fresh=False, requested_at=requested_at)
            return room

    async def settle(self) -> None:
        """Wait until nothing is running and nothing is runnable at the clock's current time.

        For tests with a FakeClock: after ``await engine.settle()`` every run has completed,
        faulted, or parked until a later time or an event. Waits for real work, never sleeps.
        """
        self._require_open()
        while True:
            tasks = [a.task for a in self._active.values() if a.task is not None]
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
                continue
            await self._claim_once(self.clock.now())
            if not self._active:
                return

    async def _idle(self, timer: float | None) -> None:
        """Wait for a poke, the next durable timer (clock time), or the poll interval.

        The poll notices what other processes wrote (an event sent from the CLI); they act in
        real time, so it is measured on the real clock even when tests inject a fake one.
        """
        waits = {
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(asyncio.sleep(self.poll_interval)),
        }
        if timer is not None:
            waits.add(asyncio.ensure_future(self.clock.sleep(timer)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _renew(self) -> None:
        if not self._active:
            return
        requested_at, ids = time.monotonic(), list(self._active)
        lost = await self.store.renew_leases(self.owner, ids, self.clock.now() + self.lease_seconds)
        fence = _leases.fence_at(requested_at, self.lease_seconds)
        for run_id in ids:
            act = self._active.get(run_id)
            if act is None:
                continue
            if run_id in lost:
                act.stop("lost")
            elif act.fence_at < fence:
                act.fence_at = fence

    # -- waiting for results ------------------------------------------------------------------
    def _watch(self, run_id: str) -> asyncio.Future[Final | None]:
        fut: asyncio.Future[Final | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(fut)
        return fut

    def _notify(self, run_id: str, final: Final | None = None) -> None:
        for fut in self._waiters.pop(run_id, ()):
            if not fut.done():
                fut.set_result(final)

    def _notify_all(self) -> None:
        for run_id in list(self._waiters):
            self._notify(run_id)


def _deadline(now: float, timeout: float | None) -> float | None:
    if not timeout:
        return None
    deadline = now + timeout
    if not math.isfinite(deadline) or deadline > LATEST_WAKE:
        raise ConfigError(
            f"a run timeout of {timeout!r} seconds ends after 9999-12-31T23:59:59Z; give at most"
            f" {LATEST_WAKE - now:.0f} seconds"
        )
    return deadline


async def _cancel(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until they have ended, cancelling again those that swallowed
    it (Python 3.11's ``asyncio.wait_for``, used by psycopg's pool, can lose a cancellation
    that arrives just as what it waits for completes)."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)


def _check_same_start(record: RunRecord, name: str, input_json: str, key: str) -> None:
    if record.workflow != name:
        raise IdempotencyConflict(
            f"key {key!r} already started a run of workflow {record.workflow!r} ({record.id}),"
            f" not {name!r}"
        )
    if loads(record.input_json) != loads(input_json):
        raise IdempotencyConflict(
            f"key {key!r} already started run {record.id} with a different input"
        )


def _check_replayed_everything(ctx: Context) -> None:
    if ctx.nondeterminism is not None:
        raise ctx.nondeterminism
    unvisited = ctx.unvisited()
    if unvisited:
        raise NonDeterminismError(
            f"run {ctx.run_id} finished without reaching recorded position(s) "
            f"{', '.join(unvisited[:5])}; the workflow code changed while this run was in flight"
        )


def _subject_ids(wf: Workflow[Any, Any], input: Any) -> tuple[str, ...]:
    """The subjects a Python workflow's ``subjects`` finds in its stored input (a document's
    runtime names its own); ``()`` if that input, redacted before storage, no longer says."""
    if wf.redacts_itself:
        return ()
    try:
        return wf.subjects_of(input)
    except ConfigError:
        return ()
