"""``/audit``: whether the chain verifies, the entries newest first filtered by run, data
subject, actor, kind and time (``governance.audit_page``), their export as a download
(``governance.open_export``, as the API and CLI export), and ``/audit/runs/{id}/report``:
the printable one-run report (``governance.build_report``, the page ``audit report --html``
writes). Entries of runs with data subjects open only for a role allowed to read them, and
each such reading is on the trail."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from fastapi.responses import StreamingResponse
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

import batonflow as bf
from batonflow.governance._access import open_for_reading
from batonflow.governance._audit import AuditFilter, verify_chain
from batonflow.governance._audit_query import AuditQuery, audit_page, head_seq, open_export
from batonflow.governance._identity import Identity
from batonflow.governance._report import build_report, describe
from batonflow.governance._report_render import report_html
from batonflow.server._audit import export_lines
from batonflow.server._auth import service_of
from batonflow.server.console import router
from batonflow.server.console._guard import Refused, form_day, signed_in
from batonflow.server.console._render import render

Reader = Annotated[Identity, Depends(signed_in())]
Q = Annotated[str | None, Query(max_length=500)]
PAGE = 50
#: Up to this many entries the page verifies the chain on every visit; past it, on request.
VERIFY_AT_ONCE = 20_000


async def _subject_ref(store: bf.Store, subject: str | None) -> str | None:
    if not subject:
        return None
    keys = getattr(store, "keys", None)  # a sealed store keeps subjects as keyed references
    return str(await keys.ref(subject)) if keys is not None else subject


@router.get("/audit")
async def audit(
    request: Request,
    me: Reader,
    run: Q = None,
    subject: Q = None,
    actor: Q = None,
    kind: Q = None,
    since: Q = None,
    until: Q = None,
    before: Annotated[int | None, Query(ge=1)] = None,
    verify: bool = False,
) -> Response:
    service = service_of(request)
    store = service.store
    query = AuditQuery(
        run_id=run or None, subject=await _subject_ref(store, subject), actor=actor or None,
        kind=kind or None, since=form_day(since, "since"), until=form_day(until, "until", end=True),
    )  # fmt: skip
    page = await audit_page(store, query, before=before, limit=PAGE)
    runs = {r.run_id for r in page.items if r.run_id}
    view = await open_for_reading(store, me, what="console audit", runs=runs, now=service.now())
    opener = getattr(view, "open_json", None)
    rows = []
    for r in page.items:
        data = await opener(r.data_json, r.run_id or "") if opener is not None else None
        rows.append({"entry": r, "text": describe(r.kind, data, r.actor)})
    shown = {"run": run, "subject": subject, "actor": actor, "kind": kind, "since": since,
             "until": until}  # fmt: skip
    more = {**shown, "before": page.next_before} if page.next_before else None
    # Verifying reads and hashes every entry: on a long trail it waits for the button.
    entries = await head_seq(store)
    chain = await verify_chain(store) if verify or entries <= VERIFY_AT_ONCE else None
    context: dict[str, Any] = {
        "chain": chain, "entries": entries, "rows": rows, "query": shown, "more": more,
        "first": before is not None,
    }  # fmt: skip
    return render(request, "audit.html", context)


@router.get("/audit/export")
async def export(
    request: Request,
    me: Reader,
    format: Literal["jsonl", "csv"] = "jsonl",
    run: Q = None,
    subject: Q = None,
    workflow: Q = None,
    since: Q = None,
    until: Q = None,
) -> Response:
    """A download of the matching entries, oldest first (as ``batonflow audit export``)."""
    service = service_of(request)
    where = AuditFilter(
        run_id=run or None, workflow=workflow or None, since=form_day(since, "since"),
        until=form_day(until, "until", end=True),
    )  # fmt: skip
    view, where = await open_export(
        service.store, me, where, subject=subject or None, what="console audit export",
        now=service.now(),
    )  # fmt: skip
    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    name = f"batonflow-audit.{format}"
    return StreamingResponse(
        export_lines(view, where, format), media_type=media,
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )  # fmt: skip


@router.get("/audit/runs/{run_id}/report")
async def report(run_id: str, request: Request, me: Reader) -> Response:
    """The printable report: one self-contained page, the same as ``audit report --html``."""
    service = service_of(request)
    try:
        built = await build_report(service.store, me, run_id, now=service.now())
    except bf.RunNotFound:
        raise Refused("No such run", f"there is no run with id {run_id!r}", status=404) from None
    return HTMLResponse(report_html(built))
