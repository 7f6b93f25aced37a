"""The one-run report: the story of an enquiry told from the audit trail, on sealed SQLite and
PostgreSQL stores, for a reader who may see personal data and one who may not, before and
after the data subject's erasure, and with a tampered trail."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

import batonflow as bf
from batonflow.catalog._approval import approval
from batonflow.core import audit
from batonflow.governance._approval import decide
from batonflow.governance._identity import Identity, create_identity
from batonflow.governance._report import build_report, describe
from batonflow.governance._report_render import report_html, report_text
from batonflow.governance._subjects import erase_subject, wrap_store
from batonflow.testing import FakeClock
from conftest import EngineFactory

SETUP = Identity("setup", roles=("admin",))
AUDITOR = Identity("vera", roles=("viewer",))
ENQUIRY = {"from": "jane@example.test", "body": "I was charged twice for my order 5512"}

_tries: dict[str, int] = {}


@bf.step(retry=bf.Retry(max_attempts=2, initial_delay=0.0, jitter=0.0))
def classify(body: str) -> str:
    _tries[body] = _tries.get(body, 0) + 1
    if _tries[body] == 1:
        raise ConnectionError("model endpoint reset the connection")
    audit(
        "model.call",
        {"provider": "local", "model": "e5-small", "input_tokens": 40, "output_tokens": 3,
         "cost": 0.0, "outcome": "ok"},
    )  # fmt: skip
    return "billing"


@bf.workflow(subjects=lambda enquiry: [enquiry["from"]])
async def complaint(ctx: bf.Context, enquiry: dict[str, Any]) -> dict[str, Any]:
    label = await ctx.step(classify, enquiry["body"])
    verdict = await approval(
        ctx, title="Refund order 5512", summary="double charge", data=enquiry,
        approvers={"groups": ["finance"]}, quorum=1, expires_in="PT4H", on_expiry="reject",
    )  # fmt: skip
    return {"label": label, "reply": "Dear Jane, we refunded you.", "outcome": verdict["outcome"]}


async def answered(engine: bf.Engine, clock: FakeClock) -> str:
    """A complaint that came in, failed once, was classified, approved by alice, answered."""
    _tries.clear()
    store = engine.store
    await create_identity(store, "root", actor=SETUP, now=clock.now(), roles=("admin",))
    alice = await create_identity(
        store, "alice", actor=SETUP, now=clock.now(), groups=("finance",), roles=("operator",)
    )
    handle = await engine.start(complaint, ENQUIRY, started_by="mailbox")
    await engine.settle()
    await decide(engine, handle.run_id, alice, "approve", comment="charged twice indeed")
    await engine.settle()
    assert await handle.status() is bf.RunStatus.COMPLETED
    return handle.run_id


async def test_the_report_tells_the_run_in_order_with_actors(
    make_engine: EngineFactory, clock: FakeClock
) -> None:
    async with make_engine(workflows=[complaint]) as engine:
        run_id = await answered(engine, clock)
        officer = Identity("olga", roles=("operator",))
        report = await build_report(engine.store, officer, run_id, now=clock.now())
    assert (report.workflow, report.status, report.started_by) == ("complaint", "completed",
                                                                   "mailbox")  # fmt: skip
    assert report.received == ENQUIRY
    assert report.sent["reply"] == "Dear Jane, we refunded you."
    texts = [line.text for line in report.lines]
    story = "\n".join(texts)
    # in order: started, the failed attempt, the model call, the approval, the vote, the end
    markers = [
        "The run of complaint started by mailbox.",
        "Attempt 1 failed and was retried: ConnectionError: model endpoint reset the connection.",
        "Called local/e5-small: 40 tokens in, 3 out.",
        "Asked for approval 'Refund order 5512': 1 decision(s) among approve, reject.",
        "alice decided 'approve' (charged twice indeed).",
        "The run completed.",
    ]
    assert set(markers) <= set(texts), story
    positions = [texts.index(m) for m in markers]
    assert positions == sorted(positions), story
    assert [line.actor for line in report.section("approval") if line.kind.endswith("decision")] \
        == ["alice"]  # fmt: skip
    assert report.totals["model_calls"] == 1
    assert report.totals["input_tokens"] == 40
    assert len(report.section("error")) == 1
    assert report.chain.ok
    assert report.chain.problem is None
    assert report.chain.cited == len(report.lines)
    assert report.lines == tuple(sorted(report.lines, key=lambda line: line.seq))
    text = report_text(report)
    assert "jane@example.test" in text
    assert "The audit chain verifies from its start" in text
    html = report_html(report)
    assert "alice decided &#x27;approve&#x27;" in html
    assert "@media print" in html
    assert "<script" not in html


async def test_a_viewer_gets_the_story_without_personal_data_and_the_reading_is_audited(
    make_engine: EngineFactory, clock: FakeClock
) -> None:
    async with make_engine(workflows=[complaint]) as engine:
        run_id = await answered(engine, clock)
        report = await build_report(engine.store, AUDITOR, run_id, now=clock.now())
        reads = [e for e in await engine.store.read_audit(limit=10_000) if e.kind == "data.read"]
    assert report.personal_withheld
    assert "jane@example.test" not in report_text(report)
    assert "(personal data withheld" in report_text(report)
    assert "The run completed." in [line.text for line in report.lines]
    assert [(e.actor, json.loads(e.data_json)["what"]) for e in reads][-1] == (
        "vera", "audit report"
    )  # fmt: skip


async def test_after_erasure_the_report_says_so_and_shows_nothing_readable(
    make_engine: EngineFactory, clock: FakeClock
) -> None:
    async with make_engine(workflows=[complaint]) as engine:
        run_id = await answered(engine, clock)
        await clock.advance(3600)
        await erase_subject(
            wrap_store(engine.store), "jane@example.test", actor="dpo", now=clock.now()
        )
        report = await build_report(engine.store, SETUP, run_id, now=clock.now())
    text = report_text(report)
    assert "jane@example.test" not in text
    assert "charged twice for my order" not in text  # the enquiry, sealed with Jane's key
    assert [e["by"] for e in report.erased] == ["dpo"]
    assert "the data subject's key was destroyed" in text
    assert "by dpo" in text
    assert report.chain.ok


def tamper(store_url: str, statement: str) -> None:
    """Edit the trail behind the store's back, as someone with write access could."""
    if store_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(store_url, autocommit=True) as pg:
            pg.execute(statement.encode())
        return
    db = sqlite3.connect(store_url)
    with db:
        db.execute(statement)
    db.close()


