"""Reading personal data takes a role and leaves a trace; refused sign-ins are audited."""

from __future__ import annotations

import asyncio
import json

import pytest

import batonflow as bf
from batonflow.governance._identity import (
    REFUSALS_KIND,
    REFUSALS_PER_MINUTE,
    authenticate,
    create_identity,
    create_token,
    local_identity,
    revoke_token,
    set_identity_disabled,
)
from security.conftest import Site
from security.test_keys_and_files import write_letter


async def people(site: Site) -> dict[str, str]:
    """admin, operator, viewer and a disabled clerk, each with a token."""
    async with site.store() as store:
        root = local_identity()
        tokens = {}
        for name, roles in (("ada", ["admin"]), ("olga", ["operator"]), ("vic", ["viewer"]),
                            ("clerk", ["viewer"])):  # fmt: skip
            await create_identity(store, name, actor=root, now=1.0, roles=roles)
            tokens[name] = (await create_token(store, name, actor=root, now=1.0)).token
        admin = await authenticate(store, tokens["ada"])
        await set_identity_disabled(store, "clerk", True, actor=admin, now=2.0)
        return tokens


def trail(site: Site, token: str) -> list[dict[str, object]]:
    result = site.cli("audit", "export", token=token)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_reading_a_subject_run_needs_a_role_and_is_recorded(site: Site) -> None:
    run_id = asyncio.run(write_letter(site))
    tokens = asyncio.run(people(site))

    anonymous = site.cli("show", run_id)
    assert anonymous.exit_code == 11
    assert "this database has identities: pass --token or set BATONFLOW_TOKEN" in anonymous.stderr
    viewer = site.cli("show", run_id, "--json", token=tokens["vic"])
    assert viewer.exit_code == 0, viewer.output
    assert "Jane" not in viewer.stdout
    assert "reading it needs the operator or admin role" in viewer.stdout
    operator = site.cli("show", run_id, "--json", token=tokens["olga"])
    assert "Dear Jane Doe" in operator.stdout
    disabled = site.cli("show", run_id, token=tokens["clerk"])
    assert disabled.exit_code == 11
    assert "identity 'clerk' is disabled" in disabled.stderr

    entries = trail(site, tokens["ada"])
    reads = [(e["batonflowactor"], e["data"]["what"], e["data"]["personal"])
             for e in entries if e["type"] == "batonflow.audit.data.read"]  # fmt: skip
    assert reads[:2] == [("vic", "show", False), ("olga", "show", True)]
    assert reads[-1] == ("ada", "audit export", True)  # the export recorded itself
    # the reads name whose data was read: the subject's reference
    shows = [e for e in entries if e["type"] == "batonflow.audit.data.read"]
    subjects = {e.get("batonflowsubjects") for e in shows if e["data"]["what"] == "show"}
    assert len(subjects) == 1
    assert str(subjects.pop()).startswith("s:")
    # a viewer's export withholds the sealed payloads
    for entry in trail(site, tokens["vic"]):
        assert "Jane" not in json.dumps(entry)


def test_refused_sign_ins_are_audited_and_a_flood_is_counted(site: Site) -> None:
    asyncio.run(write_letter(site))
    tokens = asyncio.run(people(site))

    async def attack() -> tuple[list[dict[str, object]], int]:
        async with site.store() as store:
            admin = await authenticate(store, tokens["ada"])
            await revoke_token(store, tokens["olga"], actor=admin, now=3.0)
            for token in ("bf_forged", tokens["olga"], tokens["clerk"], "not-a-token"):
                with pytest.raises(bf.AccessDenied):
                    await authenticate(store, token, now=600.0)
            for i in range(40):  # a flood within one minute
                with pytest.raises(bf.AccessDenied):
                    await authenticate(store, f"bf_guess{i}", now=630.0)
            records = await store.read_audit(limit=100_000)
            count = json.loads(await store.get_record(REFUSALS_KIND, "10") or "{}")["count"]
            return [{"kind": r.kind, **json.loads(r.data_json)} for r in records], count

    entries, counted = asyncio.run(attack())
    refused = [e for e in entries if e["kind"] == "auth.refused"]
    reasons = [e["reason"] for e in refused[:4]]
    assert reasons[0] == "unknown token"
    assert reasons[1].startswith("token ")
    assert reasons[1].endswith(" was revoked")
    assert reasons[2] == "identity 'clerk' is disabled"
    assert reasons[3].startswith("that is not a batonflow token")
    for secret in ("bf_forged", "bf_guess", tokens["olga"], tokens["clerk"]):
        assert secret not in json.dumps(entries)  # a token is named by its id only
    assert len(refused) == REFUSALS_PER_MINUTE  # one minute's worth, then counted
    assert [e["kind"] for e in entries].count("auth.refused.limited") == 1
    assert counted == 44


def test_a_viewer_lists_approvals_without_their_personal_data(site: Site) -> None:
    from security.servers import Crm
    from security.test_erasure import allow_crm, start_jane

    allow_crm(site)
    with Crm() as crm:
        asyncio.run(start_jane(site, crm))
    raw = site.raw_bytes()
    assert b"Refund for Jane Doe" not in raw  # the open approval's title is sealed
    tokens = asyncio.run(people(site))
    viewer = site.cli("approval", "list", "--json", token=tokens["vic"])
    assert viewer.exit_code == 0, viewer.output
    [seen] = json.loads(viewer.stdout)
    assert seen["title"] == "[withheld]"
    operator = site.cli("approval", "list", "--json", token=tokens["olga"])
    assert json.loads(operator.stdout)[0]["title"] == "Refund for Jane Doe"
    reads = [e for e in trail(site, tokens["ada"]) if e["type"] == "batonflow.audit.data.read"]
    assert [(e["batonflowactor"], e["data"]["what"]) for e in reads][:2] == [
        ("vic", "approval list"),
        ("olga", "approval list"),
    ]
