"""``/``: what needs a person now (approvals waiting, failed runs, runs past their deadline,
open alerts), then counts by status and workflow and today's throughput."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import Request
from starlette.responses import Response

import batonflow as bf
from batonflow.governance._alert_dispatch import ALERT_RECORD
from batonflow.governance._approval import list_pending
from batonflow.governance._identity import Identity
from batonflow.server._auth import service_of
from batonflow.server.console import router
from batonflow.server.console._guard import signed_in
from batonflow.server.console._render import render

#: Open runs looked at for a passed deadline (newest first); the alert monitor covers the rest.
_OPEN_SCAN = 200
_SHOWN = 10
_DAY = 86400.0


async def _past_deadline(store: bf.Store, now: float) -> list[bf.RunRecord]:
    late: list[bf.RunRecord] = []
    for status in (bf.RunStatus.RUNNING, bf.RunStatus.WAITING, bf.RunStatus.SUSPENDED):
        for run in await store.list_runs(status=status, limit=_OPEN_SCAN):
            if run.deadline is not None and run.deadline < now:
                late.append(run)
    return sorted(late, key=lambda r: r.deadline or 0.0)[:_SHOWN]


async def _open_alerts(store: bf.Store) -> list[dict[str, Any]]:
    found = []
    for key, text in await store.list_records(ALERT_RECORD):
        data = json.loads(text)
        if data.get("state") != "acknowledged":
            found.append({"key": key, **data})
    return sorted(found, key=lambda a: -float(a.get("raised_at") or 0.0))


@router.get("/")
async def overview(request: Request, me: Annotated[Identity, Depends(signed_in())]) -> Response:
    service = service_of(request)
    store, now = service.store, service.now()
    pending = sorted(await list_pending(store), key=lambda a: a.expires_at or float("inf"))
    counts = await store.count_runs()
    workflows = sorted({e.name for e in await service.catalog.entries()})
    by_workflow = []
    for name in workflows:
        tally = await store.count_runs(workflow=name)
        by_workflow.append((name, {s.value: tally.get(s, 0) for s in bf.RunStatus}))
    midnight = now - now % _DAY
    today = await store.count_runs(since=midnight)
    alerts = await _open_alerts(store)
    page = {
        "now": now,
        "approvals": pending[:_SHOWN],
        "approvals_total": len(pending),
        "faulted": await store.list_runs(status=bf.RunStatus.FAULTED, limit=_SHOWN),
        "late": await _past_deadline(store, now),
        "alerts": alerts[:_SHOWN],
        "alerts_total": len(alerts),
        "counts": {s.value: counts.get(s, 0) for s in bf.RunStatus},
        "by_workflow": by_workflow,
        "today": {s.value: today.get(s, 0) for s in bf.RunStatus},
        "statuses": [s.value for s in bf.RunStatus],
    }
    return render(request, "overview.html", page)
