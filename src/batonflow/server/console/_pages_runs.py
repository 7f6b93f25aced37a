"""``/runs``: the runs, newest first, filtered and paged by cursor (the store's indexed
``list_runs``, as the API pages), with bulk cancel, suspend, resume and retry as one form post
(the API's :mod:`batonflow.server._actions`, so the same status table and roles apply)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import batonflow as bf
from batonflow.core._ids import short_run_id
from batonflow.governance._identity import Identity, can
from batonflow.server import _actions
from batonflow.server._auth import service_of
from batonflow.server._runs import _cursor, _decode_cursor
from batonflow.server.console import router
from batonflow.server.console._guard import Refused, form_day, permitted_action, posted, signed_in
from batonflow.server.console._pages_signin import safe_next
from batonflow.server.console._render import flash, render

PAGE = 50
#: At most this many runs are acted on by one bulk post (a page and a bit).
BULK_LIMIT = 200
_STATUSES = [s.value for s in bf.RunStatus]
Q = Annotated[str | None, Query(max_length=300)]


@router.get("/runs")
async def runs(
    request: Request,
    me: Annotated[Identity, Depends(signed_in())],
    status: Q = None,
    workflow: Q = None,
    subject: Q = None,
    since: Q = None,
    until: Q = None,
    text: Q = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=BULK_LIMIT)] = PAGE,
) -> Response:
    service = service_of(request)
    if status and status not in _STATUSES:
        raise Refused(
            "This filter is not a status",
            f"status: expected one of {', '.join(_STATUSES)}, got {status!r}", status=400,
        )  # fmt: skip
    try:
        before = _decode_cursor(cursor) if cursor else None
    except bf.ConfigError as exc:
        raise Refused("This page link is broken", str(exc), status=400) from None
    found = await service.store.list_runs(
        status=bf.RunStatus(status) if status else None, workflow=workflow or None,
        subject=subject or None, since=form_day(since, "since"),
        until=form_day(until, "until", end=True),
        text=text or None, limit=limit + 1, before=before,
    )  # fmt: skip
    page = found[:limit]
    query = {"status": status, "workflow": workflow, "subject": subject, "since": since,
             "until": until, "text": text, "limit": limit if limit != PAGE else None}  # fmt: skip
    more = {**query, "cursor": _cursor(page[-1])} if len(found) > limit and page else None
    workflows = sorted({e.name for e in await service.catalog.entries()})
    context: dict[str, Any] = {
        "runs": page, "query": query, "more": more, "first": bool(cursor),
        "statuses": _STATUSES, "workflows": workflows,
        "actions": [a for a, x in _actions.ACTIONS.items() if can(me, x.permission)],
        "back": str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
    }  # fmt: skip
    return render(request, "runs.html", context)


@router.post("/runs/actions")
async def bulk(request: Request, me: Annotated[Identity, Depends(signed_in())]) -> Response:
    """One action on the runs ticked in the list; each run's outcome is counted, a run the
    action does not apply to is named, not fatal."""
    form = await posted(request)
    name = await permitted_action(request, me, form)
    ids = [str(v) for v in form.getlist("run")][:BULK_LIMIT]
    service = service_of(request)
    chosen = [r for r in [await service.store.get_run(i) for i in ids] if r is not None]
    reason = str(form.get("reason", "")).strip() or None
    results = await _actions.act_on_many(service, chosen, name, me, reason)
    done = sum(1 for r in results if r["ok"])
    message = f"{name}: {done} of {len(ids)} runs"
    skipped = [r for r in results if not r["ok"]]
    if skipped:
        message += "; not applicable to " + ", ".join(
            f"{short_run_id(r['id'])} ({r['status']})" for r in skipped[:10]
        )
    response = RedirectResponse(safe_next(str(form.get("back", "/runs"))), status_code=303)
    flash(request, response, message)
    return response
