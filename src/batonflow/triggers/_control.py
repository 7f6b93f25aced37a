"""Operator actions on schedules, written to the store for whichever process hosts them.

Pause and resume take effect at the next tick; "trigger now" and "backfill" are requests
(governance records ``kind="trigger.request"``) that the next pass of a hosting process acts
upon, with the schedule's overlap policy. A backfilled tick that was already decided keeps its
decision, so a backfill never starts a tick's run twice. Every action is audited.
"""

from __future__ import annotations

import json
import uuid

from batonflow import _serde
from batonflow.errors import ConfigError
from batonflow.store import AuditEntry, Store
from batonflow.triggers._schedule import Overlap, iso
from batonflow.triggers._scheduler import PAUSED_RECORD, REQUEST_RECORD

__all__ = ["pause", "request_backfill", "request_trigger", "resume"]


async def pause(store: Store, name: str, *, by: str, now: float, note: str = "") -> bool:
    """Pause schedule ``name``: its ticks are recorded as ``paused`` and start nothing.
    False if it was paused already."""
    data = _serde.dumps_lenient({"schedule": name, "by": by, "at": iso(now), "note": note})
    entry = AuditEntry("trigger.paused", data, actor=by)
    return await store.add_record(PAUSED_RECORD, name, data, now, audit=[entry])


async def resume(store: Store, name: str, *, by: str, now: float) -> bool:
    """Resume schedule ``name`` from its next tick (paused ticks are not caught up: backfill
    them if they are wanted). False if it was not paused."""
    if await store.get_record(PAUSED_RECORD, name) is None:
        return False
    data = _serde.dumps_lenient({"schedule": name, "by": by, "at": iso(now)})
    entry = AuditEntry("trigger.resumed", data, actor=by)
    await store.put_record(PAUSED_RECORD, name, None, now, audit=[entry])
    return True


async def request_trigger(
    store: Store, name: str, *, by: str, now: float, overlap: Overlap = Overlap.ALLOW_ALL
) -> str:
    """Ask for one run of schedule ``name`` now (while its last run is open: as ``overlap``
    says; by default it starts anyway); returns the request's key."""
    request = {"schedule": name, "action": "trigger", "at": now, "overlap": overlap.value}
    return await _request(store, request, by, now)


async def request_backfill(
    store: Store,
    name: str,
    *,
    start: float,
    end: float,
    by: str,
    now: float,
    overlap: Overlap = Overlap.ALLOW_ALL,
) -> str:
    """Ask for schedule ``name``'s ticks in [start, end] to be acted upon as if they had
    fired then (under ``overlap``: by default each starts); returns the request's key. Ticks
    that started a run keep it; ticks that started nothing (paused, skipped, missed) start
    one."""
    if end < start:
        raise ConfigError(f"backfill of {name!r}: the end {iso(end)} is before the start")
    if end > now:
        raise ConfigError(f"backfill of {name!r}: the end {iso(end)} is in the future")
    request = {
        "schedule": name, "action": "backfill", "start": start, "end": end,
        "overlap": overlap.value,
    }  # fmt: skip
    return await _request(store, request, by, now)


async def _request(store: Store, request: dict[str, object], by: str, now: float) -> str:
    key = uuid.uuid4().hex
    data = json.dumps({**request, "by": by, "requested_at": iso(now)})
    entry = AuditEntry("trigger.requested", data, actor=by)
    await store.add_record(REQUEST_RECORD, key, data, now, audit=[entry])
    return key
