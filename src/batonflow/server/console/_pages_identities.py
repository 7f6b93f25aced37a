"""``/identities`` (admin): the people and services that act, with their roles, groups and
tokens; creating one, changing its roles, disabling it, issuing a token (shown once, on the
page that issued it, never stored) and revoking one. Every change is the governance function
the CLI and the API call (``create_identity``, ``set_identity_roles``,
``set_identity_disabled``, ``create_token``, ``revoke_token``), audited there."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any, Literal

from fastapi import Depends
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import batonflow as bf
from batonflow.governance._identity import (
    ROLES,
    Identity,
    create_identity,
    create_token,
    list_identities,
    list_tokens,
    revoke_token,
    set_identity_disabled,
    set_identity_roles,
)
from batonflow.server._auth import service_of
from batonflow.server.console import router
from batonflow.server.console._guard import Refused, posted, signed_in
from batonflow.server.console._render import flash, render

Manager = Annotated[Identity, Depends(signed_in("identity.manage"))]


async def _context(request: Request) -> dict[str, Any]:
    store = service_of(request).store
    tokens = await list_tokens(store)
    return {
        "identities": await list_identities(store), "roles": ROLES,
        "tokens": {t.identity: [x for x in tokens if x.identity == t.identity] for t in tokens},
        "issued": None,
    }  # fmt: skip


@router.get("/identities")
async def identities(request: Request, me: Manager) -> Response:
    return render(request, "identities.html", await _context(request))


def _done(request: Request, message: str) -> Response:
    response = RedirectResponse("/identities", status_code=303)
    flash(request, response, message)
    return response


def _refused(exc: bf.BatonflowError) -> Refused:
    return Refused("This change was refused", str(exc), status=400)


def _words(form: FormData, name: str) -> list[str]:
    return [w for w in str(form.get(name, "")).replace(",", " ").split() if w]


@router.post("/identities/create")
async def create(request: Request, me: Manager) -> Response:
    form = await posted(request)
    service = service_of(request)
    kind: Literal["user", "service"] = "service" if form.get("kind") == "service" else "user"
    try:
        made = await create_identity(
            service.store, str(form.get("name", "")).strip(), actor=me, now=service.now(),
            kind=kind, roles=[str(r) for r in form.getlist("role")],
            groups=_words(form, "groups"), email=str(form.get("email", "")).strip() or None,
        )  # fmt: skip
    except bf.ConfigError as exc:
        raise _refused(exc) from None
    return _done(request, f"Created {made.name} ({', '.join(made.roles) or 'no roles'})")


@router.post("/identities/roles")
async def roles(request: Request, me: Manager) -> Response:
    form = await posted(request)
    service = service_of(request)
    name = str(form.get("name", ""))
    try:
        changed = await set_identity_roles(
            service.store, name, [str(r) for r in form.getlist("role")], actor=me,
            now=service.now(),
        )  # fmt: skip
    except bf.ConfigError as exc:
        raise _refused(exc) from None
    return _done(request, f"{changed.name} now has: {', '.join(changed.roles) or 'no roles'}")


@router.post("/identities/disable")
async def disable(request: Request, me: Manager) -> Response:
    form = await posted(request)
    service = service_of(request)
    disabled = form.get("disabled") == "yes"
    try:
        changed = await set_identity_disabled(
            service.store, str(form.get("name", "")), disabled, actor=me, now=service.now()
        )
    except bf.ConfigError as exc:
        raise _refused(exc) from None
    state = "disabled: its tokens stop working" if disabled else "enabled again"
    return _done(request, f"{changed.name} {state}")


@router.post("/identities/tokens")
async def issue(request: Request, me: Manager) -> Response:
    """Issue a token and show it on this answer only: it is never stored or shown again."""
    form = await posted(request)
    service = service_of(request)
    try:
        issued = await create_token(
            service.store, str(form.get("name", "")), actor=me, now=service.now(),
            label=str(form.get("label", "")).strip()[:200] or None,
        )  # fmt: skip
    except bf.ConfigError as exc:
        raise _refused(exc) from None
    response = render(request, "identities.html", {**await _context(request), "issued": issued})
    response.headers["cache-control"] = "no-store"
    return response


@router.post("/identities/tokens/revoke")
async def revoke(request: Request, me: Manager) -> Response:
    form = await posted(request)
    service = service_of(request)
    try:
        info = await revoke_token(
            service.store, str(form.get("token", "")), actor=me, now=service.now()
        )
    except bf.ConfigError as exc:
        raise _refused(exc) from None
    return _done(request, f"Revoked token {info.id} of {urllib.parse.unquote(info.identity)}")
