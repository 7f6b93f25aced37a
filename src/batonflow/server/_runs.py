"""``/api/v1/runs``: start (idempotent), list with filters and counts, detail, operator actions
one by one and in bulk."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

import batonflow as bf
from batonflow.catalog import correct_label
from batonflow.governance._access import open_for_reading
from batonflow.governance._approval import approvals_of
from batonflow.governance._identity import Identity
from batonflow.server import _actions
from batonflow.server._approvals import state_doc
from batonflow.server._auth import allowed, require, service_of
from batonflow.server._models import (
    AttemptOut,
    AuditOut,
    BulkAction,
    BulkResult,
    Cancel,
    CorrectionOut,
    EventOut,
    LabelCorrection,
    RunDetail,
    RunFilter,
    RunPage,
    RunSummary,
    StartRun,
    Status,
    StepOut,
)
from batonflow.server._service import Service

router = APIRouter(prefix="/runs", tags=["runs"])
Reader = Annotated[Identity, Depends(allowed("read"))]


@router.post("", status_code=201, response_model=RunSummary)
async def start_run(
    body: StartRun,
    request: Request,
    response: Response,
    me: Annotated[Identity, Depends(allowed("run.start"))],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> RunSummary:
    """Start a run. With an `Idempotency-Key` header already used, the run it started is
    returned (200) and nothing new starts."""
    service = service_of(request)
    wf, value, timeout = await service.catalog.resolve(body.workflow, body.version, body.input)
    key = idempotency_key.strip() if idempotency_key and idempotency_key.strip() else None
    asked_at = service.now()
    record = await service.start(
        wf, value, idempotency_key=key, started_by=me.name, timeout=body.timeout or timeout
    )
    if key is not None and record.created_at < asked_at:  # the key's earlier run
        response.status_code = 200
    response.headers["Location"] = f"{request.url.path}/{record.id}"
    return RunSummary.of(record)


def _cursor(run: bf.RunRecord) -> str:
    raw = json.dumps([run.created_at, run.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        at, run_id = json.loads(raw)
        return float(at), str(run_id)
    except (ValueError, TypeError) as exc:
        raise bf.ConfigError(f"cursor {text!r} is not one this API gave out") from exc


@router.get("", response_model=RunPage)
async def list_runs(
    request: Request,
    me: Reader,
    status: Status | None = None,
    workflow: Annotated[str | None, Query(max_length=300)] = None,
    subject: Annotated[str | None, Query(max_length=500)] = None,
    since: float | None = None,
    until: float | None = None,
    text: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    counts: bool = False,
) -> RunPage:
    """Runs, newest first, a page at a time (`next_cursor`)."""
    store = service_of(request).store
    where = RunFilter(
        status=status, workflow=workflow, subject=subject, since=since, until=until, text=text
    )
    before = _decode_cursor(cursor) if cursor else None
    runs = await _find(store, where, limit + 1, before)
    page = runs[:limit]
    more = len(runs) > limit
    tally = None
    if counts:
        found = await store.count_runs(
            workflow=workflow, subject=subject, since=since, until=until, text=text
        )
        tally = {s.value: found.get(s, 0) for s in bf.RunStatus}
    return RunPage(
        items=[RunSummary.of(r) for r in page],
        next_cursor=_cursor(page[-1]) if more and page else None,
        counts=tally,
    )


async def _find(
    store: bf.Store, where: RunFilter, limit: int, before: tuple[float, str] | None = None
) -> list[bf.RunRecord]:
    return await store.list_runs(
        status=bf.RunStatus(where.status) if where.status else None, workflow=where.workflow,
        subject=where.subject, since=where.since, until=where.until, text=where.text,
        limit=limit, before=before,
    )  # fmt: skip


@router.get("/{run_id}", response_model=RunDetail)
async def get_run(run_id: str, request: Request, me: Reader) -> RunDetail:
    """A run in full: steps, failed attempts, events, approvals, model calls with tokens and
    cost, routing decisions."""
    return await run_detail(service_of(request), run_id, me, what="api run")


async def run_detail(service: Service, run_id: str, me: Identity, *, what: str) -> RunDetail:
    """A run in full, read as ``me`` (the console's run page shows the same; ``what`` names
    the reader on the audit trail)."""
    if await service.store.get_run(run_id) is None:
        raise bf.RunNotFound(f"no run with id {run_id!r}")
    # Personal data opens only for a role allowed to read it, and the reading is audited.
    store = await open_for_reading(service.store, me, what=what, runs=[run_id], now=service.now())
    run = await store.get_run(run_id)
    if run is None:
        raise bf.RunNotFound(f"no run with id {run_id!r}")
    audit = await store.read_audit(run_id=run_id, limit=100_000)
    model_calls = [_audit_out(a) for a in audit if a.kind == "model.call"]
    tokens = {"input": 0, "output": 0}
    cost = 0.0
    for call in model_calls:
        data = call.data if isinstance(call.data, dict) else {}
        tokens["input"] += int(data.get("input_tokens") or 0)
        tokens["output"] += int(data.get("output_tokens") or 0)
        cost += float(data.get("cost") or 0.0)
    error = json.loads(run.error_json) if run.error_json else None
    return RunDetail(
        **RunSummary.of(run).model_dump(),
        input=json.loads(run.input_json),
        output=json.loads(run.output_json) if run.output_json else None,
        error=error,
        problem=bf.problem_of(run),
        steps=[StepOut.of(s) for s in await store.load_steps(run_id)],
        attempts=[AttemptOut.of(a) for a in await store.load_attempts(run_id)],
        events=[EventOut.of(e) for e in await store.list_events(run_id=run_id, limit=1000)],
        approvals=[state_doc(s) for s in await approvals_of(store, run_id)],
        model_calls=model_calls,
        routing=[_audit_out(a) for a in audit if a.kind == "route.decision"],
        cost=cost,
        tokens=tokens,
    )


def _audit_out(record: Any) -> AuditOut:
    try:
        data = json.loads(record.data_json)
    except ValueError:
        data = None
    return AuditOut(
        seq=record.seq, at=record.at, kind=record.kind, run_id=record.run_id,
        step_id=record.step_id, actor=record.actor, data=data,
    )  # fmt: skip


@router.post("/{run_id}/cancel", response_model=RunSummary)
async def cancel(
    run_id: str,
    request: Request,
    me: Annotated[Identity, Depends(allowed("run.cancel"))],
    body: Cancel | None = None,
) -> RunSummary:
    """Cancel a run and its unfinished children."""
    reason = body.reason if body else None
    return RunSummary.of(await _actions.act(service_of(request), run_id, "cancel", me, reason))


@router.post("/{run_id}/suspend", response_model=RunSummary)
async def suspend(
    run_id: str, request: Request, me: Annotated[Identity, Depends(allowed("run.suspend"))]
) -> RunSummary:
    """Pause a run at its next step boundary."""
    return RunSummary.of(await _actions.act(service_of(request), run_id, "suspend", me))


@router.post("/{run_id}/resume", response_model=RunSummary)
async def resume(
    run_id: str, request: Request, me: Annotated[Identity, Depends(allowed("run.resume"))]
) -> RunSummary:
    """Continue a suspended run."""
    return RunSummary.of(await _actions.act(service_of(request), run_id, "resume", me))


@router.post("/{run_id}/retry", response_model=RunSummary)
async def retry(
    run_id: str, request: Request, me: Annotated[Identity, Depends(allowed("run.retry"))]
) -> RunSummary:
    """Retry a faulted run from the step that failed."""
    return RunSummary.of(await _actions.act(service_of(request), run_id, "retry", me))


@router.post("/{run_id}/label", response_model=CorrectionOut)
async def correct(
    run_id: str,
    body: LabelCorrection,
    request: Request,
    me: Annotated[Identity, Depends(allowed("label.correct"))],
) -> CorrectionOut:
    """Correct the label a run's `classify` step gave: the text and the right label become an
    example its workflow's classifier learns from (sealed with the run's data subjects,
    audited), as `batonflow label correct` does."""
    service = service_of(request)
    done = await correct_label(
        service.store, run_id, body.label, actor=me.name, now=service.now(), step_id=body.step
    )
    return CorrectionOut(**dataclasses.asdict(done))


@router.post("/actions", response_model=BulkResult)
async def bulk(
    body: BulkAction, request: Request, me: Annotated[Identity, Depends(allowed("read"))]
) -> BulkResult:
    """One action on every run the filter selects (at most `limit`); each run's outcome is
    reported. The caller needs the action's role."""
    service = service_of(request)
    await require(request, me, _actions.ACTIONS[body.action].permission)
    runs = await _find(service.store, body.filter, body.limit)
    items = await _actions.act_on_many(service, runs, body.action, me, body.reason)
    done = sum(1 for i in items if i["ok"])
    return BulkResult.model_validate({"items": items, "done": done, "refused": len(items) - done})
