"""``/api/v1/events``: CloudEvents over HTTP (structured and binary content modes) for the
runs whose ``listen`` tasks await them, and raw events for Python workflows'
``ctx.wait_for_event``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

import batonflow as bf
from batonflow import _limits
from batonflow.governance._identity import Identity
from batonflow.server._auth import allowed, service_of
from batonflow.server._models import Body, EventOut

router = APIRouter(prefix="/events", tags=["events"])
Sender = Annotated[Identity, Depends(allowed("event.deliver"))]
_REQUIRED = ("id", "source", "type", "specversion")
MAX_EVENT = 1_000_000


class Delivered(BaseModel):
    id: str
    type: str
    runs: list[str] = Field(description="The runs that were listening for it")


class RawEvent(Body):
    topic: str = Field(..., min_length=1, max_length=300)
    run_id: str | None = Field(None, max_length=200)
    key: str | None = Field(None, max_length=500)
    payload: Any = None


async def _cloudevent(request: Request) -> dict[str, Any]:
    """The event of a structured-mode (``application/cloudevents+json``) or binary-mode
    (``ce-*`` headers, the body is ``data``) request."""
    body = await request.body()
    if len(body) > MAX_EVENT:
        raise bf.ConfigError(f"the event is larger than {MAX_EVENT} bytes")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/cloudevents+json":
        event = _json(body, "the structured CloudEvent")
        if not isinstance(event, dict):
            raise bf.ConfigError("a structured CloudEvent is a JSON object")
    else:
        event = {k[3:]: v for k, v in request.headers.items() if k.lower().startswith("ce-")}
        if body:
            event["datacontenttype"] = kind or "application/octet-stream"
            is_json = kind in ("application/json", "") or kind.endswith("+json")
            event["data"] = _json(body, "the event's data") if is_json else body.decode("utf-8")
    missing = [n for n in _REQUIRED if not isinstance(event.get(n), str) or not event[n]]
    if missing:
        mode = "body" if kind == "application/cloudevents+json" else "ce-* headers"
        raise bf.ConfigError(f"the CloudEvent ({mode}) lacks {', '.join(missing)}")
    if event["specversion"] != "1.0":
        raise bf.ConfigError(f"specversion {event['specversion']!r}: only 1.0 is spoken")
    return event


def _json(body: bytes, what: str) -> Any:
    try:  # within the input bounds: deep nesting would end in a RecursionError (a 500)
        return _limits.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise bf.ConfigError(f"{what} is not valid JSON: {exc}") from None


@router.post(
    "/cloudevents",
    response_model=Delivered,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/cloudevents+json": {"schema": {"type": "object"}},
                "application/json": {"schema": {}},
            },
            "description": "Structured mode: the event as JSON; binary mode: ce-* headers",
        }
    },
)
async def cloudevent(request: Request, response: Response, me: Sender) -> Delivered:
    """Deliver a CloudEvent to every run listening for it (202 when none is)."""
    from batonflow.dsl._events import publish

    event = await _cloudevent(request)
    service = service_of(request)
    runs = await publish(service.store, event, service.now(), actor=me.name)
    service.poke()
    if not runs:
        response.status_code = 202
    return Delivered(id=event["id"], type=event["type"], runs=runs)


@router.post("", response_model=EventOut, status_code=201)
async def raw(body: RawEvent, request: Request, me: Sender) -> EventOut:
    """Deliver a raw event to a Python workflow's `ctx.wait_for_event`, by run or key. It
    is stored first: a run that starts waiting for it later gets it."""
    if body.run_id is None and body.key is None:
        raise bf.ConfigError("address the event with run_id or key")
    service = service_of(request)
    if body.run_id is not None:
        target = await service.store.get_run(body.run_id)
        if target is None:
            raise bf.RunNotFound(f"no run with id {body.run_id!r}")
        if target.status in (bf.RunStatus.COMPLETED, bf.RunStatus.CANCELLED):
            raise bf.InvalidTransition(
                f"run {body.run_id} is {target.status.value}; it will never consume an event"
            )
    payload = json.dumps(body.payload, separators=(",", ":"), allow_nan=False)
    event = await service.store.deliver_event(
        body.topic, payload, service.now(), key=body.key, run_id=body.run_id, actor=me.name
    )
    service.poke()
    return EventOut.of(event)
