"""Retention periods and the audited purge, under a fake clock."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import batonflow as bf
from batonflow.errors import ConfigError
from batonflow.governance._retention import (
    Retention,
    load_retention,
    parse_retention,
    purge,
    retention_config,
    retention_from_metadata,
)
from batonflow.governance._subjects import wrap_store
from batonflow.store import AuditRecord, SQLiteStore
from batonflow.testing import FakeClock

DAY = 86_400.0


def ts(year: int, month: int, day: int, hour: int = 0) -> float:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "ended", "expires"),
    [
        ("P6Y", ts(2026, 1, 1), ts(2032, 1, 1)),
        ("p1y", ts(2024, 2, 29), ts(2025, 2, 28)),  # calendar years; clamped to the month
        ("P1M", ts(2026, 1, 31), ts(2026, 2, 28)),
        ("P1Y6M", ts(2026, 9, 15), ts(2028, 3, 15)),
        ("P30D", ts(2026, 1, 1), ts(2026, 1, 31)),
        ("P2W", ts(2026, 1, 1), ts(2026, 1, 15)),
        ("PT36H", ts(2026, 1, 1), ts(2026, 1, 2, 12)),
        ("P1DT0.5S", ts(2026, 1, 1), ts(2026, 1, 2) + 0.5),
    ],
)
def test_retention_durations_are_calendar_aware(text: str, ended: float, expires: float) -> None:
    assert parse_retention(text).expires(ended) == expires


@pytest.mark.parametrize("bad", ["6 years", "P", "PT", "P1YT", "P0D", "1Y", "", 6, None, "P1.5Y"])
def test_bad_retentions_say_what_was_expected(bad: object) -> None:
    with pytest.raises(ConfigError, match="retention"):
        parse_retention(bad, where="workflow x")


def test_retention_from_document_metadata() -> None:
    assert retention_from_metadata({"batonflow": {"retention": "P6Y"}}) == Retention("P6Y", 6)
    assert retention_from_metadata({"batonflow": {"deadline": "PT4H"}}) is None
    assert retention_from_metadata(None) is None
    assert retention_from_metadata({"other": 1}) is None
    with pytest.raises(ConfigError, match=r"document.metadata.batonflow.retention: invalid"):
        retention_from_metadata({"batonflow": {"retention": "six years"}})
    with pytest.raises(ConfigError, match=r"metadata.batonflow: expected an object, got list"):
        retention_from_metadata({"batonflow": ["P6Y"]})


def test_retention_from_a_parsed_configuration() -> None:
    table = {"governance": {"retention": {"enquiry": "P6Y"}}}
    assert retention_config(table, "cfg.toml") == {"enquiry": Retention("P6Y", 6)}
    assert retention_config({}, "cfg.toml") == {}
    with pytest.raises(ConfigError, match=r"cfg.toml: governance.retention.enquiry: invalid"):
        retention_config({"governance": {"retention": {"enquiry": 6}}}, "cfg.toml")


def test_retention_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "batonflow.toml"
    path.write_text('[governance.retention]\nenquiry = "P6Y"\ntriage = "P90D"\n')
    assert load_retention(path) == {
        "enquiry": Retention("P6Y", 6),
        "triage": Retention("P90D", seconds=90 * DAY),
    }
    path.write_text('[governance.retention]\nenquiry = "forever"\n')
    with pytest.raises(ConfigError, match=r"batonflow.toml: governance.retention.enquiry: invalid"):
        load_retention(path)
    path.write_text("[governance]\nretention = 5\n")
    with pytest.raises(ConfigError, match=r"\[governance.retention\] must be a table"):
        load_retention(path)
    path.write_text("[governance\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_retention(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_retention(tmp_path / "missing.toml")
    path.write_text('[providers.x]\nkind = "local"\n')
    assert load_retention(path) == {}  # no [governance.retention]: keep everything


@bf.workflow
async def short(ctx: bf.Context, text: str) -> str:
    return text


@bf.workflow
async def kept(ctx: bf.Context, text: str) -> str:
    return text


@bf.workflow
async def waits(ctx: bf.Context) -> object:
    return await ctx.wait_for_event("go")


@bf.workflow(subjects=lambda x: x["email"])
async def personal(ctx: bf.Context, x: dict[str, str]) -> str:
    return x["email"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock) -> AsyncIterator[bf.Engine]:
    store = wrap_store(SQLiteStore(tmp_path / "runs.db"), now=clock.now)
    async with bf.Engine(store, clock=clock, workflows=[short, kept, waits, personal]) as engine:
        yield engine


async def test_purge_deletes_expired_ended_runs_and_audits_each(
    engine: bf.Engine, clock: FakeClock
) -> None:
    store = engine.store
    old = await engine.start(short, "old")
    other = await engine.start(kept, "kept forever")
    open_run = await engine.start(waits)
    mine = await engine.start(personal, {"email": "jane@example.com"})
    await engine.settle()
    await clock.advance(20 * DAY)
    young = await engine.start(short, "young")
    await engine.settle()
    policies: dict[str, Retention | str] = {
        "short": parse_retention("P30D"),
        "personal": "P30D",
        "waits": "P1D",
    }

    await clock.advance(15 * DAY)  # old: 35 days ended; young: 15
    preview = await purge(store, clock.now(), policies, actor="ops", dry_run=True)
    both = sorted([old.run_id, mine.run_id])
    assert [p.run_id for p in preview.runs] == both  # ended together: by id
    assert await store.get_run(old.run_id) is not None  # a dry run deletes nothing...
    assert not [
        r
        for r in await store.read_audit(limit=10_000)
        if r.kind.startswith(("run.purged", "retention"))
    ]

    report = await purge(store, clock.now(), policies, actor="ops")
    assert [p.run_id for p in report.runs] == both
    assert report.runs[0].expired_at == report.runs[0].finished_at + 30 * DAY
    assert await store.get_run(old.run_id) is None
    assert await store.get_run(mine.run_id) is None
    assert await store.load_steps(old.run_id) == []
    assert await store.get_run(young.run_id) is not None  # within its retention
    assert await store.get_run(other.run_id) is not None  # its workflow has no retention
    assert await store.get_run(open_run.run_id) is not None  # waiting: not ended
    entries = [r for r in await store.read_audit(limit=10_000) if r.actor == "ops"]
    assert [(e.kind, e.run_id) for e in entries] == [
        ("run.purged", both[0]), ("run.purged", both[1]), ("retention.purge", None),
    ]  # fmt: skip
    by_run = {e.run_id: e for e in entries}
    assert json.loads(by_run[old.run_id].data_json) == {
        "workflow": "short", "status": "completed", "finished_at": report.runs[0].finished_at,
        "retention": "P30D",
    }  # fmt: skip
    assert by_run[old.run_id].data_json.find(str(report.runs[0].finished_at)) > 0
    assert by_run[mine.run_id].subjects[0].startswith("s:")  # the purged run's subject ref
    assert by_run[old.run_id].subjects == ()
    assert json.loads(entries[2].data_json)["runs"] == 2

    await clock.advance(15 * DAY)
    again = await purge(store, clock.now(), policies, actor="ops", workflow="short")
    assert [p.run_id for p in again.runs] == [young.run_id]
    with pytest.raises(ConfigError, match="workflow 'kept' has no retention period; configured"):
        await purge(store, clock.now(), policies, actor="ops", workflow="kept")


async def test_purge_takes_cancelled_and_faulted_runs(engine: bf.Engine, clock: FakeClock) -> None:
    store = engine.store
    run = await engine.start(waits)
    await engine.settle()
    await engine.cancel(run.run_id)
    await clock.advance(2 * DAY)
    report = await purge(store, clock.now(), {"waits": "P1D"}, actor="ops")
    assert [(p.run_id, p.status) for p in report.runs] == [(run.run_id, bf.RunStatus.CANCELLED)]


# -- the command line -------------------------------------------------------------------------


async def _ended_runs(db: Path) -> dict[str, str]:
    clock = FakeClock(start=ts(2020, 1, 1))  # the CLI purges against real time: years later
    store = wrap_store(SQLiteStore(db), now=clock.now)
    async with bf.Engine(store, clock=clock, workflows=[short, kept]) as engine:
        runs = {"short": await engine.start(short, "a"), "kept": await engine.start(kept, "b")}
        await engine.settle()
    return {name: h.run_id for name, h in runs.items()}


async def _state(db: Path) -> tuple[list[str], list[AuditRecord]]:
    store = SQLiteStore(db)
    await store.open()
    try:
        runs = [r.id for r in await store.list_runs(limit=100)]
        return runs, await store.read_audit(limit=10_000)
    finally:
        await store.close()


def test_purge_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import typer
    from typer.testing import CliRunner

    from batonflow.cli._subjects import purge as purge_command

    monkeypatch.delenv("BATONFLOW_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./batonflow.toml
    app = typer.Typer()
    app.command("purge")(purge_command)
    app.command("noop")(lambda: None)
    db = tmp_path / "runs.db"
    ids = asyncio.run(_ended_runs(db))
    runner = CliRunner()

    result = runner.invoke(app, ["purge", "--db", str(db)])
    assert result.exit_code == 2
    assert "no retention periods" in result.stderr
    result = runner.invoke(app, ["purge", "--retention", "short", "--db", str(db)])
    assert result.exit_code == 2
    assert "expected WORKFLOW=DURATION" in result.stderr
    result = runner.invoke(app, ["purge", "--retention", "short=6 years", "--db", str(db)])
    assert result.exit_code == 2
    assert "--retention short: invalid retention" in result.stderr

    (tmp_path / "batonflow.toml").write_text(
        '[governance.retention]\nshort = "P30D"\nkept = "P99Y"\n'
    )
    result = runner.invoke(app, ["purge", "--dry-run", "--json", "--db", str(db)])
    assert result.exit_code == 0, result.output
    preview = json.loads(result.stdout)
    assert preview["dry_run"] is True
    assert [r["id"] for r in preview["runs"]] == [ids["short"]]
    assert sorted(asyncio.run(_state(db))[0]) == sorted(ids.values())

    result = runner.invoke(app, ["purge", "--workflow", "short", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "deleted 1 run(s)" in result.stdout
    assert ids["short"] in result.stdout
    runs, trail = asyncio.run(_state(db))
    assert runs == [ids["kept"]]
    purged = [r for r in trail if r.kind in ("run.purged", "retention.purge")]
    assert [(r.kind, r.run_id) for r in purged] == [
        ("run.purged", ids["short"]), ("retention.purge", None),
    ]  # fmt: skip
    assert all(r.actor and r.actor.startswith("local:") for r in purged)
    # A workflow document's metadata.batonflow.retention names the runs of that document
    # (namespace/name): none of the runs here.
    doc = tmp_path / "kept.yaml"
    doc.write_text(
        "document: {dsl: '1.0.3', namespace: test, name: kept, version: '1.0.0',"
        " metadata: {batonflow: {retention: P1Y}}}\ndo:\n  - first: {set: {a: 1}}\n"
    )
    result = runner.invoke(
        app, ["purge", "--with", str(doc), "--dry-run", "--json", "--db", str(db)]
    )
    assert json.loads(result.stdout)["runs"] == []
    doc.write_text(doc.read_text().replace("P1Y", "one year"))
    result = runner.invoke(app, ["purge", "--with", str(doc), "--db", str(db)])
    assert result.exit_code == 2
    assert "kept.yaml" in result.stderr
    assert "retention" in result.stderr
    assert "'one year'" in result.stderr
    # The command-line retention overrides the file's.
    result = runner.invoke(app, ["purge", "--retention", "kept=P1Y", "--json", "--db", str(db)])
    assert [r["id"] for r in json.loads(result.stdout)["runs"]] == [ids["kept"]]


def test_document_runs_are_purged_by_their_own_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document run carries its document, and with it its retention: no configuration
    needed."""
    import asyncio

    import typer
    from typer.testing import CliRunner

    from batonflow.cli._subjects import purge as purge_command
    from batonflow.dsl import DslRuntime, load_document

    monkeypatch.delenv("BATONFLOW_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    text = (
        "document: {dsl: '1.0.3', namespace: firm, name: enquiries, version: '1.0.0',"
        " metadata: {batonflow: {retention: P1Y}}}\ndo:\n  - first: {set: {a: 1}}\n"
    )
    db = tmp_path / "runs.db"

    async def run_document() -> str:
        clock = FakeClock(start=ts(2020, 1, 1))
        runtime = DslRuntime()
        store = wrap_store(SQLiteStore(db), now=clock.now)
        async with bf.Engine(store, clock=clock, workflows=[runtime.workflow]) as engine:
            handle = await runtime.start(engine, load_document("e.yaml", text=text).raw, {})
            await handle.result()
            assert (await handle.record()).workflow == "firm/enquiries"
            return handle.run_id

    run_id = asyncio.run(run_document())
    app = typer.Typer()
    app.command("purge")(purge_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["purge", "--json", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.stdout)["runs"]] == [run_id]
