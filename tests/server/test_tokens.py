"""Verified tokens are remembered briefly, and forgotten as soon as who may sign in changes,
in this process or any other."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from batonflow.governance._identity import Identity
from batonflow.server._tokens import TokenCache
from batonflow.store import AuditRecord
from server.harness import Server, make_token, until

ADA = Identity(name="ada", roles=("admin",))


class Clock:
    """Time that moves only when the test says (the cache only reads it)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds


def _entry(kind: str) -> AuditRecord:
    return AuditRecord(1, 0.0, kind, None, None, "someone", (), "{}", "", "")


def test_a_verified_token_is_trusted_for_the_ttl_only() -> None:
    clock = Clock(100.0)
    cache = TokenCache(clock.now, ttl=2.0)
    cache.put("bf_one", ADA, expires_at=None)
    assert cache.get("bf_one") == ADA
    assert cache.get("bf_other") is None
    clock.advance(1.9)
    assert cache.get("bf_one") == ADA
    clock.advance(0.1)
    assert cache.get("bf_one") is None  # verified again from the store


def test_never_past_the_tokens_own_expiry() -> None:
    clock = Clock(100.0)
    cache = TokenCache(clock.now, ttl=60.0)
    cache.put("bf_short", ADA, expires_at=100.5)
    assert cache.get("bf_short") == ADA
    clock.advance(0.5)
    assert cache.get("bf_short") is None


def test_any_identity_or_token_change_forgets_everything() -> None:
    clock = Clock(100.0)
    cache = TokenCache(clock.now)
    for kind, forgets in [("run.created", False), ("token.revoked", True),
                          ("identity.disabled", True), ("identity.created", True)]:  # fmt: skip
        cache.put("bf_one", ADA, expires_at=None)
        cache.see(_entry(kind))
        assert (cache.get("bf_one") is None) is forgets, kind
    cache.put("bf_one", ADA, expires_at=None)
    cache.forget()
    assert cache.get("bf_one") is None


def test_the_memory_is_bounded() -> None:
    cache = TokenCache(Clock(0.0).now, size=3)
    for i in range(3):
        cache.put(f"bf_{i}", ADA, expires_at=None)
    cache.put("bf_3", ADA, expires_at=None)  # full: starts over
    assert [cache.get(f"bf_{i}") for i in range(4)] == [None, None, None, ADA]


@pytest.mark.slow
async def test_a_token_revoked_elsewhere_is_refused_at_once(tmp_path: Path) -> None:
    """Revoked by the command line (another process) while the server remembers the token:
    refused within the change feed's delay, not at the end of the cache's."""
    db = str(tmp_path / "runs.db")
    admin = await make_token(db)
    doomed = await make_token(db, "vic", ("viewer",))
    server = Server(db, tmp_path, ("--token-cache", "600")).start()
    try:
        async with server.client(doomed) as client:
            assert (await client.get("/api/v1/runs")).status_code == 200  # remembered now
            revoke = [sys.executable, "-c", "from batonflow.cli import main; main()", "token",
                      "revoke", doomed, "--db", db, "--token", admin]  # fmt: skip
            done = await asyncio.to_thread(subprocess.run, revoke, capture_output=True)
            assert done.returncode == 0, done.stderr

            async def refused() -> bool:
                return (await client.get("/api/v1/runs")).status_code == 401

            await until(refused)  # the cache alone would allow it for 10 minutes
    finally:
        server.stop()
