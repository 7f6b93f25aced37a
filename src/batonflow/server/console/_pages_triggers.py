"""``/triggers``: the schedules and mailboxes the service hosts (state, next fire times in the
schedule's zone and UTC, last success and failure, backlog), with pause, resume, trigger now
and backfill as form posts. The same description (:func:`describe_triggers`) and operator
functions (:mod:`batonflow.triggers._control`) as the API and the command line, under the
same ``trigger.operate`` role; every action is audited with the signed-in person."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import batonflow as bf
from batonflow.governance._identity import Identity, can
from batonflow.server._auth import service_of
from batonflow.server.console import router
from batonflow.server.console._guard import Refused, posted, signed_in
from batonflow.server.console._render import flash, render
from batonflow.triggers import _control
from batonflow.triggers._describe import TriggerInfo, describe_triggers, find_trigger
from batonflow.triggers._schedule import Overlap

OPERATE = "trigger.operate"
Operator = Annotated[Identity, Depends(signed_in(OPERATE))]
_POLICIES = [p.value for p in Overlap]


def _instant(utc: str, zone: str | None) -> dict[str, str]:
    """A fire time as shown: in the schedule's zone (with its abbreviation) and in UTC."""
    moment = dt.datetime.fromisoformat(utc.replace("Z", "+00:00"))
    local = moment.astimezone(ZoneInfo(zone)) if zone else moment
    return {
        "iso": utc,
        "local": local.strftime("%a %d %b %Y %H:%M ") + (local.tzname() or ""),
        "utc": moment.strftime("%H:%M UTC"),
    }


def _row(info: TriggerInfo) -> dict[str, Any]:
    return {"info": info, "next": [_instant(at, info.zone) for at in info.next]}


@router.get("/triggers")
async def triggers(request: Request, me: Annotated[Identity, Depends(signed_in())]) -> Response:
    service = service_of(request)
    infos = await describe_triggers(service.store, service.triggers, service.now())
    context = {
        "rows": [_row(i) for i in infos],
        "schedules": [i.name for i in infos if i.kind == "schedule"],
        "operate": can(me, OPERATE),
        "policies": _POLICIES,
    }
    return render(request, "triggers.html", context)


def _named(request: Request, name: str, *, schedules_only: bool = False) -> None:
    try:
        find_trigger(service_of(request).triggers, name, schedules_only=schedules_only)
    except bf.ConfigError as exc:
        raise Refused("No such trigger", str(exc), status=404) from None


def _done(request: Request, message: str) -> Response:
    response = RedirectResponse("/triggers", status_code=303)
    flash(request, response, message)
    return response


@router.post("/triggers/{name:path}/pause")
async def pause(name: str, request: Request, me: Operator) -> Response:
    form = await posted(request)
    _named(request, name)
    service = service_of(request)
    reason = str(form.get("reason", "")).strip()[:2000]
    changed = await _control.pause(service.store, name, by=me.name, now=service.now(),
                                   note=reason)  # fmt: skip
    return _done(request, f"{name}: {'paused' if changed else 'was paused already'}")


@router.post("/triggers/{name:path}/resume")
async def resume(name: str, request: Request, me: Operator) -> Response:
    await posted(request)
    _named(request, name)
    service = service_of(request)
    changed = await _control.resume(service.store, name, by=me.name, now=service.now())
    return _done(request, f"{name}: {'resumed' if changed else 'was not paused'}")


@router.post("/triggers/{name:path}/trigger-now")
async def trigger_now(name: str, request: Request, me: Operator) -> Response:
    form = await posted(request)
    _named(request, name, schedules_only=True)
    service = service_of(request)
    overlap = _policy(form)
    await _control.request_trigger(service.store, name, by=me.name, now=service.now(),
                                   overlap=overlap)  # fmt: skip
    service.poke()
    return _done(request, f"{name}: a run was requested; the hosting process starts it shortly")


@router.post("/triggers/backfill")
async def backfill(request: Request, me: Operator) -> Response:
    form = await posted(request)
    name = str(form.get("name", ""))
    _named(request, name, schedules_only=True)
    service = service_of(request)
    start, end = _moment(form, "start"), _moment(form, "end")
    try:
        await _control.request_backfill(service.store, name, start=start, end=end, by=me.name,
                                        now=service.now(), overlap=_policy(form))  # fmt: skip
    except bf.ConfigError as exc:
        raise Refused("This backfill was refused", str(exc), status=400) from None
    service.poke()
    return _done(request, f"{name}: a backfill was requested; the hosting process acts shortly")


def _policy(form: FormData) -> Overlap:
    text = str(form.get("overlap") or Overlap.ALLOW_ALL.value)
    if text not in _POLICIES:
        raise Refused("Unknown overlap policy",
                      f"overlap: expected one of {', '.join(_POLICIES)}, got {text!r}",
                      status=400)  # fmt: skip
    return Overlap(text)


def _moment(form: FormData, field: str) -> float:
    """A ``datetime-local`` input's value, read as UTC (the form says so)."""
    text = str(form.get(field, "")).strip()
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Refused(
            "This backfill was refused",
            f"{field}: expected a date and time like 2026-03-28T00:00 (UTC), got {text!r}",
            status=400,
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
