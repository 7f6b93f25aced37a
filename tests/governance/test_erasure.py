"""The done-when of data-subject erasure, end to end: a real Engine on a sealed SQLite store.

After ``erase``, no readable personal data of the subject remains in the database files (the
raw bytes of the .db and its -wal are searched), the other subject's runs still open, and the
audit chain still verifies.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.core import audit
from batonflow.governance._keys import KeyFile
from batonflow.governance._subjects import SealedStore, erase_subject, export_subject, wrap_store
from batonflow.store import AuditRecord, SQLiteStore
from batonflow.store._audit import GENESIS, audit_hash
from batonflow.testing import FakeClock

JANE = {"from": "Jane.Doe@Example.com", "name": "Jane Doe", "body": "arrears at 14 Larch Close"}
JOHN = {"from": "john.smith@example.org", "name": "John Smith", "body": "card stolen in Leeds"}
#: What must never be readable in the files: Jane's address (as typed and as folded), her name,
#: a phrase from her enquiry, and what her steps, events and audit entries said about her.
JANE_SECRETS = [
    b"Jane.Doe@Example.com", b"jane.doe@example.com", b"Jane Doe", b"Larch Close",
    b"Dear Jane", b"callback 0113", b"classified: arrears",
]  # fmt: skip
JOHN_SECRETS = [b"john.smith@example.org", b"John Smith", b"card stolen in Leeds"]


@bf.step
def classify(body: str) -> str:
    audit("model.call", {"prompt": f"classify: {body}"})  # an audit entry raised by a step
    return f"classified: {body.split()[0]}"


@bf.step
def draft_reply(name: str) -> str:
    return f"Dear {name.split()[0]}, we will call you back."


@bf.workflow(subjects=lambda enquiry: [enquiry["from"]])
async def enquiry(ctx: bf.Context, enquiry: dict[str, Any]) -> dict[str, Any]:
    label = await ctx.step(classify, enquiry["body"])
    callback = await ctx.wait_for_event("callback", timeout=86400)
    reply = await ctx.step(draft_reply, enquiry["name"])
    return {"label": label, "reply": reply, "callback": callback}


@bf.workflow
async def anonymous(ctx: bf.Context, text: str) -> str:
    return text.upper()


def file_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


def verify_chain(records: list[AuditRecord]) -> None:
    prev, seq = GENESIS, 0
    for r in records:
        assert (r.seq, r.prev_hash) == (seq + 1, prev), r
        assert r.hash == audit_hash(prev, r.seq, r.at, r.kind, r.run_id, r.step_id, r.actor,
                                    r.subjects, r.data_json)  # fmt: skip
        prev, seq = r.hash, r.seq


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
async def engine(db: Path, clock: FakeClock) -> AsyncIterator[bf.Engine]:
    store = wrap_store(SQLiteStore(db), now=clock.now)
    async with bf.Engine(store, clock=clock, workflows=[enquiry, anonymous]) as engine:
        yield engine


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def start_both(engine: bf.Engine) -> tuple[str, str, str]:
    jane = await engine.start(enquiry, JANE)
    john = await engine.start(enquiry, JOHN)
    other = await engine.start(anonymous, "no subjects here")
    await engine.settle()
    await engine.send_event("callback", {"note": "callback 0113 496 0000"}, run_id=jane.run_id)
    await engine.send_event("callback", {"note": "after 5pm"}, run_id=john.run_id)
    await engine.settle()
    return jane.run_id, john.run_id, other.run_id


async def test_erasure_leaves_nothing_readable_and_the_chain_verifies(
    engine: bf.Engine, db: Path, clock: FakeClock
) -> None:
    store = engine.store
    assert isinstance(store, SealedStore)
    jane_id, john_id, other_id = await start_both(engine)
    jane_run = await engine.get_run(jane_id)
    assert jane_run.status is bf.RunStatus.COMPLETED
    # Through the sealed store everything reads back in clear...
    assert json.loads(jane_run.input_json) == JANE
    assert json.loads(jane_run.output_json or "")["reply"] == "Dear Jane, we will call you back."
    jane_ref = await store.keys.ref("jane.doe@example.com")
    assert jane_run.subjects == (jane_ref,)
    assert [r.id for r in await store.list_runs(subject="JANE.DOE@EXAMPLE.COM")] == [jane_id]
    assert [r.id for r in await store.list_runs(subject=jane_ref)] == [jane_id]
    # ...but the files never held any of it in clear, not even before the erasure.
    raw = file_bytes(db)
    for secret in JANE_SECRETS + JOHN_SECRETS:
        assert secret not in raw, secret
    assert b"NO SUBJECTS HERE" in raw  # a run without subjects is stored as it always was
    key = await store.keys.get(jane_ref)
    assert key is not None

    clock_before = clock.now()
    result = await erase_subject(store, "JANE.DOE@example.com ", actor="dpo@bank", now=clock.now())
    assert (result.outcome, result.runs, result.actor) == ("erased", (jane_id,), "dpo@bank")
    assert result.erased_at == clock_before

    raw = file_bytes(db)
    for secret in JANE_SECRETS:
        assert secret not in raw, secret
    # The key itself has left both files (secure_delete zeroes the row; compact empties the WAL).
    assert base64.b64encode(key.key) not in raw
    assert key.key not in raw
    # Jane's run is still listed, its payloads read as erased, never an error.
    gone = await engine.get_run(jane_id)
    assert json.loads(gone.input_json) == {"$erased": True, "subjects": [jane_ref]}
    steps = await store.load_steps(jane_id)
    assert steps
    assert all(json.loads(s.output_json)["$erased"] for s in steps if s.output_json is not None)
    events = await store.list_events(run_id=jane_id)
    assert all(json.loads(e.payload_json)["$erased"] for e in events)
    # John's run and the run without subjects are intact.
    john_run = await engine.get_run(john_id)
    assert json.loads(john_run.input_json) == JOHN
    assert json.loads(john_run.output_json or "")["callback"] == {"note": "after 5pm"}
    assert (await engine.get_run(other_id)).output_json == '"NO SUBJECTS HERE"'
    # The audit chain, including the entries written before the erasure, still verifies.
    records = await store.read_audit(limit=100_000)
    verify_chain(records)
    erased = [r for r in records if r.kind == "subject.erased"]
    assert len(erased) == 1
    assert erased[0].actor == "dpo@bank"
    assert erased[0].subjects == (jane_ref,)
    # Every audit entry about Jane's run carries her reference.
    assert all(jane_ref in r.subjects for r in records if r.run_id == jane_id)


async def test_erasure_is_idempotent_and_clear_about_unknown_subjects(
    engine: bf.Engine, clock: FakeClock
) -> None:
    store = engine.store
    assert isinstance(store, SealedStore)
    jane_id, _, _ = await start_both(engine)
    first = await erase_subject(store, "jane.doe@example.com", actor="dpo", now=clock.now())
    await clock.advance(60)
    again = await erase_subject(store, "jane.doe@example.com", actor="dpo2", now=clock.now())
    assert again.outcome == "already-erased"
    assert (again.erased_at, again.actor, again.runs) == (first.erased_at, "dpo", (jane_id,))
    nobody = await erase_subject(store, "nobody@example.com", actor="dpo", now=clock.now())
    assert (nobody.outcome, nobody.runs) == ("unknown", ())
    kinds = [r.kind for r in await store.read_audit(limit=100_000)]
    assert kinds.count("subject.erased") == 1


async def test_erasure_cancels_unfinished_runs_and_a_later_run_gets_a_new_key(
    engine: bf.Engine, clock: FakeClock, db: Path
) -> None:
    store = engine.store
    assert isinstance(store, SealedStore)
    waiting = await engine.start(enquiry, JANE)
    await engine.settle()
    assert (await engine.get_run(waiting.run_id)).status is bf.RunStatus.WAITING
    result = await erase_subject(store, JANE["from"], actor="dpo", now=clock.now())
    assert result.cancelled == (waiting.run_id,)
    assert (await engine.get_run(waiting.run_id)).status is bf.RunStatus.CANCELLED
    # She writes in again: the new run is sealed under a new key and reads back.
    again = await engine.start(enquiry, {**JANE, "body": "new question about Larch Close"})
    await engine.settle()
    assert json.loads((await engine.get_run(again.run_id)).input_json)["name"] == "Jane Doe"
    assert json.loads((await engine.get_run(waiting.run_id)).input_json)["$erased"] is True
    assert b"Larch Close" not in file_bytes(db)


async def test_export_holds_everything_about_the_subject_and_is_audited(
    engine: bf.Engine, clock: FakeClock
) -> None:
    store = engine.store
    assert isinstance(store, SealedStore)
    jane_id, john_id, _ = await start_both(engine)
    doc = await export_subject(store, "jane.doe@example.com", actor="dpo", now=clock.now())
    assert doc["subject"] == await store.keys.ref(JANE["from"])
    assert doc["erased"] is None
    assert [r["id"] for r in doc["runs"]] == [jane_id]
    run = doc["runs"][0]
    assert run["input"] == JANE
    assert run["status"] == "completed"
    assert run["output"]["label"] == "classified: arrears"
    assert [s["name"] for s in run["steps"]][:1] == ["classify"]
    assert any(s["output"] == {"note": "callback 0113 496 0000"} for s in run["steps"])
    assert run["events"][0]["payload"] == {"note": "callback 0113 496 0000"}
    audit = {e["kind"]: e for e in run["audit"]}
    assert audit["run.created"]["data"]["input"] == JANE  # the audit copy, opened
    assert audit["model.call"]["data"] == {"prompt": "classify: arrears at 14 Larch Close"}
    text = json.dumps(doc)
    assert "john" not in text.lower()
    assert john_id not in text
    exported = [r for r in await store.read_audit(limit=100_000) if r.kind == "subject.exported"]
    assert len(exported) == 1
    assert exported[0].actor == "dpo"
    assert "jane" not in exported[0].data_json.lower()
    # After erasure the export still lists the run, with its payloads marked erased.
    await erase_subject(store, JANE["from"], actor="dpo", now=clock.now())
    after = await export_subject(store, JANE["from"], actor="dpo", now=clock.now())
    assert after["erased"]["actor"] == "dpo"
    assert after["runs"][0]["input"]["$erased"] is True
    assert "Larch" not in json.dumps(after)


# -- the command line -------------------------------------------------------------------------


@pytest.fixture
def cli_app() -> Any:
    import typer

    from batonflow.cli._subjects import subject_app

    app = typer.Typer()
    app.add_typer(subject_app, name="subject")
    app.command("noop")(lambda: None)  # a second command keeps `subject` a sub-command
    return app


async def prepare(db: Path) -> tuple[str, str]:
    clock = FakeClock()
    # keys where the command line finds them: the key file beside the database
    store = wrap_store(SQLiteStore(db), now=clock.now, key_provider=KeyFile(f"{db}.key"))
    async with bf.Engine(store, clock=clock, workflows=[enquiry, anonymous]) as engine:
        jane_id, john_id, _ = await start_both(engine)
    return jane_id, john_id


async def read_trail(db: Path) -> list[AuditRecord]:
    store = SQLiteStore(db)
    await store.open()
    try:
        return await store.read_audit(limit=100_000)
    finally:
        await store.close()


def test_subject_commands(
    db: Path, tmp_path: Path, cli_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    monkeypatch.delenv("BATONFLOW_TOKEN", raising=False)
    jane_id, john_id = asyncio.run(prepare(db))
    runner = CliRunner()

    out = tmp_path / "jane.json"
    result = runner.invoke(
        cli_app, ["subject", "export", JANE["from"], "--out", str(out), "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    assert "exported 1 run about s:" in result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    exported = json.loads(out.read_text())
    assert exported["runs"][0]["input"] == JANE

    result = runner.invoke(cli_app, ["subject", "export", "nobody@example.com", "--db", str(db)])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["runs"] == []
    assert "no data is held about that subject" in result.stderr

    # Erasing without --yes and without a terminal refuses, changing nothing.
    result = runner.invoke(cli_app, ["subject", "erase", JANE["from"], "--db", str(db)])
    assert result.exit_code == 2
    assert "pass --yes" in result.stderr

    result = runner.invoke(
        cli_app, ["subject", "erase", JANE["from"], "--yes", "--json", "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["outcome"], report["runs"]) == ("erased", [jane_id])
    assert report["actor"].startswith("local:")

    result = runner.invoke(
        cli_app, ["subject", "erase", JANE["from"].upper(), "--yes", "--db", str(db)]
    )
    assert result.exit_code == 0
    assert "already erased at" in result.stdout
    result = runner.invoke(
        cli_app, ["subject", "erase", "nobody@example.com", "--yes", "--db", str(db)]
    )
    assert result.exit_code == 0
    assert "no data is held about that subject" in result.stdout
    result = runner.invoke(cli_app, ["subject", "erase", "  ", "--yes", "--db", str(db)])
    assert result.exit_code == 2
    assert "must not be empty" in result.stderr

    raw = file_bytes(db)
    assert not [s for s in JANE_SECRETS if s in raw]
    result = runner.invoke(cli_app, ["subject", "export", JOHN["from"], "--db", str(db)])
    johns = json.loads(result.stdout)["runs"]
    assert [(r["id"], r["input"]) for r in johns] == [(john_id, JOHN)]
    records = asyncio.run(read_trail(db))
    verify_chain(records)
    kinds = [r.kind for r in records if r.kind.startswith(("subject.", "keys."))]
    assert kinds == ["keys.created", "subject.exported", "subject.exported",
                     "subject.erased", "subject.exported"]  # fmt: skip
    # the keys live beside the database, readable by their owner only, never inside it
    assert (db.parent / f"{db.name}.key").stat().st_mode & 0o777 == 0o600


# -- the same on PostgreSQL -------------------------------------------------------------------


def pg_dump_text(url: str) -> str:
    """Every row of every table of the test's schema, as text (what a database dump holds)."""
    import psycopg

    with psycopg.connect(url) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
            )
        ]
        return "\n".join(
            str(row) for t in tables for row in conn.execute(f'SELECT t::text FROM "{t}" t')
        )


