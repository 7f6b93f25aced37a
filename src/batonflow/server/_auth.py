"""Who calls: a bearer token of an identity (``batonflow token create``), checked against the
same role table as the command line (:data:`batonflow.governance.ACTIONS`).

``Depends(allowed("run.start"))`` gives a route the caller's :class:`Identity` once its roles
allow the action; every refusal raises (401 without a valid token, 403 without the role) and is
audited through :class:`~batonflow.server._refusals.Refusals`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

import batonflow as bf
from batonflow.governance._identity import Identity, authenticate, authorize
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


def allowed(action: str) -> Callable[[Request], Awaitable[Identity]]:
    """A dependency: the calling identity, if its roles allow ``action``."""

    async def caller(request: Request) -> Identity:
        service = service_of(request)
        where = {"method": request.method, "path": request.url.path, "action": action}
        if request.client is not None:
            where["client"] = request.client.host
        token = _token(request)
        if token is None:
            await service.refusals.record({**where, "reason": "no bearer token"}, None)
            raise Unauthenticated("this endpoint needs `Authorization: Bearer <token>`")
        try:
            identity = await authenticate(service.store, token)
        except bf.AccessDenied as exc:
            await service.refusals.record({**where, "reason": str(exc)}, None)
            raise Unauthenticated(str(exc)) from None
        request.state.identity = identity
        await require(request, identity, action)
        return identity

    return caller


async def require(request: Request, identity: Identity, action: str) -> None:
    """Raise AccessDenied (audited) unless ``identity`` may do ``action``."""
    try:
        authorize(identity, action)
    except bf.AccessDenied as exc:
        where = {"method": request.method, "path": request.url.path, "action": action}
        await service_of(request).refusals.record({**where, "reason": str(exc)}, identity.name)
        raise
