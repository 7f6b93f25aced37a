"""Passwords for signing in to the console, with a lockout after repeated failures.

A password is an argon2id hash (``argon2-cffi``) kept as a governance record of its own
(``identity.password``, keyed by identity), never inside the identity record, so listing
identities never carries hashes. Failures are counted per identity in a sliding window
(``sign-in.failures``): after :data:`LOCKOUT_FAILURES` within :data:`LOCKOUT_WINDOW` seconds the
identity cannot sign in with a password until the oldest failure leaves the window, whatever
the password. Every outcome is audited with the record change it causes. ``now`` is always
passed in, so tests use a fake clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from batonflow.errors import AccessDenied, ConfigError
from batonflow.governance._identity import Identity, _audit, authorize, get_identity
from batonflow.store import AuditEntry, Store

__all__ = [
    "LOCKOUT_FAILURES",
    "LOCKOUT_WINDOW",
    "MIN_PASSWORD",
    "PASSWORD_KIND",
    "Lockout",
    "SignInRefused",
    "check_password",
    "has_password",
    "set_password",
]

PASSWORD_KIND = "identity.password"
FAILURES_KIND = "sign-in.failures"
MIN_PASSWORD = 12
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = 15 * 60.0

_hasher = PasswordHasher()


class SignInRefused(AccessDenied):
    """Wrong name or password, no password set, a disabled identity, or a lockout. The message
    shown to the person never says which name exists."""


@dataclass(frozen=True, slots=True)
class Lockout:
    """How many failures lock an identity, within how many seconds."""

    failures: int = LOCKOUT_FAILURES
    window: float = LOCKOUT_WINDOW


async def set_password(
    store: Store, name: str, password: str, *, actor: Identity, now: float
) -> None:
    """Set ``name``'s password: an admin for anyone, anyone for themself. Clears a lockout."""
    if name != actor.name:
        authorize(actor, "identity.manage")
    elif actor.disabled:
        raise AccessDenied(f"identity {actor.name!r} is disabled")
    if await get_identity(store, name) is None:
        raise ConfigError(f"no identity named {name!r}; create it first")
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD} characters")
    record = json.dumps({"hash": _hasher.hash(password), "set_at": now}, separators=(",", ":"))
    audit = [_audit("identity.password_set", actor, {"name": name})]
    await store.put_record(PASSWORD_KIND, name, record, now, audit=audit)
    await store.put_record(FAILURES_KIND, name, None, now)


async def has_password(store: Store, name: str) -> bool:
    return await store.get_record(PASSWORD_KIND, name) is not None


async def check_password(
    store: Store,
    name: str,
    password: str,
    *,
    now: float,
    lockout: Lockout = Lockout(),
    client: str | None = None,
) -> Identity:
    """The identity whose name and password these are, or :class:`SignInRefused` (audited as
    ``console.sign_in_refused`` with the real reason; the exception says only what the person
    may know)."""
    identity = await get_identity(store, name)
    failures = await _recent_failures(store, name, now, lockout)
    reason: str | None = None
    if identity is None:
        reason = "no such identity"
    elif identity.disabled:
        reason = "identity disabled"
    elif len(failures) >= lockout.failures:
        reason = f"locked: {len(failures)} failures in {lockout.window:.0f} s"
    else:
        text = await store.get_record(PASSWORD_KIND, name)
        if text is None:
            reason = "no password set"
        elif not _verify(json.loads(text)["hash"], password):
            reason = "wrong password"
    if reason is None:
        assert identity is not None
        await store.put_record(FAILURES_KIND, name, None, now)
        return identity
    data = {"name": name, "reason": reason, "method": "password", "client": client}
    entry = AuditEntry("console.sign_in_refused", json.dumps(data), actor="anonymous")
    if identity is not None and not reason.startswith("locked"):
        failures = [*failures, now]
        record = json.dumps({"times": failures})
        await store.put_record(FAILURES_KIND, name, record, now, audit=[entry])
    else:
        await store.append_audit([entry], now)
    if reason.startswith("locked") or len(failures) >= lockout.failures:
        minutes = max(1, round((failures[0] + lockout.window - now) / 60))
        raise SignInRefused(
            f"too many failed sign-ins for this name: try again in about {minutes} minutes,"
            " or ask an administrator to set a new password"
        )
    raise SignInRefused("that name and password do not match an identity allowed to sign in")


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


async def _recent_failures(store: Store, name: str, now: float, lockout: Lockout) -> list[float]:
    text = await store.get_record(FAILURES_KIND, name)
    if text is None:
        return []
    return [t for t in json.loads(text)["times"] if t > now - lockout.window]
