"""Browsing the audit trail newest first, filtered and paged, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

import batonflow as bf
from batonflow.core import audit
from batonflow.governance._audit_query import AuditQuery, audit_page, head_seq
from batonflow.store import AuditEntry
from batonflow.testing import FakeClock
from conftest import EngineFactory


@bf.step
def note(text: str) -> str:
    audit("model.call", {"text": text})
    return text


@bf.workflow
async def child(ctx: bf.Context, text: str) -> str:
    return await ctx.step(note, f"child {text}")


@bf.workflow
async def parent(ctx: bf.Context, text: str) -> str:
    await ctx.step(note, text)
    return await ctx.child(child, text)


def flat(pages: list[list[int]]) -> list[int]:
    return [seq for page in pages for seq in page]


async def all_pages(store: bf.Store, query: AuditQuery, limit: int) -> list[list[int]]:
    pages: list[list[int]] = []
    before = None
    while True:
        page = await audit_page(store, query, before=before, limit=limit)
        pages.append([r.seq for r in page.items])
        if page.next_before is None:
            return pages
        before = page.next_before


async def test_pages_are_newest_first_and_filters_combine(
    make_engine: EngineFactory, clock: FakeClock
) -> None:
    async with make_engine(workflows=[parent, child]) as engine:
        store = engine.store
        assert await head_seq(store) == 0
        assert (await audit_page(store)).items == ()
        for index in range(30):
            kind = "approval.decision" if index % 3 == 0 else "trigger.tick"
            actor = "alice" if index % 2 == 0 else "bob"
            subjects = ("ref-jane",) if index % 5 == 0 else ()
            await store.append_audit([AuditEntry(kind, "{}", actor=actor, subjects=subjects)],
                                     clock.now())  # fmt: skip
            await clock.advance(10)
        head = await head_seq(store)
        assert head == 30
        everything = await all_pages(store, AuditQuery(), limit=7)
        assert [len(p) for p in everything] == [7, 7, 7, 7, 2]
        assert flat(everything) == list(range(30, 0, -1))
        alice_votes = await all_pages(store, AuditQuery(actor="alice", kind="approval"), 2)
        assert flat(alice_votes) == [25, 19, 13, 7, 1]
        jane = (await audit_page(store, AuditQuery(subject="ref-jane"))).items
        assert [r.seq for r in jane] == [26, 21, 16, 11, 6, 1]
        start = (await store.read_audit(after=9, limit=1))[0].at
        window = AuditQuery(since=start, until=start + 50)  # entries 10..14
        assert [r.seq for r in (await audit_page(store, window)).items] == [14, 13, 12, 11, 10]
        # a scan budget ends a page early; its cursor resumes where it stopped
        short = await audit_page(store, AuditQuery(actor="nobody"), scan=5)
        assert (short.items, short.next_before) == ((), 26)
        run = await engine.start(parent, "hello")
        await engine.settle()
        run_pages = await all_pages(store, AuditQuery(run_id=run.run_id), limit=3)
        entries = await store.read_audit(after=30, limit=1000)
        mine = [r.seq for r in reversed(entries) if r.run_id and r.run_id.startswith(run.run_id)]
        assert any(r.run_id != run.run_id for r in entries if r.run_id)  # the child's entries
        assert flat(run_pages) == mine
        calls = await audit_page(store, AuditQuery(run_id=run.run_id, kind="model.call"))
        assert len(calls.items) == 2


async def test_bad_paging_arguments_are_refused(make_engine: EngineFactory) -> None:
    async with make_engine() as engine:
        with pytest.raises(bf.ConfigError, match="limit 0"):
            await audit_page(engine.store, limit=0)
        with pytest.raises(bf.ConfigError, match="before 0"):
            await audit_page(engine.store, before=0)
