"""``/api/v1/triggers``: the service's schedules and mailboxes (state, next fire times, last
success and failure, backlog), and the operator actions of ``batonflow triggers``: pause,
resume, trigger-now, backfill. The same library functions and role (``trigger.operate``) as
the command line; each action is audited with the caller as its actor. Trigger-now and
backfill are requests (202) that the process hosting the schedule acts on at its next look."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

import batonflow as bf
from batonflow.governance._identity import Identity
from batonflow.server._auth import allowed, service_of
from batonflow.server._models import Body
from batonflow.triggers import _control
from batonflow.triggers._describe import TriggerInfo, describe_triggers, find_trigger
from batonflow.triggers._schedule import Overlap

router = APIRouter(prefix="/triggers", tags=["triggers"])
Reader = Annotated[Identity, Depends(allowed("read"))]
Operator = Annotated[Identity, Depends(allowed("trigger.operate"))]
Policy = Literal["skip", "buffer_one", "allow_all", "cancel_other"]


class TriggerOut(BaseModel):
    """One trigger. Instants are ISO 8601; `next` in UTC, `next_local` the same fire times in
    the schedule's `zone`."""

    name: str
    kind: str = Field(..., description="schedule, mailbox or webhook")
    workflow: str
    when: str = Field(..., description="When it fires, in words")
    state: Literal["active", "paused", "failing"]
    zone: str | None = None
    next: list[str] = Field([], description="The next fire times (up to 3), UTC")
    next_local: list[str] = Field([], description="The same, in the schedule's zone")
    last_success: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    last_run: str | None = None
    backlog: int | None = Field(
        None, description="Ticks due, a buffered tick and requests waiting; unhandled messages"
    )
    pending_requests: int = 0
    missed: int = Field(0, description="Ticks older than the catch-up window, not acted upon")
    overlap: str | None = None
    catchup_window: float | None = Field(None, description="Seconds")
    paused_by: str | None = None
    paused_at: str | None = None
    pause_reason: str | None = None
    failures: int | None = Field(None, description="Refused deliveries (webhooks)")
    unsigned: bool = Field(False, description="A webhook that checks no signature")

    @classmethod
    def of(cls, info: TriggerInfo) -> TriggerOut:
        return cls.model_validate(info.to_dict())


class TriggerPage(BaseModel):
    items: list[TriggerOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


class Pause(Body):
    reason: str = Field("", max_length=2000, description="Why; recorded in the audit")


class TriggerNow(Body):
    overlap: Policy = Field("allow_all", description="While the last run is open")


class Backfill(Body):
    start: dt.datetime = Field(..., description="First instant (ISO 8601; no zone: UTC)")
    end: dt.datetime = Field(..., description="Last instant, not in the future")
    overlap: Policy = Field("allow_all", description="While the last run is open")


class Changed(BaseModel):
    changed: bool = Field(..., description="False when it was paused (or running) already")
    trigger: TriggerOut


class Requested(BaseModel):
    request: str = Field(..., description="The request's key, in the audit trail")
    trigger: TriggerOut


def _cursor(name: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([name]).encode()).decode().rstrip("=")


def _after(cursor: str) -> str:
    """The name a cursor this API gave out ends after."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        [name] = json.loads(raw)
        if not isinstance(name, str):
            raise TypeError(name)
        return name
    except (ValueError, TypeError) as exc:
        raise bf.ConfigError(f"cursor {cursor!r} is not one this API gave out") from exc


async def _one(request: Request, name: str) -> TriggerOut:
    service = service_of(request)
    trigger = find_trigger(service.triggers, name)
    [info] = await describe_triggers(service.store, [trigger], service.now())
    return TriggerOut.of(info)


@router.get("", response_model=TriggerPage)
async def list_triggers(
    request: Request,
    me: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> TriggerPage:
    """The triggers this service hosts, by name, a page at a time (`next_cursor`)."""
    service = service_of(request)
    infos = await describe_triggers(service.store, service.triggers, service.now())
    if cursor:
        after = _after(cursor)
        infos = [i for i in infos if i.name > after]
    page = infos[:limit]
    more = len(infos) > limit
    return TriggerPage(
        items=[TriggerOut.of(i) for i in page],
        next_cursor=_cursor(page[-1].name) if more and page else None,
    )


@router.post("/{name:path}/pause", response_model=Changed)
async def pause(name: str, request: Request, me: Operator, body: Pause | None = None) -> Changed:
    """Pause a trigger: a schedule's ticks start nothing, a mailbox's messages wait in it."""
    service = service_of(request)
    find_trigger(service.triggers, name)
    reason = body.reason if body is not None else ""
    changed = await _control.pause(service.store, name, by=me.name, now=service.now(),
                                   note=reason)  # fmt: skip
    return Changed(changed=changed, trigger=await _one(request, name))


@router.post("/{name:path}/resume", response_model=Changed)
async def resume(name: str, request: Request, me: Operator) -> Changed:
    """Resume a paused trigger (a schedule from its next tick: backfill the paused ones)."""
    service = service_of(request)
    find_trigger(service.triggers, name)
    changed = await _control.resume(service.store, name, by=me.name, now=service.now())
    return Changed(changed=changed, trigger=await _one(request, name))


@router.post("/{name:path}/trigger-now", response_model=Requested, status_code=202)
async def trigger_now(
    name: str, request: Request, me: Operator, body: TriggerNow | None = None
) -> Requested:
    """Ask for one run of a schedule now; the hosting process starts it at its next look."""
    service = service_of(request)
    find_trigger(service.triggers, name, schedules_only=True)
    overlap = Overlap(body.overlap if body is not None else "allow_all")
    key = await _control.request_trigger(service.store, name, by=me.name, now=service.now(),
                                         overlap=overlap)  # fmt: skip
    service.poke()
    return Requested(request=key, trigger=await _one(request, name))


@router.post("/{name:path}/backfill", response_model=Requested, status_code=202)
async def backfill(name: str, body: Backfill, request: Request, me: Operator) -> Requested:
    """Act on a schedule's ticks in [start, end] as if they had fired; ticks that started a
    run keep it."""
    service = service_of(request)
    find_trigger(service.triggers, name, schedules_only=True)
    key = await _control.request_backfill(
        service.store, name, start=_seconds(body.start), end=_seconds(body.end), by=me.name,
        now=service.now(), overlap=Overlap(body.overlap),
    )  # fmt: skip
    service.poke()
    return Requested(request=key, trigger=await _one(request, name))


@router.get("/{name:path}", response_model=TriggerOut)
async def get_trigger(name: str, request: Request, me: Reader) -> TriggerOut:
    """One trigger (a document's schedule is named `namespace/name`)."""
    return await _one(request, name)


def _seconds(moment: dt.datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
