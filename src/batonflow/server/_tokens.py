"""Tokens verified a moment ago, so a busy client does not cost two store reads per request.

A verified token is remembered by its SHA-256 (never the token itself) for at most ``ttl``
seconds and never past its own expiry. Anything that changes who may sign in empties the
memory at once: a change made through this process (the identity routes call
:meth:`TokenCache.forget`) and, through the change feed, one made by any other process or the
command line (``identity.*`` and ``token.*`` audit entries). So a revoked token, or a disabled
identity, is refused by every process within the feed's delay, and in any case within ``ttl``.
"""

from __future__ import annotations

from collections.abc import Callable

from batonflow.governance._identity import Identity, hash_token
from batonflow.store import AuditRecord

__all__ = ["TokenCache"]

_CHANGES = ("identity.", "token.")


class TokenCache:
    def __init__(self, clock: Callable[[], float], *, ttl: float = 2.0, size: int = 10_000) -> None:
        self._clock = clock
        self._ttl = ttl
        self._size = size
        self._known: dict[str, tuple[Identity, float]] = {}

    def get(self, token: str) -> Identity | None:
        """The identity ``token`` was verified as, if that is recent enough to trust."""
        key = hash_token(token)
        found = self._known.get(key)
        if found is None:
            return None
        identity, until = found
        if self._clock() >= until:
            del self._known[key]
            return None
        return identity

    def put(self, token: str, identity: Identity, expires_at: float | None) -> None:
        until = self._clock() + self._ttl
        if expires_at is not None:
            until = min(until, expires_at)
        if len(self._known) >= self._size:  # a flood of distinct valid tokens: start over
            self._known.clear()
        self._known[hash_token(token)] = (identity, until)

    def forget(self) -> None:
        """Who may sign in changed: verify every token again."""
        self._known.clear()

    def see(self, record: AuditRecord) -> None:
        """A change feed observer: forget on any identity or token change, from any process."""
        if record.kind.startswith(_CHANGES):
            self._known.clear()
