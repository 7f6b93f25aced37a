"""A document's ``schedule.on``: each matching CloudEvent starts one run, across processes.

Every published CloudEvent (the API's ``/api/v1/events/cloudevents``, ``batonflow dsl
publish``, a workflow's ``emit``, a webhook with ``publish = true``) goes through
:func:`batonflow.dsl._events.publish`, which calls :func:`offer`. For every subscription
(``kind="trigger.on"``, written by each process hosting the trigger) whose filters the event
passes, the event is claimed by an insert-if-absent record ``kind="trigger.event"`` keyed
``<trigger>|<source>|<id>`` (CloudEvents' ``source`` + ``id`` names one event), audited, and
queued (``kind="trigger.event.inbox"``). A process hosting the trigger starts one run per
queued event -- its id derived from the claim's key, so two processes starting it find one
run -- and only then removes it from the queue. The same event published twice is claimed
once; an event published while no process hosts the trigger waits in the queue (for a week:
a subscription nobody renewed for that long is ignored, its document is gone).

The run's input is the list of the events that started it (the specification's shape for
event-driven scheduling): ``[event]``. ``one`` and ``any`` are acted upon; ``all`` (a run per
set of correlated events) is refused with a clear error when the document is loaded.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from batonflow import _serde
from batonflow.core import Engine
from batonflow.errors import ConfigError
from batonflow.store import AuditEntry, Store
from batonflow.triggers._scheduler import PAUSED_RECORD, Target, run_id_for

__all__ = ["EVENT_RECORD", "INBOX_RECORD", "SUBSCRIPTION_RECORD", "EventTrigger", "offer"]

log = logging.getLogger("batonflow.triggers")

SUBSCRIPTION_RECORD = "trigger.on"
EVENT_RECORD = "trigger.event"
INBOX_RECORD = "trigger.event.inbox"
ACTOR = "system:triggers"
#: A subscription no process renewed for this long (seconds) is ignored by publishers.
ABANDONED_AFTER = 7 * 86400.0


def event_filters(on: Any, where: str) -> list[dict[str, Any]]:
    """The filters of a ``schedule.on`` strategy (``one``, or ``any``: an empty list takes
    every event); ConfigError for what is not acted upon."""
    if not isinstance(on, Mapping):
        raise ConfigError(f"{where}.on: expected an event consumption strategy (one, any)")
    if "all" in on:
        raise ConfigError(
            f"{where}.on.all: starting a run on a set of correlated events is not supported;"
            " use one or any (a run per event)"
        )
    if "until" in on:
        raise ConfigError(f"{where}.on.until: applies to listen tasks, not to a schedule")
    if "one" in on:
        filters = [on["one"]]
    elif "any" in on:
        filters = list(on["any"] or [])
    else:
        raise ConfigError(f"{where}.on: expected one or any")
    if not all(isinstance(f, Mapping) for f in filters):
        raise ConfigError(f"{where}.on: each event filter is a mapping (with, correlate)")
    return [dict(f) for f in filters]


class EventTrigger:
    """Starts ``target`` once per published event that passes ``filters`` (see the module);
    ``poll``: seconds between looks at the queue (on the engine's clock)."""

    kind = "events"

    def __init__(
        self, name: str, filters: list[dict[str, Any]], target: Target, *, poll: float = 5.0
    ) -> None:
        self.name, self.filters, self.target, self.poll = name, filters, target, poll

    async def run(self, engine: Engine, on_error: Callable[[str, str], Awaitable[None]]) -> None:
        while True:
            try:
                await self.check(engine)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("events trigger %s: pass failed", self.name)
                await on_error(type(exc).__name__, str(exc) or type(exc).__name__)
            await engine.clock.sleep(self.poll)

    async def subscribe(self, store: Store, now: float) -> None:
        """Tell publishers (any process) which events this trigger takes, and that it is
        hosted this hour (a subscription nobody renewed for a week takes no more events)."""
        data = json.dumps({"workflow": self.target.workflow, "filters": self.filters,
                           "hour": int(now // 3600)}, sort_keys=True)  # fmt: skip
        if await store.get_record(SUBSCRIPTION_RECORD, self.name) != data:
            await store.put_record(SUBSCRIPTION_RECORD, self.name, data, now)

    async def check(self, engine: Engine) -> list[dict[str, Any]]:
        """Subscribe, then start a run for each queued event (unless paused: they wait)."""
        store, now = engine.store, engine.clock.now()
        await self.subscribe(store, now)
        if await store.get_record(PAUSED_RECORD, self.name) is not None:
            return []
        done: list[dict[str, Any]] = []
        for key, data in await self._queued(store):
            claim = json.loads(await store.get_record(EVENT_RECORD, key) or "{}")
            if "run_id" not in claim:  # else: a copy published again after its run started
                run_id = await self.target.start(engine, [json.loads(data)], run_id_for(key), key)
                claim.update(trigger=self.name, key=key, run_id=run_id)
                note = _serde.dumps_lenient(claim)
                entry = AuditEntry("trigger.event.started", note, run_id=run_id, actor=ACTOR)
                await store.put_record(EVENT_RECORD, key, note, engine.clock.now(), audit=[entry])
                done.append({"trigger": self.name, "key": key, "run_id": run_id})
            await store.put_record(INBOX_RECORD, key, None, engine.clock.now())
        return done

    async def _queued(self, store: Store) -> list[tuple[str, str]]:
        prefix = f"{self.name}|"
        return [(k, d) for k, d in await store.list_records(INBOX_RECORD) if k.startswith(prefix)]

    async def close(self) -> None:
        return None

    async def status(self, store: Store, now: float) -> dict[str, Any]:
        paused = await store.get_record(PAUSED_RECORD, self.name) is not None
        kinds = [f.get("with", {}).get("type") for f in self.filters]
        described = ", ".join(str(k) for k in kinds if k) or "any event"
        return {
            "name": self.name,
            "kind": self.kind,
            "workflow": self.target.workflow,
            "when": f"on {described}",
            "overlap": "-",
            "state": "paused" if paused else "active",
            "last_success": None,
            "last_error": None,
            "last_run": None,
            "backlog": len(await self._queued(store)),
            "failures": 0,
            "missed": 0,
            "next": [],
        }


async def offer(
    store: Store, event: Mapping[str, Any], now: float, evaluator: Any, actor: str | None
) -> list[str]:
    """Claim and queue ``event`` for every subscribed trigger it matches; returns the keys
    claimed now (an event claimed before is not queued again)."""
    from batonflow.dsl._events import first_match

    subscriptions = await store.list_records(SUBSCRIPTION_RECORD)
    if not subscriptions:
        return []
    claimed: list[str] = []
    for name, data in subscriptions:
        subscription = json.loads(data)
        if now - subscription.get("hour", 0) * 3600 > ABANDONED_AFTER:
            continue  # its document is hosted nowhere any more: nobody would drain the queue
        filters = subscription.get("filters") or []
        if await first_match(dict(event), filters, evaluator) is None:
            continue
        key = f"{name}|{event.get('source')}|{event.get('id')}"
        payload = _serde.dumps(dict(event), what="the event")
        note = _serde.dumps_lenient({"trigger": name, "key": key, "type": event.get("type")})
        entry = AuditEntry("trigger.event.claimed", note, actor=actor or ACTOR)
        # queued before it is claimed: a process dying in between leaves it queued, never
        # lost; a copy queued by a second publisher is dropped by the host (the claim says
        # its run was started)
        await store.add_record(INBOX_RECORD, key, payload, now)
        if await store.add_record(EVENT_RECORD, key, note, now, audit=[entry]):
            claimed.append(key)
    return claimed