async def test_a_tampered_trail_is_named_in_the_report(
    make_engine: EngineFactory, clock: FakeClock, store_url: str
) -> None:
    async with make_engine(workflows=[complaint]) as engine:
        run_id = await answered(engine, clock)
    tamper(store_url, "UPDATE audit SET actor='mallory' WHERE kind='approval.decision'")
    async with make_engine(workflows=[complaint]) as engine:
        report = await build_report(engine.store, SETUP, run_id, now=clock.now())
    assert not report.chain.ok
    assert "was edited" in (report.chain.problem or "")
    assert "THE AUDIT CHAIN DOES NOT VERIFY" in report_text(report)
    assert 'class="broken"' in report_html(report)


async def test_an_unknown_run_is_refused(make_engine: EngineFactory, clock: FakeClock) -> None:
    async with make_engine(workflows=[complaint]) as engine:
        with pytest.raises(bf.RunNotFound, match="nope"):
            await build_report(engine.store, SETUP, "nope", now=clock.now())


def test_every_kind_reads_as_a_sentence_even_unknown_ones() -> None:
    assert describe("trigger.tick", {}, "scheduler") == "Trigger tick by scheduler."
    call = {"method": "POST", "host": "crm.test", "path": "/x", "status": 201}
    assert describe("egress.call", call) == "Outbound call POST crm.test/x answered 201."
    assert describe("model.redacted", {"provider": "openai", "detectors": {"email": 2}}) == (
        "Redacted 2 email before calling openai."
    )
    assert describe("step.failed", {"name": "send", "error": {"$erased": True}}) == (
        "Step 'send' failed: (details withheld or erased)."
    )
