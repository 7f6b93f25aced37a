"""State bound to the chain: an insider edits, inserts or deletes rows in every table the product
acts on, on SQLite and PostgreSQL, and `audit verify` names each one; a forged vote row never
counts toward a quorum."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

import batonflow as bf
from batonflow.catalog._approval import approval
from batonflow.governance._approval import APPROVAL_TOPIC, decide, list_pending
from batonflow.governance._identity import Identity, create_identity, list_identities
from security.conftest import Site

ADMIN = Identity("setup", roles=("admin",))


@bf.step
def look_up(client: str) -> dict[str, Any]:
    return {"client": client, "tier": "gold"}


@bf.workflow
async def onboarding(ctx: bf.Context, data: dict[str, Any]) -> str:
    record = await ctx.step(look_up, data["client"])
    note = await ctx.wait_for_event("welcome", key=data["client"])
    return f"welcome {record['client']} {note}"


@bf.workflow
async def refund(ctx: bf.Context, claim: dict[str, Any]) -> dict[str, Any]:
    verdict = await approval(
        ctx, title="Refund {amount}", data=claim, approvers={"groups": ["finance"]}, quorum=2,
        expires_in="P1D",
    )  # fmt: skip
    return {"paid": verdict["outcome"] == "approve"}


@bf.workflow(subjects=lambda data: [data["email"]])
async def sealed(ctx: bf.Context, data: dict[str, Any]) -> dict[str, Any]:
    return await ctx.step(look_up, data["email"])


CALLS: list[int] = []


@bf.step(retry=bf.Retry(max_attempts=2, initial_delay=0.5, jitter=0.0))
def flaky(email: str) -> str:
    CALLS.append(1)
    if len(CALLS) % 2:
        raise ConnectionError("the CRM hung up")
    return email


@bf.workflow(subjects=lambda data: [data["email"]])
async def retrying(ctx: bf.Context, data: dict[str, Any]) -> str:
    return await ctx.step(flaky, data["email"])


def tamper(site: Site, statement: str, params: tuple[Any, ...] = ()) -> None:
    """Change the database behind the product's back, as an insider with write access."""
    if site.is_sqlite:
        import sqlite3

        conn = sqlite3.connect(site.url)
        with conn:
            conn.execute(statement, params)
        conn.close()
        return
    import psycopg

    with psycopg.connect(site.url) as conn:
        conn.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]


def verify(site: Site, *extra: str) -> tuple[int, dict[str, Any]]:
    result = site.cli("audit", "verify", "--json", *extra)
    return result.exit_code, json.loads(result.stdout)


async def _people(store: bf.Store, now: float) -> dict[str, Identity]:
    await create_identity(store, "root", actor=ADMIN, now=now, roles=("admin",))
    for name in ("alice", "bob", "carol"):
        await create_identity(store, name, actor=ADMIN, now=now, groups=("finance",))
    return {i.name: i for i in await list_identities(store)}


async def _story(site: Site) -> dict[str, str]:
    """Two ended onboarding runs, one waiting, and a refund with one of two votes."""
    async with site.engine(onboarding, refund) as engine:
        ids = {}
        for client in ("c0", "c1", "c2"):
            ids[client] = (await engine.start(onboarding, {"client": client})).run_id
        await engine.settle()
        for client in ("c0", "c1"):
            await engine.send_event("welcome", "hi", key=client)
        await engine.settle()
        who = await _people(engine.store, site.clock.now())
        ids["refund"] = (await engine.start(refund, {"amount": 12}, started_by="carol")).run_id
        await engine.settle()
        await decide(engine, ids["refund"], who["alice"], "approve", now=site.clock.now())
        await engine.settle()
        assert await engine.handle(ids["c0"]).result() == "welcome c0 hi"
        assert await engine.handle(ids["refund"]).status() is bf.RunStatus.WAITING
    return ids


@pytest.fixture
def story(site: Site) -> dict[str, str]:
    return asyncio.run(_story(site))


def test_an_untouched_store_verifies_row_by_row(site: Site, story: dict[str, str]) -> None:
    code, out = verify(site)
    assert code == 0, out
    assert out["runs"] == 4
    assert out["problems"] == []


ATTACKS = [
    ("UPDATE runs SET output_json=? WHERE id=?", ('"welcome mallory"', "run:c0"),
     "run {c0}: its output was edited"),
    ("UPDATE runs SET status='completed', output_json='\"done\"' WHERE id=?", ("run:c2",),
     "run {c2}: its status was edited (completed, the trail says waiting)"),
    ("UPDATE runs SET input_json=? WHERE id=?", ('{"client":"zz"}', "run:c1"),
     "run {c1}: its input was edited"),
    ("UPDATE steps SET output_json=? WHERE run_id=? AND step_id='1'",
     ('{"tier":"platinum"}', "run:c0"),
     "step 1 of run {c0}: its output was edited"),
    ("UPDATE steps SET status='failed' WHERE run_id=? AND step_id='1'", ("run:c1",),
     "step 1 of run {c1}: its status was edited"),
    ("DELETE FROM steps WHERE run_id=? AND step_id='1'", ("run:c0",),
     "step 1 of run {c0} was deleted"),
    ("INSERT INTO steps (run_id, step_id, kind, name, status, output_json, attempts)"
     " VALUES (?, '9', 'step', 'bonus', 'completed', '1', 1)", ("run:c2",),
     "step 9 of run {c2} (bonus) was inserted"),
    ("DELETE FROM runs WHERE id=?", ("run:c1",), "run {c1} (onboarding) was deleted"),
    ("INSERT INTO runs (id, workflow, status, input_json, created_at, updated_at)"
     " VALUES ('ghost', 'onboarding', 'completed', '{}', 1, 1)", (),
     "run ghost (onboarding) was inserted"),
    ("UPDATE events SET payload_json='\"bye\"' WHERE key=?", ("c0",),
     "(welcome) was edited"),
    ("DELETE FROM events WHERE key=?", ("c1",), "(welcome) was deleted"),
    ("INSERT INTO events (topic, key, payload_json, created_at) VALUES ('welcome', 'c2', '1', 1)",
     (), "(welcome) was inserted"),
]  # fmt: skip


