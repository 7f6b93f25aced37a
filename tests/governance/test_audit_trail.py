"""The audit trail: what a run leaves on it, and tampering that `audit verify` must catch.

The tamper tests edit the SQLite file directly, as someone with access to the database could.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import batonflow as bf
from batonflow.cli import app
from batonflow.governance import _audit
from batonflow.store import AuditRecord
from batonflow.store._audit import audit_hash, verify_records
from batonflow.testing import FakeClock

runner = CliRunner()


@bf.step
def look_up(client: str) -> dict[str, Any]:
    bf.core.audit("egress.call", {"host": "crm.example.test", "status": 200})
    return {"client": client, "tier": "gold"}


@bf.workflow
async def onboarding(ctx: bf.Context, data: dict[str, Any]) -> str:
    record = await ctx.step(look_up, data["client"])
    await ctx.sleep(60)
    return f"welcome {record['client']}"


async def _run_some(db: Path, clock: FakeClock, runs: int = 2) -> list[str]:
    ids = []
    async with bf.Engine(db, clock=clock) as engine:
        for i in range(runs):
            handle = await engine.start(onboarding, {"client": f"c{i}"}, started_by="ann")
            ids.append(handle.run_id)
        await engine.settle()
        await clock.advance(61)
        for run_id in ids:
            await engine.handle(run_id).result()
    return ids


def _verify(db: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--db", str(db), *extra])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def _sql(db: Path, *statements: str, params: tuple[Any, ...] = ()) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for statement in statements:
            conn.execute(statement, params if "?" in statement else ())
    conn.close()


def _row(db: Path, seq: int) -> tuple[Any, ...]:
    conn = sqlite3.connect(db)
    row = conn.execute("SELECT * FROM audit WHERE seq=?", (seq,)).fetchone()
    conn.close()
    assert row is not None
    return tuple(row)


@pytest.fixture
def trail(db_path: Path, clock: FakeClock) -> Path:
    asyncio.run(_run_some(db_path, clock))
    return db_path


async def test_a_run_leaves_its_whole_story_on_the_trail(db_path: Path, clock: FakeClock) -> None:
    (run_id,) = await _run_some(db_path, clock, runs=1)
    store = bf.SQLiteStore(db_path)
    await store.open()
    try:
        story = await store.read_audit(run_id=run_id)
    finally:
        await store.close()
    kinds = [r.kind for r in story]
    assert kinds == [
        "run.created", "step.completed", "egress.call", "step.sleeping", "run.parked",
        "step.completed", "run.completed",
    ]  # fmt: skip
    created = json.loads(story[0].data_json)
    assert created["input"] == {"client": "c0"}
    assert story[0].actor == "ann"
    assert json.loads(story[1].data_json)["output"] == {"client": "c0", "tier": "gold"}
    assert story[2].step_id == story[1].step_id == "1"
    assert json.loads(story[-1].data_json)["output"] == "welcome c0"


def test_an_untouched_trail_verifies(trail: Path) -> None:
    code, out = _verify(trail)
    assert code == 0, out
    assert "ok" in out


def test_an_edited_entry_is_named(trail: Path) -> None:
    _sql(trail, 'UPDATE audit SET data_json=\'{"output":"tampered"}\' WHERE seq=5')
    code, out = _verify(trail)
    assert code == 12
    assert "entry 5" in out
    assert "edited" in out


def test_an_edited_actor_is_named(trail: Path) -> None:
    _sql(trail, "UPDATE audit SET actor='mallory' WHERE seq=1")
    code, out = _verify(trail)
    assert code == 12
    assert "entry 1" in out


def test_a_deleted_entry_is_named(trail: Path) -> None:
    _sql(trail, "DELETE FROM audit WHERE seq=4")
    code, out = _verify(trail)
    assert code == 12
    assert "entry 4 is missing" in out


def test_an_inserted_entry_is_caught(trail: Path) -> None:
    """A forged entry with a correct hash of its own still breaks the link to the next one."""
    *_, prev_hash = _row(trail, 3)  # entry 3's hash: what a forged entry 4 must follow
    _sql(
        trail,
        "UPDATE audit SET seq=seq+1000 WHERE seq>3",
        "UPDATE audit SET seq=seq-999 WHERE seq>1000",
    )
    forged_hash = audit_hash(
        prev_hash, 4, 1.0, "approval.decision", None, None, "mallory", (), "{}"
    )
    _sql(
        trail,
        "INSERT INTO audit (seq, at, kind, run_id, step_id, actor, subjects, data_json,"
        " prev_hash, hash) VALUES (4, 1.0, 'approval.decision', NULL, NULL, 'mallory', NULL,"
        " '{}', ?, ?)",
        params=(prev_hash, forged_hash),
    )
    code, out = _verify(trail)
    assert code == 12
    assert "entry 5" in out
    assert "does not follow entry 4" in out


def test_reordered_entries_are_caught(trail: Path) -> None:
    _sql(
        trail,
        "UPDATE audit SET seq=-6 WHERE seq=6",
        "UPDATE audit SET seq=6 WHERE seq=7",
        "UPDATE audit SET seq=7 WHERE seq=-6",
    )
    code, out = _verify(trail)
    assert code == 12
    assert "entry 6" in out


def test_a_rewritten_chain_is_caught_by_a_signed_head(trail: Path, tmp_path: Path) -> None:
    """Someone who recomputes every hash after an edit passes the chain check, but not the
    signed head kept elsewhere."""
    key = tmp_path / "audit.key"
    assert runner.invoke(app, ["audit", "keygen", "--out", str(key)]).exit_code == 0
    head_file = tmp_path / "head.json"
    result = runner.invoke(
        app, ["audit", "sign", "--key", str(key), "--out", str(head_file), "--db", str(trail)]
    )
    assert result.exit_code == 0, result.output
    assert _verify(trail, "--head", str(head_file), "--public-key", f"{key}.pub")[0] == 0

    _rewrite_from(trail, 2, data_json='{"output":"rewritten"}')
    records = asyncio.run(_read_all(trail))

    assert verify_records(records)[2] is None  # the chain alone is consistent again
    code, out = _verify(trail, "--head", str(head_file))
    assert code == 12
    assert "signed head" in out


def test_a_truncated_tail_is_caught_by_a_signed_head(trail: Path, tmp_path: Path) -> None:
    key = tmp_path / "audit.key"
    _audit.generate_signing_key(key)
    head_file = tmp_path / "head.json"
    runner.invoke(
        app, ["audit", "sign", "--key", str(key), "--out", str(head_file), "--db", str(trail)]
    )
    _sql(trail, "DELETE FROM audit WHERE seq>=10")
    _sql(trail, "DELETE FROM records WHERE kind='audit-head'")  # the copy in the database too
    code, out = _verify(trail, "--head", str(head_file))
    assert code == 12
    assert "past the end of the trail" in out


def test_a_head_signed_by_another_key_is_refused(trail: Path, tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine.key", tmp_path / "theirs.key"
    _audit.generate_signing_key(mine)
    _audit.generate_signing_key(theirs)
    head_file = tmp_path / "head.json"
    runner.invoke(
        app, ["audit", "sign", "--key", str(theirs), "--out", str(head_file), "--db", str(trail)]
    )
    code, out = _verify(trail, "--head", str(head_file), "--public-key", f"{mine}.pub")
    assert code == 12
    assert "invalid signature" in out


async def _read_all(db: Path) -> list[AuditRecord]:
    store = bf.SQLiteStore(db)
    await store.open()
    try:
        return await store.read_audit()
    finally:
        await store.close()


def _rewrite_from(db: Path, seq: int, *, data_json: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE audit SET data_json=? WHERE seq=?", (data_json, seq))
        rows = conn.execute(
            "SELECT seq, at, kind, run_id, step_id, actor, subjects, data_json FROM audit"
            " WHERE seq>=? ORDER BY seq",
            (seq,),
        ).fetchall()
        (prev,) = conn.execute("SELECT hash FROM audit WHERE seq=?", (seq - 1,)).fetchone()
        for s, at, kind, run_id, step_id, actor, subjects, data in rows:
            subs = tuple(json.loads(subjects)) if subjects else ()
            digest = audit_hash(prev, s, at, kind, run_id, step_id, actor, subs, data)
            conn.execute("UPDATE audit SET prev_hash=?, hash=? WHERE seq=?", (prev, digest, s))
            prev = digest
    conn.close()


def test_export_writes_cloudevents_and_csv(trail: Path, tmp_path: Path) -> None:
    out = tmp_path / "trail.jsonl"
    result = runner.invoke(app, ["audit", "export", "--db", str(trail), "--out", str(out)])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert events[0]["specversion"] == "1.0"
    assert events[0]["type"] == "batonflow.audit.run.created"
    assert events[0]["data"]["input"] == {"client": "c0"}
    assert events[0]["batonflowactor"] == "ann"
    assert [e["batonflowseq"] for e in events] == list(range(1, len(events) + 1))
    run_id = events[0]["subject"]
    one = runner.invoke(app, ["audit", "export", "--db", str(trail), "--run", run_id])
    lines = [json.loads(line) for line in one.stdout.splitlines()]
    assert {e["subject"] for e in lines} == {run_id}
    assert lines[-1]["type"] == "batonflow.audit.run.completed"
    csv_out = runner.invoke(
        app, ["audit", "export", "--db", str(trail), "--format", "csv", "--workflow", "onboarding"]
    )
    rows = csv_out.stdout.splitlines()
    assert rows[0].startswith("seq,time,kind,run_id")
    # the first export recorded itself (before it read): who read the trail, and how much
    assert events[-1]["type"] == "batonflow.audit.data.read"
    assert events[-1]["data"]["what"] == "audit export"
    assert events[-1]["batonflowactor"].startswith("local:")
    assert len(rows) == len(events)  # the header; not the export's own entry (no workflow)
    none = runner.invoke(
        app, ["audit", "export", "--db", str(trail), "--workflow", "nope", "--since", "2000-01-01"]
    )
    assert none.stdout == ""
    bad = runner.invoke(app, ["audit", "export", "--db", str(trail), "--since", "yesterday"])
    assert bad.exit_code == 2
    assert "ISO 8601" in bad.output


def _rehash_all(db: Path, digest_of: Any) -> None:
    """Rewrite every hash of the trail with ``digest_of`` (a store made by an earlier release)."""
    conn = sqlite3.connect(db)
    with conn:
        rows = conn.execute(
            "SELECT seq, at, kind, run_id, step_id, actor, subjects, data_json FROM audit"
            " ORDER BY seq"
        ).fetchall()
        prev = "0" * 64
        for s, at, kind, run_id, step_id, actor, subjects, data in rows:
            subs = tuple(json.loads(subjects)) if subjects else ()
            digest = digest_of(prev, s, at, kind, run_id, step_id, actor, subs, data)
            conn.execute("UPDATE audit SET prev_hash=?, hash=? WHERE seq=?", (prev, digest, s))
            prev = digest
    conn.close()


def test_a_trail_hashed_by_the_previous_release_verifies_and_grows(
    trail: Path, clock: FakeClock
) -> None:
    """Entries used to hash their data re-encoded inside a JSON array; now the stored bytes are
    hashed after it. A store upgraded keeps its old entries and appends new ones."""
    from batonflow.store._audit import legacy_audit_hash

    _rehash_all(trail, legacy_audit_hash)
    old_head = _row(trail, 1)[-1]
    assert old_head == legacy_audit_hash(*_fields(_row(trail, 1)))
    assert _verify(trail)[0] == 0
    asyncio.run(_run_some(trail, clock, runs=1))
    code, out = _verify(trail)
    assert code == 0, out
    last = _row(trail, _count(trail))
    assert last[-1] == audit_hash(*_fields(last))  # new entries: the current form
    _sql(trail, "UPDATE audit SET actor='mallory' WHERE seq=2")
    code, out = _verify(trail)
    assert code == 12
    assert "entry 2" in out


def test_the_data_is_hashed_as_stored_not_re_encoded() -> None:
    data = '{"note":"line\\nbreak \\u00e9"}'
    digest = audit_hash("0" * 64, 1, 1.5, "k", None, None, None, (), data)
    header = '[1,1.5,"k",null,null,null,[]]'
    import hashlib

    assert digest == hashlib.sha256(f"{'0' * 64}\n{header}\n{data}".encode()).hexdigest()


def _fields(row: tuple[Any, ...]) -> tuple[Any, ...]:
    seq, at, kind, run_id, step_id, actor, subjects, data, prev, _ = row
    subs = tuple(json.loads(subjects)) if subjects else ()
    return (prev, seq, at, kind, run_id, step_id, actor, subs, data)


def _count(db: Path) -> int:
    conn = sqlite3.connect(db)
    (n,) = conn.execute("SELECT MAX(seq) FROM audit").fetchone()
    conn.close()
    return int(n)
