"""Server-sent events: one stream for a run (and its child runs), one for everything the
caller may see (run lifecycle, steps, approvals opened and decided, alerts). Each event's id
is its audit sequence number: reconnecting with ``Last-Event-ID`` resumes exactly after it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

import batonflow as bf
from batonflow.governance._identity import Identity
from batonflow.server._auth import allowed, service_of
from batonflow.server._feed import event_of
from batonflow.store import AuditRecord

router = APIRouter(tags=["live"])
Reader = Annotated[Identity, Depends(allowed("read"))]
KEEPALIVE = 15.0
_SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "An event stream"}
}


def _after(last_event_id: str | None, after: int | None) -> int | None:
    if after is not None:
        return after
    if last_event_id is None or not last_event_id.strip():
        return None
    try:
        return max(0, int(last_event_id))
    except ValueError:
        raise bf.ConfigError(
            f"Last-Event-ID {last_event_id!r}: expected an event id this stream sent"
        ) from None


async def _sse(request: Request, records: AsyncIterator[AuditRecord]) -> AsyncIterator[str]:
    yield "retry: 1000\n\n"
    pending: asyncio.Task[AuditRecord] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(records))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE)
            if not done:
                if await request.is_disconnected():
                    return
                yield ": keepalive\n\n"
                continue
            try:
                record = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            data = json.dumps(event_of(record), separators=(",", ":"))
            yield f"id: {record.seq}\nevent: {record.kind}\ndata: {data}\n\n"
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        await records.aclose()  # type: ignore[attr-defined]


def _stream(request: Request, records: AsyncIterator[AuditRecord]) -> StreamingResponse:
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _sse(request, records), media_type="text/event-stream", headers=headers
    )


@router.get("/stream", response_class=StreamingResponse, responses=_SSE)
async def everything(
    request: Request,
    me: Reader,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
    after: Annotated[int | None, Query(ge=0, description="Resume after this event id")] = None,
) -> StreamingResponse:
    """Every change, as it happens (`text/event-stream`); event ids are audit sequence numbers."""
    feed = service_of(request).feed
    return _stream(request, feed.entries(_after(last_event_id, after), lambda r: True))


@router.get("/runs/{run_id}/stream", response_class=StreamingResponse, responses=_SSE)
async def one_run(
    run_id: str,
    request: Request,
    me: Reader,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
    after: Annotated[int | None, Query(ge=0, description="Resume after this event id")] = None,
) -> StreamingResponse:
    """The changes of one run and its child runs. Without `Last-Event-ID` (or `after`) it
    starts with the run's history."""
    service = service_of(request)
    if await service.store.get_run(run_id) is None:
        raise bf.RunNotFound(f"no run with id {run_id!r}")
    start = _after(last_event_id, after)
    prefix = run_id + "."

    def mine(r: AuditRecord) -> bool:
        return r.run_id == run_id or (r.run_id or "").startswith(prefix)

    records = service.feed.entries(0 if start is None else start, mine, run_id=run_id)
    return _stream(request, records)
