"""``/api/v1/identities`` and ``/api/v1/tokens`` (admin; anyone for their own tokens)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from batonflow.governance._identity import (
    Identity,
    create_identity,
    create_token,
    list_identities,
    list_tokens,
    revoke_token,
    set_identity_disabled,
)
from batonflow.server._auth import allowed, require, service_of
from batonflow.server._models import Body
from batonflow.server._paging import Cursor, Limit, Paged, page

router = APIRouter(tags=["identities"])
Admin = Annotated[Identity, Depends(allowed("identity.manage"))]
Anyone = Annotated[Identity, Depends(allowed("read"))]


class IdentityOut(BaseModel):
    name: str
    kind: str
    roles: list[str]
    groups: list[str]
    email: str | None = None
    created_at: float
    disabled: bool


class IdentityList(Paged):
    items: list[IdentityOut]


class NewIdentity(Body):
    name: str = Field(..., min_length=1, max_length=128)
    kind: Literal["user", "service"] = "user"
    roles: list[Literal["admin", "operator", "viewer"]] = Field([], max_length=3)
    groups: list[str] = Field([], max_length=100)
    email: str | None = Field(None, max_length=320)


class TokenOut(BaseModel):
    id: str
    identity: str
    label: str | None = None
    created_at: float
    revoked: bool
    revoked_at: float | None = None
    expires_at: float | None = None


class TokenList(Paged):
    items: list[TokenOut]


class NewToken(Body):
    identity: str | None = Field(None, max_length=128, description="Default: the caller")
    label: str | None = Field(None, max_length=200)
    expires_in: float | None = Field(None, gt=0, description="Seconds it stays valid")


class IssuedOut(TokenOut):
    token: str = Field(description="Shown this once; the server keeps only its hash")


def _identity(i: Identity) -> IdentityOut:
    data: dict[str, Any] = i.to_dict()
    return IdentityOut.model_validate({**data, "roles": list(i.roles), "groups": list(i.groups)})


@router.get("/identities", response_model=IdentityList)
async def identities(
    request: Request, me: Admin, limit: Limit = 100, cursor: Cursor = None
) -> IdentityList:
    """Identities by name."""
    found = await list_identities(service_of(request).store)
    chosen, after = page(found, lambda i: i.name, limit, cursor)
    return IdentityList(items=[_identity(i) for i in chosen], next_cursor=after)


@router.post("/identities", response_model=IdentityOut, status_code=201)
async def new_identity(body: NewIdentity, request: Request, me: Admin) -> IdentityOut:
    service = service_of(request)
    made = await create_identity(
        service.store, body.name, actor=me, now=service.now(), kind=body.kind, roles=body.roles,
        groups=body.groups, email=body.email,
    )  # fmt: skip
    return _identity(made)


@router.post("/identities/{name}/disable", response_model=IdentityOut)
async def disable(name: str, request: Request, me: Admin) -> IdentityOut:
    service = service_of(request)
    disabled = await set_identity_disabled(service.store, name, True, actor=me, now=service.now())
    service.tokens.forget()  # its tokens stop working now, not when the cache would expire
    return _identity(disabled)


@router.post("/identities/{name}/enable", response_model=IdentityOut)
async def enable(name: str, request: Request, me: Admin) -> IdentityOut:
    service = service_of(request)
    return _identity(
        await set_identity_disabled(service.store, name, False, actor=me, now=service.now())
    )


@router.get("/tokens", response_model=TokenList)
async def tokens(
    request: Request,
    me: Anyone,
    identity: str | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> TokenList:
    """Tokens (never the tokens themselves), oldest first: the caller's own, or anyone's for
    an admin."""
    if identity != me.name:
        await require(request, me, "identity.manage")
    found = await list_tokens(service_of(request).store, identity)
    chosen, after = page(found, lambda t: f"{t.created_at:020.6f}\n{t.id}", limit, cursor)
    return TokenList(
        items=[TokenOut.model_validate(t, from_attributes=True) for t in chosen],
        next_cursor=after,
    )


@router.post("/tokens", response_model=IssuedOut, status_code=201)
async def new_token(body: NewToken, request: Request, me: Anyone) -> IssuedOut:
    """Issue a token: an admin for anyone, anyone for themself."""
    service = service_of(request)
    issued = await create_token(
        service.store, body.identity or me.name, actor=me, now=service.now(), label=body.label,
        expires_in=body.expires_in,
    )  # fmt: skip
    info = TokenOut.model_validate(issued.info, from_attributes=True)
    return IssuedOut(**info.model_dump(), token=issued.token)


@router.post("/tokens/{token_id}/revoke", response_model=TokenOut)
async def revoke(token_id: str, request: Request, me: Anyone) -> TokenOut:
    """Revoke a token by its id: an admin any, anyone their own."""
    service = service_of(request)
    info = await revoke_token(service.store, token_id, actor=me, now=service.now())
    service.tokens.forget()  # refused from the next request on
    return TokenOut.model_validate(info, from_attributes=True)
