"""A schedule acting on its ticks: exactly one decision and at most one run per tick, however
many processes share the store.

Every process hosting a schedule computes the same ticks. For each tick, the decision (start,
skip, buffer, paused, missed) is written as a governance record ``kind="trigger.tick"`` keyed
``<schedule>@<instant>`` by an insert-if-absent, with its audit entry, *before* anything is
started. The process that inserted it made the decision; every other process reads it and
follows it. The run's id is derived from the tick's key, so starting it is idempotent: a
process that dies between the record and the start leaves a tick whose run any process (the
next pass of a restarted one, or another) starts, once.

Per schedule, a record ``kind="trigger.schedule"`` says how far ticks were handled (the
cursor), the run started last, the tick buffered (overlap ``buffer_one``) and the last success
or failure. It is advisory (any process may rewrite it; the tick records decide): a process
that reads an older cursor only re-reads decisions already made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from batonflow import _serde
from batonflow.core import Engine
from batonflow.errors import InvalidTransition, RunNotFound
from batonflow.store import AuditEntry, RunStatus, Store
from batonflow.triggers._schedule import Overlap, ScheduleSpec, iso

__all__ = [
    "PAUSED_RECORD",
    "REQUEST_RECORD",
    "STATE_RECORD",
    "TICK_RECORD",
    "ScheduleTrigger",
    "Target",
    "run_id_for",
]

log = logging.getLogger("batonflow.triggers")

TICK_RECORD = "trigger.tick"
STATE_RECORD = "trigger.schedule"
PAUSED_RECORD = "trigger.paused"
REQUEST_RECORD = "trigger.request"
ACTOR = "system:triggers"
#: Ticks counted one by one at most when reporting what a long downtime missed.
COUNT_LIMIT = 100_000
#: Tick decisions after which nothing started (a backfill may decide those ticks again).
NOTHING_STARTED = frozenset({"paused", "skipped", "missed"})
ENDED = frozenset({RunStatus.COMPLETED, RunStatus.FAULTED, RunStatus.CANCELLED})

StartFn = Callable[[Engine, Any, str, str], Awaitable[str]]


@dataclass(frozen=True)
class Target:
    """What a trigger starts: ``workflow`` names it (listings, audit); ``start(engine, input,
    run_id, key)`` starts (or finds, for a key used before) its run and returns the run id;
    ``input_schema``: a document's ``input.schema``, checked before a webhook starts it."""

    workflow: str
    start: StartFn
    input_schema: Any = None