async def test_erasure_on_postgres(pg_url: str, clock: FakeClock) -> None:
    store = wrap_store(bf.open_store(pg_url), now=clock.now)
    async with bf.Engine(store, clock=clock, workflows=[enquiry, anonymous]) as engine:
        jane_id, john_id, _ = await start_both(engine)
        text = pg_dump_text(pg_url)
        assert "NO SUBJECTS HERE" in text  # the dump sees the tables
        for secret in JANE_SECRETS + JOHN_SECRETS:
            assert secret.decode() not in text, secret
        result = await erase_subject(store, JANE["from"], actor="dpo", now=clock.now())
        assert (result.outcome, result.runs) == ("erased", (jane_id,))
        jane_ref = await store.keys.ref(JANE["from"])
        assert jane_ref not in [k for k, _ in await store.list_records("subject-key")]
        assert json.loads((await engine.get_run(jane_id)).input_json)["$erased"] is True
        assert json.loads((await engine.get_run(john_id)).input_json) == JOHN
        verify_chain(await store.read_audit(limit=100_000))


async def test_with_a_separate_key_store_erasure_reaches_earlier_backups(
    tmp_path: Path, clock: FakeClock
) -> None:
    import shutil

    db, keys_db, backup = tmp_path / "runs.db", tmp_path / "keys.db", tmp_path / "backup.db"
    store = wrap_store(SQLiteStore(db), now=clock.now, key_store=SQLiteStore(keys_db))
    async with bf.Engine(store, clock=clock, workflows=[enquiry, anonymous]) as engine:
        jane_id, john_id, _ = await start_both(engine)
        assert await store.inner.list_records("subject-key") == []  # no key in the runs' db
        await store.inner.compact()  # type: ignore[attr-defined]
        shutil.copyfile(db, backup)  # last night's backup of the runs' database
        result = await erase_subject(store, JANE["from"], actor="dpo", now=clock.now())
        assert result.outcome == "erased"
        verify_chain(await store.read_audit(limit=100_000))
        kinds = [r.kind for r in await store.read_audit(limit=100_000)]
        assert kinds.count("subject.erased") == kinds.count("subject.secret_created") == 1
    # Restoring the backup (with the live key store) does not bring Jane's data back.
    restored = wrap_store(SQLiteStore(backup), now=clock.now, key_store=SQLiteStore(keys_db))
    await restored.open()
    try:
        jane = await restored.get_run(jane_id)
        assert jane is not None
        jane_ref = await restored.keys.ref(JANE["from"])
        assert json.loads(jane.input_json) == {"$erased": True, "subjects": [jane_ref]}
        john = await restored.get_run(john_id)
        assert john is not None
        assert json.loads(john.input_json) == JOHN
    finally:
        await restored.close()
