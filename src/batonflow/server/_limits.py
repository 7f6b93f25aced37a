"""Bounds on what a request may cost: its body (413 beyond ``max_body`` bytes, whether it
declares its length or streams it) and its time (503 after ``timeout`` seconds; event streams
and exports are exempt, they are meant to last)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batonflow._problems import PROBLEM_BASE
from batonflow.server._problems import PROBLEM_JSON, TooLarge

_LASTING = ("/stream", "/export")


class Limits:
    def __init__(self, app: ASGIApp, *, max_body: int, timeout: float) -> None:
        self.app = app
        self.max_body = max_body
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _answer(send, scope, 413, "too-large", "The request body is too large",
                          f"bodies are limited to {self.max_body} bytes")  # fmt: skip
            return
        received = 0
        started = False
        exceeded = False

        async def bounded() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    exceeded = True
                    raise TooLarge(f"bodies are limited to {self.max_body} bytes")
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app made of the cut-off body, the answer is 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _answer(send, scope, 413, "too-large", "The request body is too large",
                                  f"bodies are limited to {self.max_body} bytes")  # fmt: skip
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        # a declared length is enforced by the HTTP parser: only a streamed body is counted
        counted = receive if declared is not None else bounded
        if str(scope.get("path", "")).endswith(_LASTING):
            await self.app(scope, counted, tracked)
            return
        try:
            async with asyncio.timeout(self.timeout):  # no task per request, unlike wait_for
                await self.app(scope, counted, tracked)
        except TimeoutError:
            if not started:
                detail = f"no answer within {self.timeout} seconds"
                await _answer(
                    send, scope, 503, "timeout", "The request took too long", detail, retryable=True
                )


async def _answer(
    send: Send, scope: Scope, status: int, slug: str, title: str, detail: str, *,
    retryable: bool = False,
) -> None:  # fmt: skip
    problem: dict[str, Any] = {
        "type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail,
        "instance": scope.get("path"), "retryable": retryable,
    }  # fmt: skip
    body = json.dumps(problem).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
