"""What each hosted trigger is doing, in one shape for the CLI, the API and the console.

:func:`describe_triggers` reads the store (the records every hosting process writes) and the
configured triggers; nothing here needs a running host, so a ``serve --no-workers`` process
and ``batonflow triggers list`` answer alike. Kinds: ``schedule``, ``mailbox``, and any other
trigger whose ``status()`` gives the common keys (webhooks).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from batonflow.errors import ConfigError
from batonflow.store import Store
from batonflow.triggers._schedule import iso
from batonflow.triggers._scheduler import PAUSED_RECORD, REQUEST_RECORD, ScheduleTrigger

__all__ = ["TriggerInfo", "TriggerNotFound", "describe_triggers", "find_trigger"]

#: Fire times listed per schedule.
UPCOMING = 3


class TriggerNotFound(ConfigError):
    """No configured trigger (or, for trigger-now and backfill, no schedule) of that name."""


@dataclass(frozen=True)
class TriggerInfo:
    """One trigger as an operator sees it. Instants are ISO 8601: ``next`` and ``last_*`` in
    UTC, ``next_local`` the same fire times in the schedule's ``zone``. ``backlog``: ticks due
    and not acted upon yet, a buffered tick and operator requests waiting (schedules), messages
    not handled yet (mailboxes); None when unknown. ``failures``: refused deliveries
    (webhooks; None for the other kinds); ``unsigned``: a webhook that checks no signature."""

    name: str
    kind: str
    workflow: str
    when: str
    state: str  # active, paused, failing
    zone: str | None
    next: tuple[str, ...]
    next_local: tuple[str, ...]
    last_success: str | None
    last_error: str | None
    last_error_at: str | None
    last_run: str | None
    backlog: int | None
    pending_requests: int
    missed: int
    overlap: str | None
    catchup_window: float | None
    paused_by: str | None
    paused_at: str | None
    pause_reason: str | None
    failures: int | None = None
    unsigned: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``batonflow triggers list --json`` and the API answer this)."""
        data = dict(self.__dict__)
        data["next"], data["next_local"] = list(self.next), list(self.next_local)
        return data


async def describe_triggers(store: Store, triggers: Sequence[Any], now: float) -> list[TriggerInfo]:
    """Every trigger in ``triggers`` (as configured), by name, as of ``now``."""
    requests = _pending_requests(
        [json.loads(d) for _, d in await store.list_records(REQUEST_RECORD)]
    )
    found = [await _describe(store, t, now, requests.get(t.name, 0)) for t in triggers]
    return sorted(found, key=lambda info: info.name)


def find_trigger(triggers: Sequence[Any], name: str, *, schedules_only: bool = False) -> Any:
    """The trigger called ``name`` (for trigger-now and backfill: a schedule), else
    :class:`TriggerNotFound` naming the ones there are."""
    for trigger in triggers:
        if trigger.name == name and (trigger.kind == "schedule" or not schedules_only):
            return trigger
    names = sorted(t.name for t in triggers if t.kind == "schedule" or not schedules_only)
    what = "schedule" if schedules_only else "trigger"
    raise TriggerNotFound(
        f"no {what} named {name!r} (known: {', '.join(names) or 'none configured'}); triggers"
        " are [triggers.schedules.NAME], [triggers.mailboxes.NAME] and [triggers.webhooks.NAME]"
        " tables in batonflow.toml and documents with a schedule or a webhook"
    )


async def _describe(store: Store, trigger: Any, now: float, requests: int) -> TriggerInfo:
    status: dict[str, Any] = await trigger.status(store, now)
    paused_json = await store.get_record(PAUSED_RECORD, trigger.name)
    paused: dict[str, Any] = json.loads(paused_json) if paused_json else {}
    zone = overlap = catchup = None
    if isinstance(trigger, ScheduleTrigger):
        zone, catchup = trigger.spec.zone, trigger.spec.catchup_window
        overlap = trigger.spec.overlap.value
    elif status.get("overlap") not in (None, "-"):
        overlap = str(status["overlap"])
    upcoming = [str(at) for at in status.get("next") or ()][:UPCOMING]
    backlog = status.get("backlog")
    if backlog is not None:
        backlog = int(backlog) + requests
    return TriggerInfo(
        name=trigger.name,
        kind=trigger.kind,
        workflow=trigger.target.workflow,
        when=str(status.get("when") or trigger.kind),
        state=str(status.get("state") or "active"),
        zone=zone,
        next=tuple(upcoming),
        next_local=tuple(_local(at, zone) for at in upcoming),
        last_success=status.get("last_success"),
        last_error=status.get("last_error"),
        last_error_at=await _error_at(store, trigger, status),
        last_run=status.get("last_run"),
        backlog=backlog,
        pending_requests=requests,
        missed=int(status.get("missed") or 0),
        overlap=overlap,
        catchup_window=catchup,
        paused_by=paused.get("by"),
        paused_at=paused.get("at"),
        pause_reason=paused.get("note") or None,
        failures=int(status["failures"]) if status.get("failures") is not None else None,
        unsigned=bool(status.get("unsigned")),
    )


def _pending_requests(requests: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in requests:
        name = str(request.get("schedule"))
        counts[name] = counts.get(name, 0) + 1
    return counts


async def _error_at(store: Store, trigger: Any, status: dict[str, Any]) -> str | None:
    """When the last failure happened: the kinds keep it in their own state record."""
    if status.get("last_error") is None:
        return None
    if "last_error_at" in status:
        return str(status["last_error_at"]) if status["last_error_at"] is not None else None
    from batonflow.triggers._mailbox import MAIL_STATE
    from batonflow.triggers._scheduler import STATE_RECORD

    kind = {"schedule": STATE_RECORD, "mailbox": MAIL_STATE}.get(trigger.kind)
    data = await store.get_record(kind, trigger.name) if kind else None
    at = json.loads(data).get("last_error_at") if data else None
    return iso(float(at)) if at is not None else None


def _local(utc: str, zone: str | None) -> str:
    """``utc`` (ISO, ``Z``) in ``zone`` with its offset, e.g. 2026-03-29T02:30:00+01:00."""
    moment = dt.datetime.fromisoformat(utc.replace("Z", "+00:00"))
    if zone is None:
        return utc
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(zone)).isoformat()
