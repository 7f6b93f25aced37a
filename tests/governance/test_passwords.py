"""Console passwords on the real stores: argon2 hashes kept apart from identities, a lockout
after repeated failures in a window (times given, never slept), and every outcome audited."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

import batonflow as bf
from batonflow.errors import AccessDenied, ConfigError
from batonflow.governance._identity import (
    create_identity,
    local_identity,
    set_identity_disabled,
)
from batonflow.governance._passwords import (
    PASSWORD_KIND,
    Lockout,
    SignInRefused,
    check_password,
    has_password,
    set_password,
)

NOW = 1_700_000_000.0
GOOD = "a long enough password"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[bf.Store]:
    store = bf.open_store(store_url)
    await store.open()
    try:
        admin = await create_identity(store, "ann", actor=local_identity(), now=NOW,
                                      roles=["admin"])  # fmt: skip
        await create_identity(store, "carol", actor=admin, now=NOW, roles=["viewer"])
        await set_password(store, "carol", GOOD, actor=admin, now=NOW)
        yield store
    finally:
        await store.close()


async def _audit_kinds(store: bf.Store) -> list[str]:
    return [e.kind for e in await store.read_audit()]


async def test_the_right_password_signs_in_and_only_a_hash_is_kept(store: bf.Store) -> None:
    identity = await check_password(store, "carol", GOOD, now=NOW)
    assert identity.name == "carol"
    stored = await store.get_record(PASSWORD_KIND, "carol")
    assert stored is not None
    assert GOOD not in stored
    assert json.loads(stored)["hash"].startswith("$argon2id$")
    assert await has_password(store, "carol")
    assert not await has_password(store, "ann")
    assert "identity.password_set" in await _audit_kinds(store)


async def test_refusals_do_not_say_which_names_exist_but_the_trail_does(store: bf.Store) -> None:
    messages = []
    for name, password in [("carol", "wrong password!!"), ("nobody", GOOD), ("ann", GOOD)]:
        with pytest.raises(SignInRefused) as refused:
            await check_password(store, name, password, now=NOW)
        messages.append(str(refused.value))
    assert len(set(messages)) == 1
    reasons = [
        json.loads(e.data_json)["reason"]
        for e in await store.read_audit()
        if e.kind == "console.sign_in_refused"
    ]
    assert reasons == ["wrong password", "no such identity", "no password set"]


async def test_repeated_failures_lock_the_name_until_the_window_passes(store: bf.Store) -> None:
    lockout = Lockout(failures=3, window=600.0)
    for i in range(3):
        with pytest.raises(SignInRefused):
            await check_password(store, "carol", "not the password", now=NOW + i, lockout=lockout)
    with pytest.raises(SignInRefused, match="too many failed sign-ins"):
        await check_password(store, "carol", GOOD, now=NOW + 10, lockout=lockout)
    # the first failure leaves the window: one more try is allowed, and the right one works
    identity = await check_password(store, "carol", GOOD, now=NOW + 601, lockout=lockout)
    assert identity.name == "carol"
    # a success clears the count
    with pytest.raises(SignInRefused, match="do not match"):
        await check_password(store, "carol", "wrong again!!", now=NOW + 602, lockout=lockout)


async def test_a_new_password_lifts_a_lockout(store: bf.Store) -> None:
    lockout = Lockout(failures=2, window=600.0)
    for i in range(2):
        with pytest.raises(SignInRefused):
            await check_password(store, "carol", "nope nope nope", now=NOW + i, lockout=lockout)
    admin = await _ann(store)
    await set_password(store, "carol", "another good password", actor=admin, now=NOW + 5)
    found = await check_password(
        store, "carol", "another good password", now=NOW + 6, lockout=lockout
    )
    assert found.name == "carol"


async def test_a_disabled_identity_cannot_sign_in(store: bf.Store) -> None:
    await set_identity_disabled(store, "carol", True, actor=await _ann(store), now=NOW)
    with pytest.raises(SignInRefused):
        await check_password(store, "carol", GOOD, now=NOW)


async def test_who_may_set_a_password_and_what_is_refused(store: bf.Store) -> None:
    carol = await check_password(store, "carol", GOOD, now=NOW)
    await set_password(store, "carol", "carol's own new one", actor=carol, now=NOW)
    with pytest.raises(AccessDenied, match=r"identity\.manage"):
        await set_password(store, "ann", "carol sets ann's", actor=carol, now=NOW)
    admin = await _ann(store)
    with pytest.raises(ConfigError, match="at least 12"):
        await set_password(store, "carol", "short", actor=admin, now=NOW)
    with pytest.raises(ConfigError, match="no identity named"):
        await set_password(store, "zed", GOOD, actor=admin, now=NOW)


async def _ann(store: bf.Store) -> bf.governance.Identity:
    from batonflow.governance._identity import get_identity

    found = await get_identity(store, "ann")
    assert found is not None
    return found
