"""``/api/v1/approvals``: what waits for the caller, one approval in full, decide it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from batonflow.governance._approval import (
    ApprovalRequest,
    ApprovalState,
    aliases_in,
    approvals_of,
    decide,
    get_request,
    list_pending,
    may_decide,
)
from batonflow.governance._identity import Identity
from batonflow.server._auth import allowed, service_of
from batonflow.server._models import Body
from batonflow.server._paging import Cursor, Limit, Paged, page
from batonflow.server._problems import NotFound

router = APIRouter(prefix="/approvals", tags=["approvals"])


def request_doc(r: ApprovalRequest) -> dict[str, Any]:
    return {
        "approval": r.id, "run_id": r.run_id, "workflow": r.workflow, "title": r.title,
        "summary": r.summary, "approvers": r.approvers.to_dict(), "quorum": r.quorum,
        "options": list(r.options), "require_comment": list(r.require_comment),
        "requested_at": r.requested_at, "expires_at": r.expires_at, "on_expiry": r.on_expiry,
        "round": r.round, "escalated": r.escalated,
    }  # fmt: skip


def state_doc(s: ApprovalState) -> dict[str, Any]:
    return {
        **request_doc(s.request), "status": s.status, "result": s.result,
        "decisions": s.decisions, "refusals": s.refusals,
    }  # fmt: skip


class ApprovalOut(BaseModel):
    approval: str
    run_id: str
    workflow: str
    title: str
    summary: Any = None
    approvers: dict[str, Any]
    quorum: int
    options: list[str]
    require_comment: list[str]
    requested_at: float
    expires_at: float | None = None
    on_expiry: Any = None
    round: int
    escalated: bool
    status: str = "pending"
    result: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = []
    refusals: list[dict[str, Any]] = []


class ApprovalList(Paged):
    items: list[ApprovalOut]


class DecideBody(Body):
    option: str = Field(..., min_length=1, max_length=100, description="approve, reject, ...")
    comment: str | None = Field(None, max_length=10_000)


class DecisionOut(BaseModel):
    approval: str
    run_id: str
    round: int
    by: str
    option: str
    comment: str | None = None
    at: float
    event: int


@router.get("", response_model=ApprovalList)
async def pending(
    request: Request,
    me: Annotated[Identity, Depends(allowed("read"))],
    mine: bool = True,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> ApprovalList:
    """Open approvals, oldest first; with `mine=true` (the default) only those the caller may
    decide."""
    store = service_of(request).store
    found = await list_pending(store)
    if mine:
        aliases = await aliases_in(store, me)
        found = [r for r in found if may_decide(r, me, aliases) is None]
    chosen, after = page(found, lambda r: f"{r.requested_at:020.6f}\n{r.id}", limit, cursor)
    return ApprovalList(
        items=[ApprovalOut.model_validate(request_doc(r)) for r in chosen], next_cursor=after
    )


@router.get("/{approval_id}", response_model=ApprovalOut)
async def one(
    approval_id: str, request: Request, me: Annotated[Identity, Depends(allowed("read"))]
) -> ApprovalOut:
    """One approval in full: its rules, status, decisions and refusals (open or closed)."""
    store = service_of(request).store
    found = await get_request(store, approval_id)
    run_id = found.run_id if found is not None else approval_id.partition("#")[0]
    if run_id and await store.get_run(run_id) is not None:
        for state in await approvals_of(store, run_id):
            if state.request.id == approval_id:
                return ApprovalOut.model_validate(state_doc(state))
    if found is None:
        raise NotFound(f"no approval {approval_id!r}")
    return ApprovalOut.model_validate(request_doc(found))


@router.post("/{approval_id}/decision", response_model=DecisionOut)
async def decide_one(
    approval_id: str,
    body: DecideBody,
    request: Request,
    me: Annotated[Identity, Depends(allowed("approval.decide"))],
) -> DecisionOut:
    """Decide as the caller; the approval's rules apply (who may, separation of duties, one
    vote per person, comments where required). Refusals are audited (403)."""
    service = service_of(request)
    found = await get_request(service.store, approval_id)
    if found is None:
        raise NotFound(f"no approval {approval_id!r}")
    target = service.engine if service.engine is not None else service.store
    decision = await decide(
        target, found.run_id, me, body.option.strip(), comment=body.comment,
        approval_id=approval_id,
    )  # fmt: skip
    return DecisionOut(
        approval=decision.approval_id, run_id=decision.run_id, round=decision.round,
        by=decision.by, option=decision.option, comment=decision.comment, at=decision.at,
        event=decision.event_id,
    )  # fmt: skip
