"""The web console of ``batonflow serve``: server-rendered pages over the public API.

``install(app)`` adds the console router at ``/`` with its error handlers (sign-in redirect,
refusal page) and security headers. Each area is a module ``_pages_<area>.py`` defining routes
on :data:`router`; templates are ``<area>*.html`` extending ``base.html``. See ``docs/console.md``
and the console conventions in ``docs/design.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batonflow.server.console._guard import Refused, SignInNeeded, sign_in_url
from batonflow.server.console._render import refusal

__all__ = ["AREAS", "attach", "install", "router"]

router = APIRouter(include_in_schema=False)

#: The page modules (``_pages_<area>.py``) whose routes make up the console.
AREAS: tuple[str, ...] = (
    "static", "signin", "overview", "runs", "run", "approvals", "triggers",
    "audit", "alerts", "subjects", "connectors", "workflows", "identities",
)  # fmt: skip

_HEADERS = {
    # scripts only from the console's own files; inline styles for drawn widths (no script)
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self' "
    "'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _load_areas() -> None:
    for area in AREAS:
        importlib.import_module(f"batonflow.server.console._pages_{area}")


def install(app: FastAPI) -> None:
    """Serve the console from ``app``: its pages, static files and error pages."""
    _load_areas()
    app.include_router(router)

    async def need_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        return RedirectResponse(sign_in_url(exc.next_path), status_code=303)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return refusal(request, exc.title, exc.reason, status=exc.status, audited=exc.audited)

    app.add_exception_handler(SignInNeeded, need_sign_in)
    app.add_exception_handler(Refused, refused)

    app.add_middleware(_SecurityHeaders)


class _SecurityHeaders:
    """The console's headers on every response outside the API and hooks (plain ASGI, so
    streamed responses pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(("/api/", "/hooks/")):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


def attach(service: Any) -> None:
    """Start what the console runs beside the service: approval e-mails with decision links,
    when ``[email]`` and ``[console] url`` are configured."""
    from batonflow.server.console._links import Notifier, settings

    setup = service.setup
    url = settings(setup.data, setup.source)
    mailer = setup.mailer(setup.client(service.store)) if url and "email" in setup.data else None
    if url and mailer is not None:
        service.feed.observe(Notifier(service, mailer, url).see)