@pytest.mark.parametrize(("statement", "params", "named"), ATTACKS)
def test_every_edit_insert_and_delete_of_state_is_named(
    site: Site, story: dict[str, str], statement: str, params: tuple[str, ...], named: str
) -> None:
    tamper(site, statement, tuple(story[p[4:]] if p.startswith("run:") else p for p in params))
    code, out = verify(site)
    assert code == 12, out
    assert any(named.format(**story) in p for p in out["problems"]), out["problems"]


def test_a_forged_vote_does_not_count_and_verify_names_it(
    site: Site, story: dict[str, str]
) -> None:
    """The forgery of issue 14: a second vote row and its event written straight into the
    database. The run counts only votes backed by their audit entries."""
    run_id = story["refund"]

    async def forge() -> None:
        async with site.store() as store:
            [pending] = await list_pending(store, run_id=run_id)
        vote = {"approval": pending.id, "round": 0, "by": "bob", "option": "approve",
                "comment": None, "at": site.clock.now()}  # fmt: skip
        text = json.dumps(vote, separators=(",", ":"))
        tamper(site, "INSERT INTO records (kind, key, data_json, updated_at) VALUES"
               " ('approval.vote', ?, ?, 1)", (f"{pending.id}/0/bob", text))  # fmt: skip
        tamper(site, "INSERT INTO events (topic, key, run_id, payload_json, created_at) VALUES"
               " (?, ?, ?, ?, 1)", (APPROVAL_TOPIC, pending.id, run_id, text))  # fmt: skip
        tamper(site, "UPDATE runs SET status='pending' WHERE id=?", (run_id,))
        async with site.engine(refund) as engine:
            await engine.settle()
            assert await engine.handle(run_id).status() is bf.RunStatus.WAITING
            reasons = [
                json.dumps(await store_open(engine.store, e.data_json, run_id))
                for e in await engine.store.read_audit(run_id=run_id)
                if e.kind == "approval.refused"
            ]
            assert any("no verified approval.decision entry" in r for r in reasons), reasons

    asyncio.run(forge())
    code, out = verify(site)
    assert code == 12
    assert any("approval vote" in p and "/0/bob was inserted" in p for p in out["problems"])


async def store_open(store: Any, text: str, run_id: str) -> Any:
    opened = getattr(store, "open_json", None)
    return await opened(text, run_id) if opened else json.loads(text)


def test_an_emptied_trail_with_runs_fails(site: Site, story: dict[str, str]) -> None:
    tamper(site, "DELETE FROM audit")
    code, out = verify(site)
    assert code == 12
    assert "the audit trail records none" in out["problem"]


def test_plaintext_for_a_sealed_payload_and_a_flipped_byte_fail(site: Site) -> None:
    async def run() -> str:
        async with site.engine(sealed) as engine:
            handle = await engine.start(sealed, {"email": "jo@example.test"})
            await engine.settle()
            return handle.run_id

    run_id = asyncio.run(run())
    assert verify(site)[0] == 0
    tamper(site, "UPDATE steps SET output_json=? WHERE run_id=?", ('{"tier":"gold"}', run_id))
    code, out = verify(site)
    assert code == 12
    assert any("output is in clear" in p for p in out["problems"]), out["problems"]

    def flip(text: str) -> str:
        """One bit of the ciphertext changed, the envelope otherwise intact."""
        envelope = json.loads(text)
        raw = bytearray(base64.b64decode(envelope["ct"]))
        raw[len(raw) // 2] ^= 0x01
        envelope["ct"] = base64.b64encode(bytes(raw)).decode()
        return json.dumps(envelope, separators=(",", ":"))

    async def sealed_input() -> str:
        async with site.store() as store:
            run = await store.inner.get_run(run_id)
            assert run is not None
            return run.input_json

    tamper(site, "UPDATE runs SET input_json=? WHERE id=?", (flip(asyncio.run(sealed_input())),
                                                             run_id))  # fmt: skip
    code, out = verify(site)
    assert any(f"run {run_id}'s input does not open" in p for p in out["problems"]), out


def test_the_subject_index_and_failed_attempts_are_bound_too(site: Site) -> None:
    """Hiding a run from a subject's index would let it escape an erasure; a failed attempt
    deleted would hide a fault."""
    CALLS.clear()

    async def run() -> str:
        async with site.engine(retrying) as engine:
            handle = await engine.start(retrying, {"email": "jo@example.test"})
            await engine.settle()
            await site.clock.advance(1)
            await engine.settle()
            assert await handle.status() is bf.RunStatus.COMPLETED
            return handle.run_id

    run_id = asyncio.run(run())
    assert verify(site)[0] == 0
    tamper(site, "DELETE FROM attempts WHERE run_id=?", (run_id,))
    tamper(site, "DELETE FROM run_subjects WHERE run_id=?", (run_id,))
    code, out = verify(site)
    assert code == 12
    problems = " | ".join(out["problems"])
    assert f"the failed attempts of run {run_id} were edited, inserted or deleted" in problems
    assert f"run {run_id} was removed from the index of subject s:" in problems
