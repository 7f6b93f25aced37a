"""The web console of ``batonflow serve``: server-rendered pages over the public API.

``install(app)`` adds the console router at ``/`` with its error handlers (sign-in redirect,
refusal page) and security headers. Each area is a module ``_pages_<area>.py`` defining routes
on :data:`router`; templates are ``<area>*.html`` extending ``base.html``. See ``docs/console.md``
and the console conventions in ``docs/design.md``.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from batonflow.server.console._guard import Refused, SignInNeeded, sign_in_url
from batonflow.server.console._render import refusal

__all__ = ["AREAS", "install", "router"]

router = APIRouter(include_in_schema=False)

#: The page modules (``_pages_<area>.py``) whose routes make up the console.
AREAS: tuple[str, ...] = (
    "static", "signin", "overview", "runs", "run", "approvals",
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
        return refusal(request, exc.title, exc.reason, status=exc.status)

    app.add_exception_handler(SignInNeeded, need_sign_in)
    app.add_exception_handler(Refused, refused)

    @app.middleware("http")
    async def headers(request: Request, call_next: object) -> Response:
        response: Response = await call_next(request)  # type: ignore[operator]
        if not request.url.path.startswith(("/api/", "/hooks/")):
            for name, value in _HEADERS.items():
                response.headers.setdefault(name, value)
        return response