def run_id_for(key: str) -> str:
    """The run id of the run a trigger starts for ``key`` (a tick, a message): the same key
    always gives the same id, so a second start finds the first run."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"batonflow:trigger:{key}").hex


@dataclass
class _State:
    cursor: float | None = None
    last_run: str | None = None
    last_key: str | None = None
    buffered: str | None = None
    buffered_at: float | None = None
    seq: int = 0
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    missed: int = 0

    @classmethod
    def of(cls, data_json: str | None) -> _State:
        if not data_json:
            return cls()
        data = json.loads(data_json)
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


class ScheduleTrigger:
    """Starts ``target`` on ``spec``'s ticks (see the module). ``input`` is the run input
    (default: ``{"schedule": name, "scheduled_at": <ISO instant>}``; a given mapping gets the
    same two keys unless it has them). ``poll``: seconds between looks at the store for
    operator requests and a buffered tick (on the engine's clock)."""

    kind = "schedule"

    def __init__(
        self,
        name: str,
        spec: ScheduleSpec,
        target: Target,
        *,
        input: Mapping[str, Any] | None = None,
        poll: float = 5.0,
    ) -> None:
        self.name, self.spec, self.target = name, spec, target
        self.input = dict(input) if input is not None else None
        self.poll = poll

    # -- the loop -------------------------------------------------------------------------------
    async def run(self, engine: Engine, on_error: Callable[[str, str], Awaitable[None]]) -> None:
        """Act on ticks until cancelled; a failed pass is reported through ``on_error`` and
        tried again at the next poll."""
        while True:
            try:
                await self.check(engine)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("schedule %s: pass failed; trying again in %gs", self.name, self.poll)
                await on_error(type(exc).__name__, str(exc) or type(exc).__name__)
            await engine.clock.sleep(await self.sleep_for(engine))

    async def sleep_for(self, engine: Engine) -> float:
        now = engine.clock.now()
        due = await self.next_due(engine.store, now)
        return self.poll if due is None else max(min(due - now, self.poll), 0.0)

    async def next_due(self, store: Store, now: float) -> float | None:
        state = await self._state(store)
        if self.spec.periodic:
            return self.spec.next_after(state.cursor if state.cursor is not None else now)
        if state.last_run is None:
            return now
        run = await store.get_run(state.last_run)
        if run is None or run.status not in ENDED:
            return None
        assert self.spec.after is not None
        return (run.finished_at or run.updated_at) + self.spec.after

    async def close(self) -> None:
        """Nothing to release: a schedule holds no connection."""

    # -- one pass -------------------------------------------------------------------------------
    async def check(self, engine: Engine) -> list[dict[str, Any]]:
        """Act on everything due at the clock's time: operator requests, ticks since the
        cursor, a buffered tick whose blocker ended, a run decided but never started. Returns
        the tick decisions this pass made or followed."""
        store, now = engine.store, engine.clock.now()
        state = await self._state(store)
        done: list[dict[str, Any]] = []
        await self._recover(engine, state)
        done += await self._requests(engine, state)
        if self.spec.periodic:
            done += await self._periodic(engine, state, now)
        else:
            done += await self._after(engine, state, now)
        done += await self._release_buffered(engine, state)
        return done

    async def _periodic(self, engine: Engine, state: _State, now: float) -> list[dict[str, Any]]:
        if state.cursor is None:  # a new schedule starts with the next tick
            state.cursor = now
            await self._save(engine, state)
            return []
        horizon = now - self.spec.catchup_window
        if state.cursor < horizon:
            missed = self._count(state.cursor, horizon)
            if missed:
                log.warning(
                    "schedule %s: %d tick(s) before %s are older than the catch-up window",
                    self.name, missed, iso(horizon),
                )  # fmt: skip
            state.missed += missed
            state.cursor = horizon
            await self._save(engine, state)
        done = []
        for at in self.spec.ticks(state.cursor):
            if at > now:
                break
            done.append(await self._tick(engine, state, f"{self.name}@{iso(at)}", at))
            state.cursor = at
            await self._save(engine, state)
        return done

    def _count(self, start: float, end: float) -> int:
        if self.spec.every is not None:
            k0 = (start - self.spec.offset) // self.spec.every
            return int((end - self.spec.offset) // self.spec.every - k0)
        count = 0
        for at in self.spec.ticks(start):
            if at > end or count >= COUNT_LIMIT:
                break
            count += 1
        return count

    async def _after(self, engine: Engine, state: _State, now: float) -> list[dict[str, Any]]:
        due = await self.next_due(engine.store, now)
        if due is None or due > now:
            return []
        state.seq += 1
        decision = await self._tick(engine, state, f"{self.name}#{state.seq}", due)
        await self._save(engine, state)
        return [decision]

    # -- deciding and acting ----------------------------------------------------------------------
    async def _tick(
        self, engine: Engine, state: _State, key: str, at: float, *, manual: Overlap | None = None
    ) -> dict[str, Any]:
        """Decide tick ``key`` (at ``at``) unless decided before, then act on the decision. An
        operator's tick (``manual``: its overlap policy) ignores a pause and the catch-up
        window."""
        store, now = engine.store, engine.clock.now()
        open_run = await self._open(store, state.last_run)
        action = await self._decide(store, state, at, now, open_run, manual)
        data = {
            "schedule": self.name,
            "workflow": self.target.workflow,
            "key": key,
            "at": iso(at),
            "action": action,
            "run_id": run_id_for(key),
            "previous": open_run,
            "decided_at": iso(now),
        }
        data_json = _serde.dumps_lenient(data)
        run_id = data["run_id"] if action == "start" else None
        entry = AuditEntry("trigger.tick", data_json, run_id=run_id, actor=ACTOR)
        if not await store.add_record(TICK_RECORD, key, data_json, now, audit=[entry]):
            stored = await store.get_record(TICK_RECORD, key)
            data = json.loads(stored) if stored else data  # deleted meanwhile: ours stands
        await self._follow(engine, state, data)
        return data

    async def _decide(
        self,
        store: Store,
        state: _State,
        at: float,
        now: float,
        open_run: str | None,
        manual: Overlap | None,
    ) -> str:
        if manual is None:
            if await store.get_record(PAUSED_RECORD, self.name) is not None:
                return "paused"
            if self.spec.periodic and at < now - self.spec.catchup_window:
                return "missed"
        policy = manual or self.spec.overlap
        if open_run is None or policy is Overlap.ALLOW_ALL:
            return "start"
        if policy is Overlap.SKIP:
            return "skipped"
        if policy is Overlap.BUFFER_ONE:
            return "buffered" if state.buffered is None else "skipped"
        return "cancel_and_start"

    async def _follow(self, engine: Engine, state: _State, data: Mapping[str, Any]) -> None:
        action = data["action"]
        if action == "buffered":
            if state.buffered is None:
                state.buffered, state.buffered_at = data["key"], _seconds(data["at"])
            return
        if action not in ("start", "cancel_and_start"):
            return
        previous = data.get("previous")
        if action == "cancel_and_start" and previous:
            await self._cancel(engine, previous)
        await self._start(engine, state, data["key"], _seconds(data["at"]))

    async def _start(self, engine: Engine, state: _State, key: str, at: float) -> None:
        run_id = run_id_for(key)
        state.last_run, state.last_key = run_id, key
        await self._save(engine, state)  # a crash from here on: _recover starts it
        try:
            await self.target.start(engine, self._input(key, at), run_id, key)
        except Exception as exc:
            state.last_error = f"{type(exc).__name__}: {exc}"
            state.last_error_at = engine.clock.now()
            await self._save(engine, state)
            raise
        state.last_success, state.last_error = engine.clock.now(), None
        await self._save(engine, state)

    async def _cancel(self, engine: Engine, run_id: str) -> None:
        with contextlib.suppress(InvalidTransition, RunNotFound):  # it ended meanwhile
            await engine.cancel(run_id, actor=ACTOR)

    def _input(self, key: str, at: float) -> dict[str, Any]:
        base = dict(self.input) if self.input is not None else {}
        base.setdefault("schedule", self.name)
        base.setdefault("scheduled_at", iso(at))
        return base

    async def _recover(self, engine: Engine, state: _State) -> None:
        """A run decided (and named in the state) but not in the store: its starter died."""
        if state.last_key is None or state.last_run is None:
            return
        if await engine.store.get_run(state.last_run) is not None:
            return
        stored = await engine.store.get_record(TICK_RECORD, state.last_key)
        at = _seconds(json.loads(stored)["at"]) if stored else engine.clock.now()
        log.warning("schedule %s: starting run %s, decided but never started", self.name,
                    state.last_run)  # fmt: skip
        await self._start(engine, state, state.last_key, at)

    async def _release_buffered(self, engine: Engine, state: _State) -> list[dict[str, Any]]:
        if state.buffered is None or await self._open(engine.store, state.last_run):
            return []
        key, at = state.buffered, state.buffered_at or engine.clock.now()
        state.buffered = state.buffered_at = None
        await self._start(engine, state, key, at)
        return [{"schedule": self.name, "key": key, "at": iso(at), "action": "start"}]

    # -- operator requests (CLI) ----------------------------------------------------------------
    async def _requests(self, engine: Engine, state: _State) -> list[dict[str, Any]]:
        store, done = engine.store, []
        requests = [
            (json.loads(data), key) for key, data in await store.list_records(REQUEST_RECORD)
        ]
        mine = [(r, key) for r, key in requests if r.get("schedule") == self.name]
        for request, key in sorted(
            mine, key=lambda pair: (pair[0].get("requested_at", ""), pair[1])
        ):
            overlap = Overlap(request.get("overlap") or Overlap.ALLOW_ALL)
            if request["action"] == "trigger":
                tick = f"{self.name}@now:{key}"
                at = float(request["at"])
                done.append(await self._tick(engine, state, tick, at, manual=overlap))
            elif request["action"] == "backfill" and self.spec.periodic:
                done += await self._backfill(engine, state, request, overlap)
            await store.put_record(REQUEST_RECORD, key, None, engine.clock.now())
        return done

    async def _backfill(
        self, engine: Engine, state: _State, request: Mapping[str, Any], overlap: Overlap
    ) -> list[dict[str, Any]]:
        """The ticks in [start, end], as if they had fired then, under ``overlap``. A tick
        that started a run (or buffered one) keeps that decision, so a backfill never doubles a
        run; a tick that started nothing (paused, skipped, missed) is decided again, once."""
        start, end = float(request["start"]), float(request["end"])
        done = []
        for at in self.spec.ticks(start - 1e-6):
            if at > end:
                break
            key = f"{self.name}@{iso(at)}"
            stored = await engine.store.get_record(TICK_RECORD, key)
            if stored and json.loads(stored)["action"] in NOTHING_STARTED:
                key += "~backfill"
            done.append(await self._tick(engine, state, key, at, manual=overlap))
        return done

    # -- state ----------------------------------------------------------------------------------
    async def _state(self, store: Store) -> _State:
        return _State.of(await store.get_record(STATE_RECORD, self.name))

    async def _save(self, engine: Engine, state: _State) -> None:
        await engine.store.put_record(STATE_RECORD, self.name, state.to_json(),
                                      engine.clock.now())  # fmt: skip

    @staticmethod
    async def _open(store: Store, run_id: str | None) -> str | None:
        if run_id is None:
            return None
        run = await store.get_run(run_id)
        return run_id if run is not None and run.status not in ENDED else None

    # -- reporting ------------------------------------------------------------------------------
    async def status(self, store: Store, now: float) -> dict[str, Any]:
        """State, last success and error, backlog (ticks due but not acted upon yet, plus a
        buffered one) and the next fire times."""
        state = await self._state(store)
        paused = await store.get_record(PAUSED_RECORD, self.name) is not None
        backlog = 1 if state.buffered else 0
        upcoming: list[str] = []
        if self.spec.periodic:
            cursor = state.cursor if state.cursor is not None else now
            horizon = max(cursor, now - self.spec.catchup_window)
            backlog += self._count(horizon, now) if horizon < now else 0
            upcoming = [iso(at) for at in self.spec.upcoming(max(cursor, now))]
        else:
            due = await self.next_due(store, now)
            upcoming = [iso(due)] if due is not None else []
        failing = state.last_error is not None
        return {
            "name": self.name,
            "kind": self.kind,
            "workflow": self.target.workflow,
            "when": self.spec.describe(),
            "overlap": self.spec.overlap.value,
            "state": "paused" if paused else "failing" if failing else "active",
            "last_success": iso(state.last_success) if state.last_success else None,
            "last_error": state.last_error,
            "last_run": state.last_run,
            "backlog": backlog,
            "missed": state.missed,
            "next": upcoming,
        }


def _seconds(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
