"""Signing in (name and password) and out. OpenID Connect sign-in is in ``_oidc.py``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from batonflow.governance._passwords import SignInRefused, check_password
from batonflow.server._auth import service_of
from batonflow.server.console import router
from batonflow.server.console._guard import current_session, posted
from batonflow.server.console._render import flash, render
from batonflow.server.console._session import end_session, start_session

__all__ = ["safe_next"]


def safe_next(value: str | None) -> str:
    """Only a path on this site: an open redirect would make the sign-in page a phishing aid."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    return value


@router.get("/sign-in")
async def sign_in_page(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    if await current_session(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "signin.html", {"next": safe_next(next), "providers": []})


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await posted(request)
    service = service_of(request)
    name = str(form.get("name", "")).strip()[:128]
    password = str(form.get("password", ""))[:1024]
    target = safe_next(str(form.get("next", "/")))
    client = request.client.host if request.client else None
    try:
        identity = await check_password(
            service.store, name, password, now=service.now(), client=client
        )
    except SignInRefused as exc:
        page = {"next": target, "error": str(exc), "name": name, "providers": []}
        return render(request, "signin.html", page, status=401)
    response = RedirectResponse(target, status_code=303)
    await start_session(service.store, request, response, identity, "password", service.now())
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await posted(request)
    response = RedirectResponse("/sign-in", status_code=303)
    session = await current_session(request)
    if session is not None:
        service = service_of(request)
        await end_session(service.store, session, response, service.now())
        flash(request, response, "You are signed out.")
    return response
