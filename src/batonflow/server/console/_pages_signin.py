"""Signing in (name and password, or OpenID Connect: ``_oidc.py``) and out."""

from __future__ import annotations

import json
from typing import Annotated

import httpx
from fastapi import Query
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import batonflow as bf
from batonflow.governance._passwords import SignInRefused, check_password
from batonflow.server._auth import service_of
from batonflow.server.console import _oidc as oidc
from batonflow.server.console import router
from batonflow.server.console._guard import Refused, current_session, posted
from batonflow.server.console._oidc import Provider, providers
from batonflow.server.console._render import flash, render
from batonflow.server.console._session import end_session, set_cookie, start_session
from batonflow.store import AuditEntry

__all__ = ["OIDC_COOKIE", "safe_next"]

OIDC_COOKIE = "bf_oidc"


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
    choices = [(p.name, p.title) for p in providers(service_of(request).setup).values()]
    return render(request, "signin.html", {"next": safe_next(next), "providers": choices})


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
        choices = [(p.name, p.title) for p in providers(service.setup).values()]
        page = {"next": target, "error": str(exc), "name": name, "providers": choices}
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


def _provider(request: Request, name: str) -> Provider:
    found = providers(service_of(request).setup).get(name)
    if found is None:
        raise Refused("Unknown sign-in provider", f"no provider {name!r} is configured", 404)
    return found


def _callback(request: Request, name: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/sign-in/oidc/{name}/callback"


@router.get("/sign-in/oidc/{name}")
async def oidc_start(
    name: str, request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    """Off to the provider, with state, nonce and PKCE; the browser is bound by a cookie."""
    provider = _provider(request, name)
    service = service_of(request)
    async with service.setup.client(service.store) as client:
        try:
            url, binding = await oidc.start(
                service.store, client, provider, _callback(request, name), safe_next(next),
                service.now(),
            )  # fmt: skip
        except (bf.AccessDenied, bf.EgressDenied, httpx.HTTPError) as exc:
            raise Refused(f"{provider.title} cannot be reached", str(exc), 502) from None
    response = RedirectResponse(url, status_code=303)
    set_cookie(request, response, OIDC_COOKIE, binding, int(oidc.PENDING_LIFETIME))
    return response


@router.get("/sign-in/oidc/{name}/callback")
async def oidc_callback(
    name: str,
    request: Request,
    code: Annotated[str | None, Query(max_length=4000)] = None,
    state: Annotated[str | None, Query(max_length=500)] = None,
    error: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    provider = _provider(request, name)
    service = service_of(request)
    now = service.now()
    try:
        if error or not code or not state:
            raise bf.AccessDenied(f"{provider.title} did not sign you in ({error or 'no code'})")
        async with service.setup.client(service.store) as client:
            identity, target = await oidc.finish(
                service.store, client, provider, _callback(request, name), code=code,
                state=state, binding=request.cookies.get(OIDC_COOKIE), now=now,
            )  # fmt: skip
    except (bf.AccessDenied, bf.EgressDenied, httpx.HTTPError) as exc:
        reason = str(exc) or type(exc).__name__
        data = {"reason": reason, "method": f"oidc:{name}",
                "client": request.client.host if request.client else None}  # fmt: skip
        entry = AuditEntry("console.sign_in_refused", json.dumps(data), actor="anonymous")
        await service.store.append_audit([entry], now)
        raise Refused("You are not signed in", reason) from None
    response = RedirectResponse(safe_next(target), status_code=303)
    response.delete_cookie(OIDC_COOKIE, path="/")
    await start_session(service.store, request, response, identity, f"oidc:{name}", now)
    return response
