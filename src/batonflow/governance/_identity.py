"""Identities, roles and tokens: who did it, and may they?

An *identity* is a person (``user``) or a program (``service``) with roles and groups. Roles
grant actions through one table (:data:`ACTIONS`); groups are plain names that approval steps
name as their deciders. A *token* is a random secret (``bf_...``) given once at creation; the
store keeps only its SHA-256, so a copy of the database does not let anyone act as anyone.

Both live as governance records in the runs' own database (SQLite or PostgreSQL), and every
change is written with its audit entry in the same transaction.

Bootstrap: while the store holds no identity at all, the command line acts as
``local:<os user>`` with the ``admin`` role, so a fresh install needs no set-up. Once one
identity exists, every command that changes something must present a token
(:func:`cli_identity`). The first identity made should therefore be an admin, and
:func:`create_identity` refuses to make a first identity that is not.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from batonflow.errors import AccessDenied, ConfigError
from batonflow.store import AuditEntry, Store

__all__ = [
    "ACTIONS",
    "IDENTITY_KIND",
    "REFUSALS_KIND",
    "REFUSALS_PER_MINUTE",
    "ROLES",
    "TOKEN_ENV",
    "TOKEN_KIND",
    "TOKEN_PREFIX",
    "Identity",
    "IssuedToken",
    "TokenInfo",
    "authenticate",
    "authorize",
    "can",
    "cli_identity",
    "create_identity",
    "create_token",
    "get_identity",
    "has_identities",
    "hash_token",
    "list_identities",
    "list_tokens",
    "local_identity",
    "record_refusal",
    "revoke_token",
    "set_identity_disabled",
    "verify_token",
]

IDENTITY_KIND = "identity"
TOKEN_KIND = "token"
TOKEN_PREFIX = "bf_"
TOKEN_ENV = "BATONFLOW_TOKEN"

#: The roles; ``admin`` may do everything.
ROLES: tuple[str, ...] = ("admin", "operator", "viewer")

#: action -> the roles that grant it (``admin`` grants every action, listed or not).
ACTIONS: Mapping[str, frozenset[str]] = {
    # reading runs, steps, the audit trail, pending approvals
    "read": frozenset({"admin", "operator", "viewer"}),
    # operating runs
    "run.start": frozenset({"admin", "operator"}),
    "run.cancel": frozenset({"admin", "operator"}),
    "run.suspend": frozenset({"admin", "operator"}),
    "run.resume": frozenset({"admin", "operator"}),
    "run.retry": frozenset({"admin", "operator"}),
    "event.deliver": frozenset({"admin", "operator"}),
    "connector.switch": frozenset({"admin", "operator"}),
    "alert.acknowledge": frozenset({"admin", "operator"}),
    "trigger.operate": frozenset({"admin", "operator"}),
    "subject.export": frozenset({"admin", "operator"}),
    # opening the sealed payloads of runs with data subjects (show, exports, API, console)
    "personal.read": frozenset({"admin", "operator"}),
    "audit.sign": frozenset({"admin", "operator"}),
    "subject.erase": frozenset({"admin", "operator"}),
    "run.purge": frozenset({"admin", "operator"}),
    # correcting a classification (it teaches the workflow's classifier)
    "label.correct": frozenset({"admin", "operator"}),
    # governing the system itself
    "policy.change": frozenset({"admin"}),
    "workflow.deploy": frozenset({"admin"}),
    "identity.manage": frozenset({"admin"}),
    # deciding an approval: any enabled identity; the approval's own rules say who may
    "approval.decide": frozenset({"admin", "operator", "viewer", "*"}),
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Identity:
    """Someone or something that acts: ``kind`` is ``user`` or ``service``; ``email`` lets
    separation of duties recognise a person who is a run's data subject by address."""

    name: str
    kind: Literal["user", "service"] = "user"
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    email: str | None = None
    created_at: float = 0.0
    disabled: bool = False

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def aliases(self) -> frozenset[str]:
        """The names this identity answers to (its name and email, case-folded)."""
        names = {self.name.casefold()}
        if self.email:
            names.add(self.email.casefold())
        return frozenset(names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "roles": list(self.roles),
            "groups": list(self.groups),
            "email": self.email,
            "created_at": self.created_at,
            "disabled": self.disabled,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Identity:
        kind = data.get("kind", "user")
        return cls(
            name=str(data["name"]),
            kind="service" if kind == "service" else "user",
            roles=tuple(data.get("roles") or ()),
            groups=tuple(data.get("groups") or ()),
            email=data.get("email"),
            created_at=float(data.get("created_at") or 0.0),
            disabled=bool(data.get("disabled", False)),
        )


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What the store knows of a token: never the token itself. ``id`` is the first 12 hex
    digits of its hash (enough to name it in ``token revoke``)."""

    id: str
    identity: str
    label: str | None
    created_at: float
    revoked: bool
    revoked_at: float | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created: ``token`` is shown this once and is not stored anywhere."""

    token: str
    info: TokenInfo


# -- checks -------------------------------------------------------------------------------------


def can(identity: Identity, action: str) -> bool:
    """May ``identity`` perform ``action``? (Unknown actions: only admins.)"""
    if identity.disabled:
        return False
    if "admin" in identity.roles:
        return True
    granted = ACTIONS.get(action, frozenset())
    return "*" in granted or any(role in granted for role in identity.roles)


def authorize(identity: Identity, action: str) -> None:
    """Raise :class:`AccessDenied` unless ``identity`` may perform ``action``."""
    if identity.disabled:
        raise AccessDenied(f"identity {identity.name!r} is disabled")
    if not can(identity, action):
        roles = sorted(ACTIONS.get(action, frozenset({"admin"})) - {"*"})
        has = ", ".join(identity.roles) or "no roles"
        raise AccessDenied(
            f"{identity.name} may not {action}: it needs the role {' or '.join(roles)}"
            f" (it has {has})"
        )


def hash_token(token: str) -> str:
    """The hex SHA-256 the store keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- reading ------------------------------------------------------------------------------------


async def get_identity(store: Store, name: str) -> Identity | None:
    text = await store.get_record(IDENTITY_KIND, name)
    return None if text is None else Identity.from_dict(json.loads(text))


async def list_identities(store: Store) -> list[Identity]:
    return [
        Identity.from_dict(json.loads(text)) for _, text in await store.list_records(IDENTITY_KIND)
    ]


async def has_identities(store: Store) -> bool:
    return bool(await store.list_records(IDENTITY_KIND))


async def list_tokens(store: Store, identity: str | None = None) -> list[TokenInfo]:
    """Every token (of ``identity``, when given), revoked ones too."""
    found = [
        _token_info(key, json.loads(text)) for key, text in await store.list_records(TOKEN_KIND)
    ]
    return [t for t in found if identity is None or t.identity == identity]


def _token_info(key: str, data: Mapping[str, Any]) -> TokenInfo:
    return TokenInfo(
        id=key[:12],
        identity=str(data["identity"]),
        label=data.get("label"),
        created_at=float(data.get("created_at") or 0.0),
        revoked=bool(data.get("revoked", False)),
        revoked_at=data.get("revoked_at"),
        expires_at=data.get("expires_at"),
    )


async def authenticate(
    store: Store,
    token: str,
    *,
    now: float | None = None,
    context: Mapping[str, Any] | None = None,
) -> Identity:
    """The identity a token stands for; :class:`AccessDenied` if the token is unknown, revoked,
    expired, or its identity is gone or disabled. Every refusal is audited (``auth.refused``,
    naming the token by its id, never the token, with ``context``: where the sign-in came from,
    e.g. an HTTP request's method and path), at most :data:`REFUSALS_PER_MINUTE` entries a
    minute: beyond that they are counted (kind ``auth-refusals``, one record a minute) and one
    ``auth.refused.limited`` entry says so, so a flood cannot fill the trail."""
    identity, _ = await verify_token(store, token, now=now, context=context)
    return identity


async def verify_token(
    store: Store,
    token: str,
    *,
    now: float | None = None,
    context: Mapping[str, Any] | None = None,
) -> tuple[Identity, float | None]:
    """:func:`authenticate`, also giving when the token expires (None: never), for a caller
    that remembers verified tokens for a while (the HTTP API)."""
    try:
        return await _authenticate(store, token.strip(), now)
    except AccessDenied as refusal:
        await record_refusal(store, token.strip(), str(refusal), now=now, context=context)
        raise


#: Refused sign-ins recorded one by one each minute; more are only counted.
REFUSALS_PER_MINUTE = 20
REFUSALS_KIND = "auth-refusals"


async def _authenticate(
    store: Store, token: str, now: float | None
) -> tuple[Identity, float | None]:
    if not token.startswith(TOKEN_PREFIX):
        raise AccessDenied(f"that is not a batonflow token (they start with {TOKEN_PREFIX!r})")
    text = await store.get_record(TOKEN_KIND, hash_token(token))
    if text is None:
        raise AccessDenied("unknown token")
    data = json.loads(text)
    if data.get("revoked"):
        raise AccessDenied(f"token {hash_token(token)[:12]} was revoked")
    expires_at = data.get("expires_at")
    if expires_at is not None and (time.time() if now is None else now) >= float(expires_at):
        raise AccessDenied(f"token {hash_token(token)[:12]} expired")
    identity = await get_identity(store, str(data["identity"]))
    if identity is None:
        raise AccessDenied(f"the token's identity {data['identity']!r} no longer exists")
    if identity.disabled:
        raise AccessDenied(f"identity {identity.name!r} is disabled")
    return identity, None if expires_at is None else float(expires_at)


async def record_refusal(
    store: Store,
    token: str | None,
    reason: str,
    *,
    now: float | None = None,
    context: Mapping[str, Any] | None = None,
) -> None:
    """Audit one refused sign-in (``token`` None: none was given) under the per-minute limit
    of :func:`authenticate`."""
    at = time.time() if now is None else now
    minute = str(int(at // 60))
    text = await store.get_record(REFUSALS_KIND, minute)
    count = (json.loads(text)["count"] if text else 0) + 1
    entries: list[AuditEntry] = []
    if count <= REFUSALS_PER_MINUTE:
        data: dict[str, Any] = {**(context or {}), "reason": reason}
        if token is not None:
            data["token"] = hash_token(token)[:12]
        entries.append(AuditEntry("auth.refused", json.dumps(data), actor="anonymous"))
    elif count == REFUSALS_PER_MINUTE + 1:
        note = f"more refused sign-ins this minute are counted in {REFUSALS_KIND}"
        data = {"minute": int(minute) * 60, "limit": REFUSALS_PER_MINUTE, "note": note}
        entries.append(AuditEntry("auth.refused.limited", json.dumps(data), actor="anonymous"))
    record = json.dumps({"count": count, "minute": int(minute) * 60})
    await store.put_record(REFUSALS_KIND, minute, record, at, audit=entries)


def local_identity() -> Identity:
    """Who the command line acts as while the store has no identities: the OS user, admin."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment (some containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return Identity(name=f"local:{user}", roles=("admin",))


async def cli_identity(store: Store, token: str | None) -> Identity:
    """The identity a command line acts as: the token given (``--token``, else the
    ``BATONFLOW_TOKEN`` environment variable); with neither, ``local:<os user>`` as admin while
    the store has no identities, and :class:`AccessDenied` once it has some."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if token:
        return await authenticate(store, token)
    if await has_identities(store):
        raise AccessDenied(f"this database has identities: pass --token or set {TOKEN_ENV} to act")
    return local_identity()


# -- changing -----------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    if not _NAME.match(name) or name.startswith("local:"):
        raise ConfigError(
            f"identity name {name!r}: use 1-128 letters, digits and . _ @ + - (starting with a"
            " letter or digit; 'local:' names are reserved for the no-identity default)"
        )
    return name


def _check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(r.strip() for r in roles if r.strip()))
    unknown = [r for r in found if r not in ROLES]
    if unknown:
        raise ConfigError(f"unknown role {unknown[0]!r}; the roles are {', '.join(ROLES)}")
    return found


def _check_groups(groups: Iterable[str]) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(g.strip() for g in groups if g.strip()))
    for group in found:
        if not _GROUP.match(group):
            raise ConfigError(
                f"group name {group!r}: use 1-64 letters, digits and . _ - (starting with a"
                " letter or digit)"
            )
    return found


def _audit(kind: str, actor: Identity, data: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(kind, json.dumps(dict(data), separators=(",", ":")), actor=actor.name)


async def create_identity(
    store: Store,
    name: str,
    *,
    actor: Identity,
    now: float,
    kind: Literal["user", "service"] = "user",
    roles: Sequence[str] = (),
    groups: Sequence[str] = (),
    email: str | None = None,
) -> Identity:
    """Create an identity (``actor`` needs ``identity.manage``); ConfigError if it exists. The
    first identity of a store must be an admin, or nobody could manage the others."""
    authorize(actor, "identity.manage")
    if kind not in ("user", "service"):
        raise ConfigError(f"identity kind {kind!r}: expected 'user' or 'service'")
    identity = Identity(
        name=_check_name(name),
        kind=kind,
        roles=_check_roles(roles),
        groups=_check_groups(groups),
        email=email.strip() if email and email.strip() else None,
        created_at=now,
    )
    if await get_identity(store, name) is not None:
        raise ConfigError(f"identity {name!r} already exists")
    if "admin" not in identity.roles and not await has_identities(store):
        raise ConfigError(
            f"the first identity must have the admin role (give {name!r} --role admin): once"
            " an identity exists, only admins can create more"
        )
    await store.put_record(
        IDENTITY_KIND,
        name,
        json.dumps(identity.to_dict(), separators=(",", ":")),
        now,
        audit=[_audit("identity.created", actor, identity.to_dict())],
    )
    return identity


async def set_identity_disabled(
    store: Store, name: str, disabled: bool, *, actor: Identity, now: float
) -> Identity:
    """Disable (or re-enable) an identity: a disabled identity's tokens stop working."""
    authorize(actor, "identity.manage")
    current = await get_identity(store, name)
    if current is None:
        raise ConfigError(f"no identity named {name!r}")
    if disabled and current.name == actor.name:
        raise ConfigError("an identity cannot disable itself")
    changed = Identity(**{**_fields(current), "disabled": disabled})
    kind = "identity.disabled" if disabled else "identity.enabled"
    await store.put_record(
        IDENTITY_KIND,
        name,
        json.dumps(changed.to_dict(), separators=(",", ":")),
        now,
        audit=[_audit(kind, actor, {"name": name})],
    )
    return changed


async def set_identity_roles(
    store: Store, name: str, roles: Sequence[str], *, actor: Identity, now: float
) -> Identity:
    """Give an identity exactly ``roles`` (``identity.roles_changed``, with before and after).
    An admin cannot take the admin role from itself: the store could be left without one."""
    authorize(actor, "identity.manage")
    current = await get_identity(store, name)
    if current is None:
        raise ConfigError(f"no identity named {name!r}")
    wanted = _check_roles(roles)
    if current.name == actor.name and "admin" in current.roles and "admin" not in wanted:
        raise ConfigError("an identity cannot take the admin role from itself")
    changed = Identity(**{**_fields(current), "roles": wanted})
    data = {"name": name, "from": list(current.roles), "to": list(wanted)}
    await store.put_record(
        IDENTITY_KIND, name, json.dumps(changed.to_dict(), separators=(",", ":")), now,
        audit=[_audit("identity.roles_changed", actor, data)],
    )  # fmt: skip
    return changed


def _fields(identity: Identity) -> dict[str, Any]:
    return {f: getattr(identity, f) for f in Identity.__slots__}


async def create_token(
    store: Store,
    identity: str,
    *,
    actor: Identity,
    now: float,
    label: str | None = None,
    expires_in: float | None = None,
) -> IssuedToken:
    """Issue a token for ``identity``: an admin for anyone, anyone for themself. The token is in
    the result only; the store keeps its hash. ``expires_in``: seconds it stays valid."""
    if expires_in is not None and expires_in <= 0:
        raise ConfigError(f"a token's lifetime must be positive seconds, got {expires_in}")
    if identity != actor.name:
        authorize(actor, "identity.manage")
    elif actor.disabled:
        raise AccessDenied(f"identity {actor.name!r} is disabled")
    target = await get_identity(store, identity)
    if target is None:
        raise ConfigError(f"no identity named {identity!r}; create it first")
    if target.disabled:
        raise ConfigError(f"identity {identity!r} is disabled")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = hash_token(token)
    data: dict[str, Any] = {
        "identity": identity, "label": label, "created_at": now, "revoked": False,
    }  # fmt: skip
    if expires_in is not None:
        data["expires_at"] = now + expires_in
    await store.put_record(
        TOKEN_KIND,
        key,
        json.dumps(data, separators=(",", ":")),
        now,
        audit=[
            _audit(
                "token.created", actor, {"token": key[:12], "identity": identity, "label": label}
            )
        ],
    )
    return IssuedToken(token, _token_info(key, data))


async def revoke_token(store: Store, token_or_id: str, *, actor: Identity, now: float) -> TokenInfo:
    """Revoke a token, named by itself or by its id (a prefix of its hash, 6+ hex digits). An
    admin may revoke any token, anyone their own."""
    key, data = await _find_token(store, token_or_id.strip())
    if data["identity"] != actor.name:
        authorize(actor, "identity.manage")
    elif actor.disabled:
        raise AccessDenied(f"identity {actor.name!r} is disabled")
    if data.get("revoked"):
        raise ConfigError(f"token {key[:12]} is already revoked")
    data = {**data, "revoked": True, "revoked_at": now}
    await store.put_record(
        TOKEN_KIND,
        key,
        json.dumps(data, separators=(",", ":")),
        now,
        audit=[_audit("token.revoked", actor, {"token": key[:12], "identity": data["identity"]})],
    )
    return _token_info(key, data)


async def _find_token(store: Store, token_or_id: str) -> tuple[str, dict[str, Any]]:
    if token_or_id.startswith(TOKEN_PREFIX):
        key = hash_token(token_or_id)
        text = await store.get_record(TOKEN_KIND, key)
        if text is None:
            raise ConfigError("unknown token")
        return key, json.loads(text)
    wanted = token_or_id.lower()
    if len(wanted) < 6 or not re.fullmatch(r"[0-9a-f]+", wanted):
        raise ConfigError(
            f"token id {token_or_id!r}: give the token itself ({TOKEN_PREFIX}...) or its id"
            " (6 or more hex digits, as `token list` shows)"
        )
    found = [(k, t) for k, t in await store.list_records(TOKEN_KIND) if k.startswith(wanted)]
    if not found:
        raise ConfigError(f"no token with id {token_or_id!r}")
    if len(found) > 1:
        raise ConfigError(f"token id {token_or_id!r} is ambiguous: give more digits")
    key, text = found[0]
    return key, json.loads(text)
