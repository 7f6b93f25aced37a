"""Console sessions and the CSRF token every form carries.

A session is a random token in an HttpOnly cookie; the store keeps only its SHA-256 as a
governance record (``console.session``), with the identity, the way it signed in, its expiry
and the session's CSRF token. Server-side rather than signed cookies: signing out, disabling an
identity or losing a role takes effect at once, on every ``serve`` process sharing the store,
and no signing secret has to be shared between processes.

CSRF: every form has a hidden ``csrf`` field. Signed in, it must equal the session's own token
(kept in the store, so a cookie planted by a sibling site cannot forge it); before signing in
(the sign-in form itself) it must equal the ``bf_csrf`` cookie (double submit). A POST whose
``Origin`` names another site is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from batonflow.governance._identity import Identity, get_identity
from batonflow.store import AuditEntry, Store

__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "SESSION_KIND",
    "SESSION_LIFETIME",
    "BadForm",
    "Session",
    "checked_form",
    "csrf_token",
    "end_session",
    "find_session",
    "set_cookie",
    "start_session",
]

SESSION_COOKIE = "bf_session"
CSRF_COOKIE = "bf_csrf"
SESSION_KIND = "console.session"
#: Seconds a session lasts from sign-in (a working day); then the person signs in again.
SESSION_LIFETIME = 12 * 3600.0


class BadForm(Exception):
    """A form post without a valid CSRF token or from another site: refused, never acted on."""


@dataclass(frozen=True, slots=True)
class Session:
    key: str  # the SHA-256 of the cookie's token
    identity: Identity
    csrf: str
    method: str
    expires_at: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Lax, and Secure whenever the console is reached over https."""
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="lax", path="/",
        secure=request.url.scheme == "https",
    )  # fmt: skip


async def start_session(
    store: Store, request: Request, response: Response, identity: Identity, method: str, now: float
) -> Session:
    """A new session for ``identity`` (audited ``console.signed_in``), set as the cookie."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    data = {"identity": identity.name, "csrf": csrf, "method": method, "created_at": now,
            "expires_at": now + SESSION_LIFETIME}  # fmt: skip
    await _forget_expired(store, now)
    client = request.client.host if request.client else None
    entry = AuditEntry(
        "console.signed_in", json.dumps({"method": method, "client": client}), actor=identity.name
    )
    await store.put_record(SESSION_KIND, _hash(token), json.dumps(data), now, audit=[entry])
    set_cookie(request, response, SESSION_COOKIE, token, int(SESSION_LIFETIME))
    set_cookie(request, response, CSRF_COOKIE, csrf, int(SESSION_LIFETIME))
    return Session(_hash(token), identity, csrf, method, now + SESSION_LIFETIME)


async def _forget_expired(store: Store, now: float) -> None:
    """Delete sessions past their expiry (they open nothing already; this keeps the table small)."""
    for key, text in await store.list_records(SESSION_KIND):
        if float(json.loads(text)["expires_at"]) <= now:
            await store.put_record(SESSION_KIND, key, None, now)


async def find_session(store: Store, request: Request, now: float) -> Session | None:
    """The request's live session: None without a cookie, or when it expired, was ended, or
    its identity is gone or disabled."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    text = await store.get_record(SESSION_KIND, _hash(token))
    if text is None:
        return None
    data: dict[str, Any] = json.loads(text)
    if float(data["expires_at"]) <= now:
        return None
    identity = await get_identity(store, str(data["identity"]))
    if identity is None or identity.disabled:
        return None
    return Session(_hash(token), identity, data["csrf"], data["method"], data["expires_at"])


async def end_session(store: Store, session: Session, response: Response, now: float) -> None:
    """Sign out: the record is deleted (audited ``console.signed_out``), the cookie cleared."""
    entry = AuditEntry("console.signed_out", "{}", actor=session.identity.name)
    await store.put_record(SESSION_KIND, session.key, None, now, audit=[entry])
    response.delete_cookie(SESSION_COOKIE, path="/")


def csrf_token(request: Request, session: Session | None) -> str:
    """The token this page's forms carry; before sign-in, the ``bf_csrf`` cookie's (a new one
    is made and set by :func:`batonflow.server.console._render.render` when absent)."""
    if session is not None:
        return session.csrf
    existing = request.cookies.get(CSRF_COOKIE)
    if existing:
        return existing
    made: str = getattr(request.state, "new_csrf", "") or secrets.token_urlsafe(24)
    request.state.new_csrf = made
    return made


async def checked_form(request: Request, session: Session | None) -> FormData:
    """The posted form, once its CSRF token and origin check out; :class:`BadForm` if not."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.rstrip("/") != _own_origin(request):
        raise BadForm(f"the form was sent from another site ({origin})")
    form = await request.form()
    sent = form.get("csrf")
    expected = session.csrf if session is not None else request.cookies.get(CSRF_COOKIE)
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise BadForm(
            "the form had no valid security token (CSRF): reload the page and send it again"
        )
    return form


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"
