"""``/api/v1/audit``: verify the chain, export it (streamed CloudEvents JSON Lines or CSV),
sign its head (with the key ``serve --signing-key`` names)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

import batonflow as bf
from batonflow.governance import _audit
from batonflow.governance._anchor import verify_configured
from batonflow.governance._audit_query import open_export
from batonflow.governance._identity import Identity
from batonflow.server._auth import allowed, service_of

router = APIRouter(prefix="/audit", tags=["audit"])
Reader = Annotated[Identity, Depends(allowed("read"))]


class VerificationOut(BaseModel):
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    signed_heads: int
    runs: int = 0
    problem: str | None = None
    problems: list[str] = []


class SignedHeadOut(BaseModel):
    seq: int
    hash: str
    at: float
    signature: str
    public_key: str


@router.get("/verify", response_model=VerificationOut)
async def verify(request: Request, me: Reader) -> VerificationOut:
    """Recompute every entry's hash; check the chain, every signed head kept in the store or
    the configured anchor (under the pinned key), and every row against the trail. `ok: false`
    names the first problem; `problems` lists every row that differs."""
    service = service_of(request)
    result = await verify_configured(service.store, service.setup.audit_heads())
    problems = list(result.state_problems) or ([result.problem] if result.problem else [])
    return VerificationOut(
        ok=result.ok, entries=result.entries, head_seq=result.head_seq,
        head_hash=result.head_hash, signed_heads=result.heads_checked, runs=result.runs_checked,
        problem=result.problem, problems=problems,
    )  # fmt: skip


@router.post("/sign", response_model=SignedHeadOut)
async def sign(
    request: Request, me: Annotated[Identity, Depends(allowed("audit.sign"))]
) -> SignedHeadOut:
    """Sign the trail's head with the server's key; keep the answer elsewhere: it is the
    proof `batonflow audit verify --head` checks the trail against."""
    service = service_of(request)
    key_file = request.app.state.options.signing_key
    if key_file is None:
        raise bf.ConfigError("this server has no signing key: start it with --signing-key FILE")
    key = _audit.load_private_key(key_file)
    head = await _audit.sign_head(service.store, key, service.now(), actor=me.name)
    return SignedHeadOut(**dataclasses.asdict(head))


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def export(
    request: Request,
    me: Reader,
    format: Literal["jsonl", "csv"] = "jsonl",
    run_id: Annotated[str | None, Query(max_length=200)] = None,
    workflow: Annotated[str | None, Query(max_length=300)] = None,
    subject: Annotated[str | None, Query(max_length=500)] = None,
    since: float | None = None,
    until: float | None = None,
) -> StreamingResponse:
    """The matching entries, oldest first, streamed: CloudEvents JSON Lines or CSV. Payloads
    of runs with data subjects are shown decrypted while the subject's key exists."""
    service = service_of(request)
    where = _audit.AuditFilter(run_id=run_id, workflow=workflow, since=since, until=until)
    view, where = await open_export(
        service.store, me, where, subject=subject, what="api audit export", now=service.now()
    )
    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    return StreamingResponse(export_lines(view, where, format), media_type=media)


async def export_lines(store: bf.Store, where: _audit.AuditFilter, fmt: str) -> AsyncIterator[str]:
    """The export's lines (``jsonl`` or ``csv``), for a streamed download (API and console)."""
    opener = getattr(store, "open_json", None)
    if fmt == "csv":
        yield _csv_row(_audit.CSV_COLUMNS)
    async for r in _audit.entries(store, where):
        opened = await opener(r.data_json, r.run_id or "") if opener is not None else None
        if fmt == "jsonl":
            event = _audit.cloudevent(r, "batonflow", opened)
            yield json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
            continue
        data = r.data_json if opened is None else json.dumps(opened, ensure_ascii=False)
        yield _csv_row(
            [r.seq, _audit.iso(r.at), r.kind, r.run_id or "", r.step_id or "", r.actor or "",
             " ".join(r.subjects), data, r.prev_hash, r.hash]
        )  # fmt: skip


def _csv_row(values: Any) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()
