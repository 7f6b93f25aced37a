"""Console sessions on the real stores: a session opens nothing once expired, signed out, or
when its identity is disabled (at once: the session is a store record, not a signed cookie);
the cookie holds a token whose hash alone is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from starlette.requests import Request
from starlette.responses import Response

import batonflow as bf
from batonflow.governance._identity import create_identity, local_identity, set_identity_disabled
from batonflow.server.console._session import (
    SESSION_COOKIE,
    SESSION_KIND,
    SESSION_LIFETIME,
    end_session,
    find_session,
    start_session,
)

NOW = 1_700_000_000.0


def _request(cookie: str | None = None, scheme: str = "http") -> Request:
    headers = [(b"cookie", f"{SESSION_COOKIE}={cookie}".encode())] if cookie else []
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers,
             "scheme": scheme, "server": ("console.example", 443), "query_string": b""}  # fmt: skip
    return Request(scope)


def _cookie(response: Response) -> str:
    for name, value in response.raw_headers:
        if name == b"set-cookie" and value.startswith(SESSION_COOKIE.encode()):
            return value.decode()
    raise AssertionError("no session cookie was set")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[bf.Store]:
    store = bf.open_store(store_url)
    await store.open()
    try:
        admin = await create_identity(store, "ann", actor=local_identity(), now=NOW,
                                      roles=["admin"])  # fmt: skip
        await create_identity(store, "carol", actor=admin, now=NOW, roles=["viewer"])
        yield store
    finally:
        await store.close()


async def test_a_session_lasts_its_lifetime_and_keeps_only_a_hash(store: bf.Store) -> None:
    carol = await _carol(store)
    response = Response()
    await start_session(store, _request(scheme="https"), response, carol, "password", NOW)
    header = _cookie(response)
    assert "httponly" in header.lower()
    assert "samesite=lax" in header.lower()
    assert "secure" in header.lower()
    token = header.split(";")[0].split("=", 1)[1]
    stored = await store.list_records(SESSION_KIND)
    assert token not in json.dumps(stored)
    found = await find_session(store, _request(token), NOW + SESSION_LIFETIME - 1)
    assert found is not None
    assert found.identity.name == "carol"
    assert await find_session(store, _request(token), NOW + SESSION_LIFETIME) is None
    assert await find_session(store, _request("made-up"), NOW) is None


async def test_disabling_the_identity_or_signing_out_ends_it_at_once(store: bf.Store) -> None:
    carol = await _carol(store)
    tokens = []
    for _ in range(2):
        response = Response()
        await start_session(store, _request(), response, carol, "password", NOW)
        tokens.append(_cookie(response).split(";")[0].split("=", 1)[1])
    first = await find_session(store, _request(tokens[0]), NOW)
    assert first is not None
    await end_session(store, first, Response(), NOW)
    assert await find_session(store, _request(tokens[0]), NOW) is None
    assert await find_session(store, _request(tokens[1]), NOW) is not None
    ann = await _named(store, "ann")
    await set_identity_disabled(store, "carol", True, actor=ann, now=NOW)
    assert await find_session(store, _request(tokens[1]), NOW) is None
    kinds = [e.kind for e in await store.read_audit()]
    assert kinds.count("console.signed_in") == 2
    assert kinds.count("console.signed_out") == 1


async def _carol(store: bf.Store) -> bf.governance.Identity:
    return await _named(store, "carol")


async def _named(store: bf.Store, name: str) -> bf.governance.Identity:
    from batonflow.governance._identity import get_identity

    found = await get_identity(store, name)
    assert found is not None
    return found
