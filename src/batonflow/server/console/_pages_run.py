"""``/runs/{id}``: one run in full, read as the API reads it (``_runs.run_detail``: through
``governance.open_for_reading``, so personal data opens only for a role allowed to read it and
every reading is audited): a timeline of its steps, each step's input and output as stored,
model calls, routing decisions, approvals with every vote, events, the error in the workflow's
own terms, the workflow's graph with this run's path, and the operator actions it allows.
``/runs/{id}/live`` streams its changes to the page (the session cookie stands for the bearer
token an EventSource cannot send); without JavaScript the page refreshes itself while open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Header, Query
from fastapi.responses import StreamingResponse
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import batonflow as bf
from batonflow._problems import problem_for
from batonflow.governance._identity import Identity, can
from batonflow.server import _actions
from batonflow.server._auth import service_of
from batonflow.server._live import _after, _sse
from batonflow.server._runs import run_detail
from batonflow.server._svg import svg_of
from batonflow.server.console import router
from batonflow.server.console._guard import Refused, permitted_action, posted, signed_in
from batonflow.server.console._render import flash, render
from batonflow.server.console._timeline import timeline_svg
from batonflow.store import AuditRecord

Reader = Annotated[Identity, Depends(signed_in())]
_TASK_MARK = "task "  # the DSL interpreter's step name before a task's pointer


def _missing(run_id: str) -> Refused:
    return Refused("No such run", f"there is no run with id {run_id!r}", status=404)


async def _graph(request: Request, workflow: str, steps: list[Any], done: bool) -> str | None:
    """The document's flow with the tasks this run reached marked; None for Python workflows."""
    from batonflow.dsl._graph import _node_id, mermaid

    service = service_of(request)
    try:
        entry = await service.catalog.document(workflow, None)
    except bf.BatonflowError:
        return None
    if entry.document is None:
        return None
    reached = {_node_id(s.name[len(_TASK_MARK) :]) for s in steps if s.name.startswith(_TASK_MARK)}
    ends = {"finish"} if done else set()
    return svg_of(mermaid(entry.document), frozenset({"start", *reached, *ends}))


@router.get("/runs/{run_id}")
async def run_page(run_id: str, request: Request, me: Reader) -> Response:
    service = service_of(request)
    record = await service.store.get_run(run_id)
    if record is None:
        raise _missing(run_id)
    detail = await run_detail(service, run_id, me, what="console run")
    now = service.now()
    status = bf.RunStatus(detail.status)
    actions = [
        name for name, a in _actions.ACTIONS.items()
        if status in a.sources and can(me, a.permission)
    ]  # fmt: skip
    trail = await service.store.read_audit(run_id=run_id, limit=100_000)
    context = {
        "run": detail,
        "status": status.value,
        "open": not status.is_terminal and status is not bf.RunStatus.FAULTED,
        "timeline": timeline_svg(detail.steps, detail.attempts, detail.created_at, now),
        "graph": await _graph(
            request, detail.workflow, detail.steps, status is bf.RunStatus.COMPLETED
        ),
        "actions": actions,
        "withheld": bool(record.subjects) and not can(me, "personal.read"),
        "after": trail[-1].seq if trail else 0,
        "now": now,
    }
    return render(request, "run.html", context)


@router.post("/runs/{run_id}/actions")
async def run_action(run_id: str, request: Request, me: Reader) -> Response:
    form = await posted(request)
    name = await permitted_action(request, me, form)
    reason = str(form.get("reason", "")).strip()[:500] or None
    response = RedirectResponse(f"/runs/{run_id}", status_code=303)
    try:
        after = await _actions.act(service_of(request), run_id, name, me, reason)
    except bf.RunNotFound:
        raise _missing(run_id) from None
    except bf.InvalidTransition as exc:
        flash(request, response, f"Not done: {problem_for(exc).get('detail') or exc}")
        return response
    flash(request, response, f"{name}: the run is now {after.status.value}")
    return response


@router.get("/runs/{run_id}/live")
async def run_live(
    run_id: str,
    request: Request,
    me: Reader,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> StreamingResponse:
    """The run's changes as server-sent events (what ``/api/v1/runs/{id}/stream`` sends)."""
    service = service_of(request)
    if await service.store.get_run(run_id) is None:
        raise _missing(run_id)
    start = _after(last_event_id, after)
    prefix = run_id + "."

    def mine(r: AuditRecord) -> bool:
        return r.run_id == run_id or (r.run_id or "").startswith(prefix)

    records = service.feed.entries(start or 0, mine, run_id=run_id)
    return StreamingResponse(
        _unnamed(_sse(request, records)), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )  # fmt: skip


async def _unnamed(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """The API's events without their ``event:`` line, so a page's one ``onmessage`` sees
    every kind of change."""
    async for chunk in chunks:
        yield "".join(line for line in chunk.splitlines(True) if not line.startswith("event:"))
