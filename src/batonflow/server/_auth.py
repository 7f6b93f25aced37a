"""Who calls: a bearer token of an identity (``batonflow token create``), checked against the
same role table as the command line (:data:`batonflow.governance.ACTIONS`).

``Depends(allowed("run.start"))`` gives a route the caller's :class:`Identity` once its roles
allow the action; every refusal raises (401 without a valid token, 403 without the role) and is
audited once: a refused sign-in as ``auth.refused`` by the identity module (with the request's
method and path, under its per-minute limit), a missing role as ``api.refused`` through
:class:`~batonflow.server._refusals.Refusals`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

import batonflow as bf
from batonflow.governance._identity import Identity, authorize, record_refusal, verify_token
from batonflow.server._service import Service

__all__ = ["Unauthenticated", "allowed", "require", "service_of"]


class Unauthenticated(bf.AccessDenied):
    """No token, or one that is unknown, revoked, expired, or of a disabled identity."""


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _where(request: Request, action: str) -> dict[str, str]:
    """The request, as a refusal's audit entry names it (built only for refusals: it is
    measurable on the hot path)."""
    where = {"method": request.method, "path": request.url.path, "action": action}
    if request.client is not None:
        where["client"] = request.client.host
    return where


def allowed(action: str) -> Callable[[Request], Awaitable[Identity]]:
    """A dependency: the calling identity, if its roles allow ``action``."""

    async def caller(request: Request) -> Identity:
        service = service_of(request)
        token = _token(request)
        if token is None:
            where, reason = _where(request, action), "no bearer token"
            await record_refusal(service.store, None, reason, now=service.now(), context=where)
            raise Unauthenticated("this endpoint needs `Authorization: Bearer <token>`")
        identity = service.tokens.get(token)
        if identity is None:
            try:
                identity, expires_at = await verify_token(
                    service.store, token, now=service.now(), context=_where(request, action)
                )
            except bf.AccessDenied as exc:  # audited by verify_token
                raise Unauthenticated(str(exc)) from None
            service.tokens.put(token, identity, expires_at)
        request.state.identity = identity
        await require(request, identity, action)
        return identity

    return caller


async def require(request: Request, identity: Identity, action: str) -> None:
    """Raise AccessDenied (audited) unless ``identity`` may do ``action``."""
    try:
        authorize(identity, action)
    except bf.AccessDenied as exc:
        where = {**_where(request, action), "reason": str(exc)}
        await service_of(request).refusals.record(where, identity.name)
        raise
