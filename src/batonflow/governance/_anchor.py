"""Signed heads that mean something: a pinned key, automatic signing, an anchor outside the DB.

``[governance.audit]`` in the configuration (outside the database, where an insider with the
database cannot change it)::

    [governance.audit]
    public_key = "audit.pub"       # the one key heads may be signed with (verify pins it)
    signing_key = "audit.key"      # the service signs the head with it (serve, worker)
    anchor = "audit-anchor.jsonl"  # each signed head is appended here, one JSON line
    sign_every = 1000              # sign after this many new entries ...
    sign_interval = 300            # ... or this many seconds, whichever comes first

The anchor file is opened for appending only and fsynced after each head: a copy of the heads
the database cannot rewrite. ``audit verify`` reads it (``--anchor``, or the configured one),
so deleting entries after the last anchored head, deleting the stored heads, or re-signing with
another key is named. Truncation is bounded by the signing period: entries written after the
last anchored head can still be removed unnoticed, which is why the period is configurable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from batonflow.errors import BatonflowError, ConfigError
from batonflow.governance._audit import (
    HEAD_KIND,
    SignedHead,
    Verification,
    load_private_key,
    load_public_key,
    sign_head,
    verify_chain,
)
from batonflow.store import Store

__all__ = ["AuditHeads", "HeadSigner", "append_anchor", "read_anchor", "verify_configured"]

log = logging.getLogger("batonflow.audit")
_KEYS = {"public_key", "signing_key", "anchor", "sign_every", "sign_interval"}


@dataclass(frozen=True, slots=True)
class AuditHeads:
    """``[governance.audit]``: the pinned key, the service's signing key, the anchor file."""

    public_key: Path | None = None
    signing_key: Path | None = None
    anchor: Path | None = None
    sign_every: int = 1000
    sign_interval: float = 300.0

    @classmethod
    def parse(cls, table: Any, where: str, base: Path) -> AuditHeads:
        if table is None:
            return cls()
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table")
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; expected {sorted(_KEYS)}")
        paths = {}
        for name in ("public_key", "signing_key", "anchor"):
            value = table.get(name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{where}: {name}: expected a file path, got {value!r}")
            paths[name] = None if value is None else base / Path(value).expanduser()
        every, interval = table.get("sign_every", 1000), table.get("sign_interval", 300)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"{where}: sign_every: expected a whole number >= 1, got {every!r}")
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise ConfigError(f"{where}: sign_interval: expected seconds > 0, got {interval!r}")
        if paths["signing_key"] is not None and paths["anchor"] is None:
            raise ConfigError(f"{where}: signing_key needs an anchor file to append heads to")
        return cls(**paths, sign_every=every, sign_interval=float(interval))

    def pinned(self) -> Ed25519PublicKey | None:
        return load_public_key(self.public_key) if self.public_key else None

    def signer(self, store: Store) -> HeadSigner | None:
        """The service's signer, when a signing key is configured (it must match the pin)."""
        if self.signing_key is None or self.anchor is None:
            return None
        key = load_private_key(self.signing_key)
        pinned = self.pinned()
        if pinned is not None and pinned.public_bytes_raw() != key.public_key().public_bytes_raw():
            raise ConfigError(
                f"{self.signing_key}: this signing key is not the pinned public key "
                f"{self.public_key}: verify would refuse every head it signs"
            )
        return HeadSigner(store, key, self.anchor, self.sign_every, self.sign_interval)


async def verify_configured(
    store: Store,
    heads: AuditHeads,
    *,
    given: Sequence[SignedHead] = (),
    public_key: Path | None = None,
    anchor: Path | None = None,
) -> Verification:
    """Verify as the configuration says: the pinned key (unless ``public_key`` names another),
    every head of the anchor (``anchor``, else the configured one when it exists: none yet
    means no service has signed) and the heads ``given``. The command line and the API both
    call this."""
    found = list(given)
    if anchor is not None:
        found += read_anchor(anchor)
    elif heads.anchor is not None and heads.anchor.exists():
        found += read_anchor(heads.anchor)
    pinned = public_key or heads.public_key
    key = load_public_key(pinned) if pinned else None
    return await verify_chain(store, heads=found, public_key=key)


def append_anchor(path: Path, head: SignedHead) -> None:
    """Append ``head`` as one JSON line, created 0600, fsynced before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (head.to_json().replace("\n", "") + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_anchor(path: Path) -> list[SignedHead]:
    """Every head in the anchor file, oldest first (a bad line is named by number)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the audit anchor: {exc.strerror}") from None
    return [
        SignedHead.from_json(line, f"{path}, line {n}")
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]


class HeadSigner:
    """Signs the trail's head every ``every`` new entries or ``interval`` seconds (when there
    is something new), keeps it in the store and appends it to the anchor."""

    def __init__(
        self, store: Store, key: Ed25519PrivateKey, anchor: Path, every: int, interval: float
    ) -> None:
        self.store, self.key, self.anchor = store, key, anchor
        self.every, self.interval = every, interval
        self._signed: tuple[int, float] | None = None  # (seq, when) of the last head signed

    async def _last(self) -> tuple[int, float]:
        if self._signed is None:
            heads = await self.store.list_records(HEAD_KIND)
            self._signed = (int(heads[-1][0]), 0.0) if heads else (0, 0.0)
        return self._signed

    async def maybe_sign(self, now: float) -> SignedHead | None:
        """Sign now if enough entries or time have passed since the last head; else None."""
        seq, when = await self._last()
        # the audit.signed entry that follows a head is not news worth a head of its own
        new = await self.store.read_audit(after=seq, limit=self.every + 1)
        news = [r for r in new if r.kind != "audit.signed"]
        if not news or (len(new) < self.every and now - when < self.interval):
            return None
        head = await sign_head(self.store, self.key, now, actor="engine", after=seq)
        append_anchor(self.anchor, head)
        self._signed = (head.seq, now)
        return head

    async def run(self, clock: Any) -> None:
        """Check every few seconds until cancelled; a failed signing is logged and retried."""
        pause = min(self.interval, 5.0)
        while True:
            try:
                await self.maybe_sign(clock.now())
            except (BatonflowError, OSError) as exc:
                log.warning("could not sign the audit head: %s", exc)
            await asyncio.sleep(pause)


@contextlib.asynccontextmanager
async def signing(heads: AuditHeads, store: Store, clock: Any) -> Any:
    """Run the configured signer beside a service (nothing when none is configured); a last
    head is signed on the way out."""
    signer = heads.signer(store)
    if signer is None:
        yield None
        return
    task = asyncio.create_task(signer.run(clock), name="batonflow-audit-signer")
    try:
        yield signer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(BatonflowError, OSError):
            signer.interval = 0.0
            await signer.maybe_sign(clock.now())
