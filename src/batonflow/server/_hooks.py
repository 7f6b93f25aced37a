"""``POST /hooks/{name}``: webhook deliveries, checked and acted upon by
:class:`batonflow.triggers._webhook.Webhooks` (signature, idempotency, schema, audit); this
route only reads the body within the hook's limit and turns the outcome into HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from batonflow._problems import problem_for
from batonflow.server._problems import RESPONSES, problem_response
from batonflow.triggers._webhook import HookNotFound, WebhookRefused, Webhooks

router = APIRouter(prefix="/hooks", tags=["webhooks"])
_DOCUMENTED: dict[int | str, dict[str, Any]] = {k: RESPONSES[k] for k in (400, 404, 413, 503)}


@router.post(
    "/{name}",
    status_code=202,
    responses={
        200: {"description": "A replay: the run the first delivery of this webhook-id started"},
        401: {"description": "No valid Standard Webhooks signature, or a stale timestamp"},
        415: {"description": "Neither JSON nor a CloudEvent"},
        **_DOCUMENTED,
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {}},
                "application/cloudevents+json": {"schema": {"type": "object"}},
            },
            "description": "The run input as JSON, or a CloudEvent (its data is the input)",
        }
    },
)
async def deliver(name: str, request: Request) -> Any:
    """Start the hook's workflow (202 with the run id); a replay of a webhook-id answers 200
    with the same body and starts nothing."""
    hooks: Webhooks | None = getattr(request.app.state.service, "webhooks", None)
    try:
        if hooks is None:
            raise HookNotFound(f"no webhook named {name!r} is served here")
        body = await _read(request, hooks.limit(name))
        status, answer = await hooks.deliver(name, request.headers, body)
    except WebhookRefused as refused:
        problem = {**problem_for(refused, instance=request.url.path), **refused.extra}
        headers = {"Retry-After": "60"} if problem["status"] == 503 else None
        return problem_response(problem, headers)
    return JSONResponse(answer, status_code=status)


async def _read(request: Request, limit: int | None) -> bytes:
    """The body, read no further than the chunk that passes ``limit`` (the hook then refuses
    it as too large, audited; the rest is left unread)."""
    if limit is None:
        return b""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)
