"""Identities, roles and tokens, on the real store: hashed tokens, revocation, the role table,
the no-identity bootstrap, and an audit entry for every change."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import batonflow as bf
from batonflow.errors import AccessDenied
from batonflow.governance._identity import (
    TOKEN_ENV,
    Identity,
    authenticate,
    authorize,
    can,
    cli_identity,
    create_identity,
    create_token,
    get_identity,
    hash_token,
    list_identities,
    list_tokens,
    local_identity,
    revoke_token,
    set_identity_disabled,
    set_identity_roles,
)

NOW = 1_700_000_000.0
LOCAL = local_identity()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[bf.Store]:
    store = bf.open_store(store_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def admin(store: bf.Store) -> Identity:
    return await create_identity(store, "root", actor=LOCAL, now=NOW, roles=["admin"])


async def test_a_token_is_shown_once_and_only_its_hash_is_stored(db_path: Path) -> None:
    store = bf.open_store(db_path)
    await store.open()
    try:
        root = await admin(store)
        issued = await create_token(store, "root", actor=root, now=NOW, label="laptop")
        assert issued.token.startswith("bf_")
        assert len(issued.token) > 40
        assert (issued.info.identity, issued.info.label) == ("root", "laptop")
        assert await authenticate(store, issued.token) == root
        [info] = await list_tokens(store)
        assert info.id == hash_token(issued.token)[:12]
        assert not info.revoked
    finally:
        await store.close()
    raw = b"".join(p.read_bytes() for p in db_path.parent.iterdir() if p.is_file())
    assert issued.token.encode() not in raw
    assert issued.token[3:].encode() not in raw
    assert hash_token(issued.token).encode() in raw  # what is kept instead


async def test_revoked_unknown_and_disabled_tokens_are_refused(store: bf.Store) -> None:
    root = await admin(store)
    await create_identity(store, "ci", actor=root, now=NOW, kind="service", roles=["operator"])
    first = await create_token(store, "ci", actor=root, now=NOW)
    second = await create_token(store, "ci", actor=root, now=NOW)
    revoked = await revoke_token(store, first.info.id, actor=root, now=NOW + 1)
    assert revoked.revoked
    assert revoked.revoked_at == NOW + 1
    with pytest.raises(AccessDenied, match="revoked"):
        await authenticate(store, first.token)
    assert (await authenticate(store, second.token)).name == "ci"  # the other still works
    with pytest.raises(AccessDenied, match="unknown token"):
        await authenticate(store, "bf_" + "x" * 43)
    with pytest.raises(AccessDenied, match="not a batonflow token"):
        await authenticate(store, "hunter2")
    await set_identity_disabled(store, "ci", True, actor=root, now=NOW)
    with pytest.raises(AccessDenied, match="disabled"):
        await authenticate(store, second.token)
    with pytest.raises(bf.ConfigError, match="already revoked"):
        await revoke_token(store, first.token, actor=root, now=NOW)


async def test_every_change_is_audited_with_its_actor(store: bf.Store) -> None:
    root = await admin(store)
    await create_identity(store, "ann", actor=root, now=NOW, groups=["finance"])
    issued = await create_token(store, "ann", actor=root, now=NOW)
    await revoke_token(store, issued.token, actor=root, now=NOW)
    trail = [(e.kind, e.actor) for e in await store.read_audit()]
    assert trail == [
        ("identity.created", LOCAL.name),
        ("identity.created", "root"),
        ("token.created", "root"),
        ("token.revoked", "root"),
    ]
    for entry in await store.read_audit():
        assert issued.token not in entry.data_json


async def test_roles_grant_actions_through_one_table() -> None:
    viewer = Identity("v", roles=("viewer",))
    operator = Identity("o", roles=("operator",))
    root = Identity("r", roles=("admin",))
    nobody = Identity("n")
    assert can(viewer, "read")
    assert not can(viewer, "run.cancel")
    assert can(operator, "run.cancel")
    assert can(operator, "connector.switch")
    assert not can(operator, "policy.change")
    assert not can(operator, "identity.manage")
    assert can(root, "policy.change")
    assert can(root, "anything.new")
    assert can(nobody, "approval.decide")
    assert not can(nobody, "read")
    with pytest.raises(AccessDenied, match=r"o may not policy\.change: it needs the role admin"):
        authorize(operator, "policy.change")
    with pytest.raises(AccessDenied, match="disabled"):
        authorize(Identity("d", roles=("admin",), disabled=True), "read")


async def test_only_admins_manage_identities_and_the_first_must_be_one(store: bf.Store) -> None:
    with pytest.raises(bf.ConfigError, match="first identity must have the admin role"):
        await create_identity(store, "ann", actor=LOCAL, now=NOW)
    root = await admin(store)
    ops = await create_identity(store, "ops", actor=root, now=NOW, roles=["operator"])
    with pytest.raises(AccessDenied, match="needs the role admin"):
        await create_identity(store, "eve", actor=ops, now=NOW, roles=["admin"])
    with pytest.raises(AccessDenied):
        await create_token(store, "root", actor=ops, now=NOW)  # not for someone else
    own = await create_token(store, "ops", actor=ops, now=NOW)  # for themself: fine
    assert (await authenticate(store, own.token)).name == "ops"
    with pytest.raises(bf.ConfigError, match="already exists"):
        await create_identity(store, "ops", actor=root, now=NOW)
    with pytest.raises(bf.ConfigError, match="unknown role 'boss'"):
        await create_identity(store, "x", actor=root, now=NOW, roles=["boss"])
    with pytest.raises(bf.ConfigError, match="identity name"):
        await create_identity(store, "local:me", actor=root, now=NOW)
    with pytest.raises(bf.ConfigError, match="cannot disable itself"):
        await set_identity_disabled(store, "root", True, actor=root, now=NOW)
    assert [i.name for i in await list_identities(store)] == ["ops", "root"]
    assert await get_identity(store, "nobody") is None


async def test_the_cli_acts_as_the_local_admin_until_identities_exist(
    store: bf.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    me = await cli_identity(store, None)
    assert me.name.startswith("local:")
    assert me.roles == ("admin",)
    root = await admin(store)
    with pytest.raises(AccessDenied, match="pass --token or set BATONFLOW_TOKEN"):
        await cli_identity(store, None)
    issued = await create_token(store, "root", actor=root, now=NOW)
    assert (await cli_identity(store, issued.token)).name == "root"
    monkeypatch.setenv(TOKEN_ENV, issued.token)
    assert (await cli_identity(store, None)).name == "root"


async def test_roles_change_audited_and_no_admin_locks_itself_out(store: bf.Store) -> None:
    root = await admin(store)
    ops = await create_identity(store, "ops", actor=root, now=NOW, roles=["viewer"])
    token = await create_token(store, "ops", actor=root, now=NOW)
    assert not can(await authenticate(store, token.token), "run.cancel")
    changed = await set_identity_roles(store, "ops", ["operator", "viewer"], actor=root, now=NOW)
    assert changed.roles == ("operator", "viewer")
    assert can(await authenticate(store, token.token), "run.cancel")  # its token, at once
    entry = [e for e in await store.read_audit() if e.kind == "identity.roles_changed"][-1]
    assert (entry.actor, json.loads(entry.data_json)["from"]) == ("root", ["viewer"])
    with pytest.raises(AccessDenied):
        await set_identity_roles(store, "root", [], actor=ops, now=NOW)
    with pytest.raises(bf.ConfigError, match="cannot take the admin role from itself"):
        await set_identity_roles(store, "root", ["viewer"], actor=root, now=NOW)
    with pytest.raises(bf.ConfigError, match="unknown role 'boss'"):
        await set_identity_roles(store, "ops", ["boss"], actor=root, now=NOW)
    with pytest.raises(bf.ConfigError, match="no identity named 'nobody'"):
        await set_identity_roles(store, "nobody", ["viewer"], actor=root, now=NOW)


def test_identity_records_round_trip() -> None:
    ann = Identity("ann", roles=("viewer",), groups=("finance",), email="Ann@Example.test")
    assert Identity.from_dict(json.loads(json.dumps(ann.to_dict()))) == ann
    assert ann.aliases() == {"ann", "ann@example.test"}
