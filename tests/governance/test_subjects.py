"""Subject references, per-subject keys and sealed envelopes, on a real SQLite store."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import batonflow as bf
from batonflow.errors import ConfigError, StoreError
from batonflow.governance._sealed import (
    SubjectKeys,
    erased_marker,
    is_ref,
    normalise_subject,
    open_envelope,
    seal_payload,
)
from batonflow.governance._subjects import SealedStore, erase_subject, wrap_store
from batonflow.store import SQLiteStore
from batonflow.testing import FakeClock, StoreConformance


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "runs.db")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def keys(store: SQLiteStore) -> SubjectKeys:
    return SubjectKeys(store, FakeClock().now)


def test_normalise_subject_folds_email_case_and_strips() -> None:
    assert normalise_subject("  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    assert normalise_subject(" Client-42 ") == "Client-42"  # ids that are not e-mail keep case
    with pytest.raises(ConfigError, match="must not be empty"):
        normalise_subject("   ")
    with pytest.raises(ConfigError, match="must be a string, got int"):
        normalise_subject(42)  # type: ignore[arg-type]


async def test_refs_are_keyed_hashes_never_the_id(keys: SubjectKeys, store: SQLiteStore) -> None:
    ref = await keys.ref("Jane@Example.com")
    assert is_ref(ref)
    assert ref == await keys.ref("jane@example.com ")
    assert ref != await keys.ref("john@example.com")
    assert await keys.ref(ref) == ref  # a reference passes through
    # The secret is a stored record, created once: another SubjectKeys agrees.
    again = SubjectKeys(store, FakeClock().now)
    assert await again.ref("jane@example.com") == ref
    # ...and a fresh database (another secret) gives another reference for the same person.
    assert "jane" not in json.dumps(await store.list_records("config"))


async def test_refs_differ_between_databases(tmp_path: Path, keys: SubjectKeys) -> None:
    other = SQLiteStore(tmp_path / "other.db")
    await other.open()
    try:
        theirs = await SubjectKeys(other, FakeClock().now).ref("jane@example.com")
    finally:
        await other.close()
    assert theirs != await keys.ref("jane@example.com")


async def test_seal_and_open_round_trip(keys: SubjectKeys) -> None:
    ref = await keys.ref("jane@example.com")
    await keys.ensure(ref)
    plain = json.dumps({"from": "jane@example.com", "body": "my late payment"})
    sealed = await keys.seal(plain, [ref], "run-1")
    assert "jane" not in sealed
    assert "payment" not in sealed
    envelope = json.loads(sealed)
    assert envelope["$sealed"] == 1
    assert envelope["subjects"] == [ref]
    assert await keys.open(sealed, "run-1") == plain
    assert await keys.seal(sealed, [ref], "run-1") == sealed  # never sealed twice
    nothing: str | None = None
    assert await keys.seal(nothing, [ref], "run-1") is None
    assert await keys.seal(plain, [], "run-1") == plain  # no subjects: as is
    assert await keys.open(plain, "run-1") == plain  # not sealed: as is


async def test_tampered_ciphertext_or_binding_is_detected(keys: SubjectKeys) -> None:
    ref = await keys.ref("jane@example.com")
    await keys.ensure(ref)
    sealed = await keys.seal('{"amount": 100}', [ref], "run-1")
    envelope = json.loads(sealed)
    ct = bytearray(base64.b64decode(envelope["ct"]))
    ct[0] ^= 1
    envelope["ct"] = base64.b64encode(bytes(ct)).decode()
    with pytest.raises(StoreError, match="failed authentication"):
        await keys.open(json.dumps(envelope, separators=(",", ":")), "run-1")
    # The same envelope moved to another run does not open either (the run id is bound)...
    with pytest.raises(StoreError, match="sealed payload of run 'run-1' was found in run 'run-2'"):
        await keys.open(sealed, "run-2")
    # ...not even with its binding rewritten to match.
    moved = json.loads(sealed) | {"run": "run-2"}
    with pytest.raises(StoreError, match="failed authentication"):
        await keys.open(json.dumps(moved, separators=(",", ":")), "run-2")
    # A child's result copied into its parent's journal opens there (child ids extend it).
    child = await keys.seal('{"child": 1}', [ref], "run-1.3")
    assert await keys.open(child, "run-1") == '{"child": 1}'
    with pytest.raises(StoreError, match=r"was found in run 'run-1\.3\.1'"):
        await keys.open(child, "run-1.3.1")
    with pytest.raises(StoreError, match="malformed sealed payload"):
        await keys.open('{"$sealed":1,"subjects":[]}', "run-1")


async def test_two_subjects_payload_is_unreadable_after_either_erasure(
    keys: SubjectKeys, store: SQLiteStore
) -> None:
    jane, john = await keys.ref("jane@example.com"), await keys.ref("john@example.com")
    for ref in (jane, john):
        await keys.ensure(ref)
    plain = '{"meeting": "jane and john"}'
    sealed = await keys.seal(plain, [john, jane], "run-1")
    assert json.loads(sealed)["subjects"] == sorted([jane, john])
    assert await keys.open(sealed, "run-1") == plain
    await store.put_record("subject-key", john, None, 0.0)
    assert await keys.open(sealed, "run-1") == erased_marker(sorted([jane, john]))
    assert json.loads(await keys.open(sealed, "run-1")) == {
        "$erased": True,
        "subjects": sorted([jane, john]),
    }
    # Jane's own single-subject data is untouched by John's erasure.
    hers = await keys.seal('{"only": "jane"}', [jane], "run-2")
    assert await keys.open(hers, "run-2") == '{"only": "jane"}'


async def test_a_new_key_after_erasure_does_not_open_old_envelopes(
    keys: SubjectKeys, store: SQLiteStore
) -> None:
    ref = await keys.ref("jane@example.com")
    old = await keys.ensure(ref)
    sealed = await keys.seal('{"x": 1}', [ref], "run-1")
    await store.put_record("subject-key", ref, None, 0.0)
    new = await keys.ensure(ref)  # the person comes back: a new run, a new key
    assert new.kid != old.kid
    assert new.key != old.key
    assert json.loads(await keys.open(sealed, "run-1"))["$erased"] is True


async def test_sealing_for_an_erased_subject_stores_the_marker_not_the_data(
    keys: SubjectKeys,
) -> None:
    ref = await keys.ref("jane@example.com")  # no key: erased (or never made)
    out = await keys.seal('{"late": "data about jane"}', [ref], "run-1")
    assert out == erased_marker([ref])


def test_envelope_functions_need_every_key() -> None:
    from batonflow.governance._sealed import SubjectKey

    a = SubjectKey("s:" + "a" * 64, "k1", bytes(32))
    b = SubjectKey("s:" + "b" * 64, "k2", bytes(range(32)))
    sealed = seal_payload('"hello"', [b, a], "r")
    assert open_envelope(sealed, [a, b], "r") == '"hello"'
    assert json.loads(open_envelope(sealed, [a, None], "r"))["$erased"] is True
    wrong = SubjectKey(b.ref, "k2", bytes(32))  # same id, other bytes: tampering, not erasure
    with pytest.raises(StoreError):
        open_envelope(sealed, [a, wrong], "r")


# -- the sealed store under a real engine: what else carries personal data ----------------------


SECRET = "Ms Priya Raman of 7 Quarry Lane"


@bf.step
def flaky(text: str, fails: list[int]) -> str:
    if not fails:
        fails.append(1)
        raise ValueError(f"cannot parse {text}")  # the error message carries personal data
    return text.upper()


@bf.workflow
async def helper(ctx: bf.Context, text: str) -> str:
    return f"child saw {text}"


@bf.workflow(subjects=lambda x: x["email"])
async def parent(ctx: bf.Context, x: dict[str, str]) -> dict[str, object]:
    child = await ctx.child(helper, x["text"])  # the child has no subjects of its own
    reply = await ctx.wait_for_event("reply", key=x["ticket"], detail={"about": x["text"]})
    return {"child": child, "reply": reply}


@pytest.fixture
async def sealed(tmp_path: Path) -> AsyncIterator[tuple[bf.Engine, SealedStore, Path]]:
    clock = FakeClock()
    db = tmp_path / "runs.db"
    store = wrap_store(SQLiteStore(db), now=clock.now)
    async with bf.Engine(store, clock=clock, workflows=[parent, helper]) as engine:
        yield engine, store, db


def raw_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


async def test_children_keyed_events_and_wait_details_are_sealed(
    sealed: tuple[bf.Engine, SealedStore, Path],
) -> None:
    engine, store, db = sealed
    handle = await engine.start(parent, {"email": "p@example.com", "text": SECRET, "ticket": "T-1"})
    await engine.settle()
    run = await engine.get_run(handle.run_id)
    assert run.status is bf.RunStatus.WAITING
    (child,) = await store.list_runs(parent_id=run.id)
    assert child.subjects == run.subjects  # a child concerns its parent's subjects
    assert json.loads(child.output_json or "") == f"child saw {SECRET}"
    (wait,) = await store.list_waits("reply")
    assert json.loads(wait.input_json or "") == {"about": SECRET}  # opened for publishers
    # A correlation-keyed event sent while a subject run waits on that key is sealed for it.
    await engine.send_event("reply", {"text": f"answer for {SECRET}"}, key="T-1")
    await engine.settle()
    done = await engine.get_run(run.id)
    assert json.loads(done.output_json or "")["reply"] == {"text": f"answer for {SECRET}"}
    assert SECRET.encode() not in raw_bytes(db)
    await erase_subject(store, "P@example.com", actor="dpo", now=0.0)
    assert json.loads((await engine.get_run(child.id)).input_json)["$erased"] is True
    assert json.loads((await engine.get_run(run.id)).output_json or "")["$erased"] is True


async def test_a_keyed_event_sent_before_the_wait_is_sealed_in_the_journal(
    sealed: tuple[bf.Engine, SealedStore, Path],
) -> None:
    engine, store, _ = sealed
    await engine.send_event("reply", {"text": "early answer"}, key="T-2")  # nobody waits yet
    (event,) = await store.inner.list_events()
    assert event.payload_json == '{"text":"early answer"}'  # no subject known when it came
    handle = await engine.start(parent, {"email": "q@example.com", "text": "x", "ticket": "T-2"})
    await engine.settle()
    out = json.loads((await engine.get_run(handle.run_id)).output_json or "")
    assert out["reply"] == {"text": "early answer"}
    consumed = [s for s in await store.inner.load_steps(handle.run_id) if s.name == "reply"]
    assert consumed[0].output_json is not None
    assert consumed[0].output_json.startswith('{"$sealed":1')  # the journal copy is sealed


async def test_failed_attempts_are_sealed_and_runs_resume_after_a_restart(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    db = tmp_path / "runs.db"
    fails: list[int] = []

    @bf.workflow(name="retrying", subjects=lambda x: x["email"])
    async def retrying(ctx: bf.Context, x: dict[str, str]) -> object:
        text = await ctx.step(flaky, x["text"], fails)
        return {"text": text, "reply": await ctx.wait_for_event("reply")}

    async with bf.Engine(wrap_store(SQLiteStore(db), now=clock.now), clock=clock) as engine:
        handle = await engine.start(retrying, {"email": "r@example.com", "text": SECRET})
        await engine.settle()
        await clock.advance(60)
        await engine.settle()
        assert (await engine.get_run(handle.run_id)).status is bf.RunStatus.WAITING
        (attempt,) = await engine.store.load_attempts(handle.run_id)
        assert SECRET in attempt.error_json  # opened through the sealed store
    assert SECRET.encode() not in raw_bytes(db)
    # A new engine (another process, say) replays the sealed journal and carries on.
    store = wrap_store(SQLiteStore(db), now=clock.now)
    async with bf.Engine(store, clock=clock, workflows=[retrying]) as engine:
        await engine.send_event("reply", "thanks", run_id=handle.run_id)
        await engine.settle()
        result = await engine.handle(handle.run_id).result()
    assert result == {"text": SECRET.upper(), "reply": "thanks"}
    assert fails == [1]  # the step that succeeded was not run again


async def test_a_tampered_stored_payload_is_an_error_not_garbage(
    sealed: tuple[bf.Engine, SealedStore, Path],
) -> None:
    engine, store, db = sealed
    handle = await engine.start(parent, {"email": "t@example.com", "text": "x", "ticket": "T-3"})
    await engine.settle()
    other = await engine.start(parent, {"email": "u@example.com", "text": "y", "ticket": "T-4"})
    await engine.settle()
    import sqlite3

    conn = sqlite3.connect(db)
    with conn:  # move one run's sealed input onto another run: the run id is bound
        (text,) = conn.execute("SELECT input_json FROM runs WHERE id=?", (other.run_id,)).fetchone()
        conn.execute("UPDATE runs SET input_json=? WHERE id=?", (text, handle.run_id))
    conn.close()
    with pytest.raises(StoreError, match="was found in run"):
        await store.get_run(handle.run_id)


async def test_racing_first_runs_of_a_subject_share_one_key(tmp_path: Path) -> None:
    import asyncio

    stores = [SQLiteStore(tmp_path / "runs.db") for _ in range(3)]  # three "processes"
    for s in stores:
        await s.open()
    try:
        keyrings = [SubjectKeys(s, FakeClock().now) for s in stores]
        refs = await asyncio.gather(*(k.ref("jane@example.com") for k in keyrings))
        assert len(set(refs)) == 1  # one store secret, whoever made it
        keys = await asyncio.gather(*(k.ensure(refs[0]) for k in keyrings for _ in range(3)))
        assert len({(k.kid, k.key) for k in keys}) == 1
    finally:
        for s in stores:
            await s.close()


@bf.step
def noted(text: str) -> str:
    from batonflow.core import audit

    audit("model.call", {"model": "m", "input_tokens": 5})
    audit("approval.decision", {"comment": f"ok for {text}"})
    return "done"


@bf.workflow(name="noting", subjects=lambda x: x["email"])
async def noting(ctx: bf.Context, x: dict[str, str]) -> str:
    return await ctx.step(noted, x["text"])


async def test_audit_entries_of_clear_kinds_stay_readable(tmp_path: Path) -> None:
    from batonflow.store import WakeUps

    clock = FakeClock()
    store = wrap_store(SQLiteStore(tmp_path / "runs.db"), now=clock.now, clear_kinds={"model.call"})
    assert wrap_store(store) is store
    assert not isinstance(store, WakeUps)  # the SQLite store has no wake-ups: neither has this
    async with bf.Engine(store, clock=clock, workflows=[noting]) as engine:
        handle = await engine.start(noting, {"email": "c@example.com", "text": SECRET})
        await engine.settle()
        ref = await store.keys.ref("c@example.com")
        trail = {r.kind: r for r in await store.read_audit(run_id=handle.run_id)}
        decision = trail["approval.decision"]
        opened = await store.open_json(decision.data_json, handle.run_id)
    assert opened == {"comment": f"ok for {SECRET}"}
    assert json.loads(trail["model.call"].data_json) == {"model": "m", "input_tokens": 5}
    assert trail["model.call"].subjects == (ref,)
    assert trail["approval.decision"].data_json.startswith('{"$sealed":1')
    assert trail["approval.decision"].subjects == (ref,)


class CountingStore(SQLiteStore):
    """Counts reads of subject keys (to show each store call reads a key once)."""

    key_reads = 0

    async def get_record(self, kind: str, key: str) -> str | None:
        if kind == "subject-key":
            self.key_reads += 1
        return await super().get_record(kind, key)


async def test_one_store_call_reads_each_key_once(tmp_path: Path) -> None:
    clock = FakeClock()
    inner = CountingStore(tmp_path / "runs.db")
    store = wrap_store(inner, now=clock.now)
    async with bf.Engine(store, clock=clock, workflows=[noting]) as engine:
        handle = await engine.start(noting, {"email": "c@example.com", "text": SECRET})
        await engine.settle()
        inner.key_reads = 0
        run = await store.get_run(handle.run_id)  # input and output: two envelopes
        assert run is not None
        assert json.loads(run.output_json or "") == "done"
        assert inner.key_reads == 1
        steps = await store.load_steps(handle.run_id)
        assert json.loads(steps[0].input_json or "") == [SECRET]
        assert inner.key_reads == 2


async def test_a_keyed_event_naming_its_subjects_is_sealed_before_anyone_waits(
    sealed: tuple[bf.Engine, SealedStore, Path],
) -> None:
    engine, store, db = sealed
    event = await store.deliver_event(
        "reply", json.dumps({"text": SECRET}), 0.0, key="T-9", subjects=["P@example.com"]
    )
    assert json.loads(event.payload_json) == {"text": SECRET}
    assert SECRET.encode() not in raw_bytes(db)
    handle = await engine.start(parent, {"email": "p@example.com", "text": "x", "ticket": "T-9"})
    await engine.settle()
    out = json.loads((await engine.get_run(handle.run_id)).output_json or "")
    assert out["reply"] == {"text": SECRET}
    await erase_subject(store, "p@example.com", actor="dpo", now=0.0)
    (stored,) = await store.list_events()
    assert json.loads(stored.payload_json)["$erased"] is True


class TestSealedStoreConformance(StoreConformance):
    """The sealed store is a Store: the whole conformance suite, through the wrapper."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SealedStore]:
        sealed = wrap_store(SQLiteStore(tmp_path / "conformance.db"), now=FakeClock().now)
        await sealed.open()
        yield sealed
        await sealed.close()
