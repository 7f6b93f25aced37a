"""The console's decision links on the real stores with a fake clock: signed (a changed byte
is refused), expiring (at the approval's expiry, and never later than seven days), used once,
and only while the approval is open in the round they were made for. (Here, not in
tests/console: async tests cannot share a thread with Playwright's sync API.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import batonflow as bf
from batonflow.catalog import approval
from batonflow.governance import wrap_store
from batonflow.governance._approval import list_pending
from batonflow.server.console._links import LINK_LIFETIME, BadLink, make_link, read_link, use_link
from batonflow.testing import FakeClock


@bf.workflow
async def asks(ctx: bf.Context, data: dict[str, Any]) -> Any:
    return await approval(
        ctx, title="Pay {amount}", data=data, approvers={"users": ["carol"]},
        expires_in=data["expires_in"],
    )  # fmt: skip


@pytest.fixture
async def waiting(store_url: str, clock: FakeClock) -> AsyncIterator[tuple[bf.Engine, Any]]:
    async with bf.Engine(store_url, clock=clock) as engine:
        handle = await engine.start(asks, {"amount": 10, "expires_in": 30 * 86400})
        await engine.settle()  # the run has asked and is parked
        (request,) = await list_pending(engine.store, run_id=handle.run_id)
        yield engine, request


async def test_a_link_is_signed_expires_and_decides_once(
    waiting: tuple[bf.Engine, Any], clock: FakeClock
) -> None:
    engine, request = waiting
    store = wrap_store(engine.store, now=clock.now)
    now = clock.now()
    token = await make_link(store, request, "carol", now)
    link, found = await read_link(store, token, now)
    assert (link.identity, found.id) == ("carol", request.id)
    assert link.expires_at == now + LINK_LIFETIME  # the approval lasts 30 days: 7 at most

    body, _, mac = token.partition(".")
    for forged in (f"{body}x.{mac}", f"{body}.{mac[:-2]}AA", "not-a-link"):
        with pytest.raises(BadLink, match="damaged"):
            await read_link(store, forged, now)
    with pytest.raises(BadLink, match="expired"):
        await read_link(store, token, now + LINK_LIFETIME)

    await use_link(store, link, now)
    with pytest.raises(BadLink, match="already used"):
        await use_link(store, link, now)
    with pytest.raises(BadLink, match="already used"):
        await read_link(store, token, now)


async def test_a_link_ends_with_its_approval(
    waiting: tuple[bf.Engine, Any], clock: FakeClock
) -> None:
    engine, request = waiting
    store = wrap_store(engine.store, now=clock.now)
    token = await make_link(store, request, "carol", clock.now())
    await engine.cancel(request.run_id)
    with pytest.raises(BadLink, match="closed"):
        await read_link(store, token, clock.now())
