"""The client-enquiries example end to end: the real workflow document, the real CRM service on
loopback, a real SMTP server on loopback, the engine on SQLite, and the offline local model."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

import batonflow as bf
from batonflow.catalog._email import Mailer, SmtpSettings
from batonflow.dsl import load_document
from batonflow.governance import list_pending
from batonflow.governance._subjects import wrap_store
from batonflow.providers import LocalProvider, OpenAIProvider
from batonflow.store import SQLiteStore
from batonflow.testing import FakeClock
from providers.servers import FakeOpenAI, ok

from .conftest import EXAMPLES

#: where each sample e-mail must go (the local model classifies them; see workflow.yaml)
EXPECTED = {
    "1-damaged-order.json": ("complaint", "upheld"),
    "2-overcharged.json": ("complaint", "upheld"),
    "3-opening-hours.json": ("routine question", "answered"),
    "4-delivery-time.json": ("routine question", "answered"),
    "5-newsletter.json": ("other", "filed"),
    "6-faulty-heater.json": ("complaint", "upheld"),
}
SAMPLES = EXAMPLES / "client-enquiries" / "emails"


@pytest.fixture
def sink(run_module: ModuleType) -> Iterator[tuple[SmtpSettings, Any]]:
    with run_module.smtp_sink() as (settings, outbox):
        yield settings, outbox


def sample(run_module: ModuleType, *names: str) -> list[tuple[str, dict[str, Any]]]:
    paths = [SAMPLES / name for name in names] or sorted(SAMPLES.glob("*.json"))
    emails: list[tuple[str, dict[str, Any]]] = run_module.read_emails(paths)
    return emails


def enquiries(crm: str) -> dict[str, dict[str, Any]]:
    found = httpx.get(f"{crm}/enquiries").json()["enquiries"]
    return {e["id"]: e for e in found}


async def test_every_sample_goes_where_it_should(
    tmp_path: Path, run_module: ModuleType, crm: str, sink: tuple[SmtpSettings, Any]
) -> None:
    settings, outbox = sink
    local = LocalProvider()
    functions = run_module.functions_for({"default": local}, Mailer(settings))
    emails = sample(run_module)
    assert sorted(name for name, _ in emails) == sorted(EXPECTED)

    outcomes = await run_module.process(
        emails, db=tmp_path / "runs.db", crm_url=crm, functions=functions
    )

    logged = enquiries(crm)
    assert len(logged) == len(EXPECTED)  # one CRM entry per e-mail
    for outcome, (_, email) in zip(outcomes, emails, strict=True):
        category, result = EXPECTED[outcome.name]
        assert outcome.status == "completed", outcome.error
        out = outcome.output
        assert (out["category"], out["outcome"]) == (category, result), outcome.name
        entry = logged[out["crm_id"]]
        assert (entry["from"], entry["category"], entry["run_id"]) == (
            email["from"], category, outcome.run_id
        )  # fmt: skip
        if category == "other":
            assert entry["status"] == "filed"
            assert "confirmation" not in out  # spam gets no reply
            continue
        assert entry["status"] == "resolved"
        message = outbox.messages[out["confirmation"]]
        assert message["To"] == email["from"]
        assert message["Subject"] == f"Re: {email['subject']} [{out['crm_id']}]"
        assert out["reply"] in message.get_content().replace("\r\n", "\n")
        if category == "complaint":
            assert entry["resolution"] == "Complaint upheld by casey."
        else:  # only the local model is configured: it cannot write, so the template answers
            assert entry["resolution"] == "Answered with a reply drafted by the template."
            assert out["reply"].startswith("Thank you for your question.")
    assert len(outbox.messages) == 5


async def test_a_rejected_complaint_is_resolved_as_not_upheld(
    tmp_path: Path, run_module: ModuleType, crm: str, sink: tuple[SmtpSettings, Any]
) -> None:
    settings, outbox = sink
    functions = run_module.functions_for({"default": LocalProvider()}, Mailer(settings))
    (outcome,) = await run_module.process(
        sample(run_module, "2-overcharged.json"),
        db=tmp_path / "runs.db",
        crm_url=crm,
        functions=functions,
        decision="reject",
    )
    assert outcome.output["outcome"] == "not upheld"
    assert enquiries(crm)[outcome.output["crm_id"]]["resolution"] == (
        "Complaint not upheld by casey."
    )
    (message,) = outbox.messages.values()
    assert "carefully reviewed your complaint" in message.get_content()


async def test_a_configured_model_drafts_the_reply(
    tmp_path: Path,
    run_module: ModuleType,
    crm: str,
    sink: tuple[SmtpSettings, Any],
    server: FakeOpenAI,
    provider: OpenAIProvider,
) -> None:
    settings, outbox = sink
    label = {"label": "routine question", "confidence": 0.93, "rationale": "asks a question"}
    drafted = "Our Leeds showroom opens at 9am on Saturdays. We look forward to seeing you."
    server.script(ok(json.dumps(label)), ok(drafted))
    functions = run_module.functions_for({"default": provider}, Mailer(settings))
    (outcome,) = await run_module.process(
        sample(run_module, "3-opening-hours.json"),
        db=tmp_path / "runs.db",
        crm_url=crm,
        functions=functions,
    )
    assert outcome.output["reply"] == drafted
    entry = enquiries(crm)[outcome.output["crm_id"]]
    assert entry["resolution"] == "Answered with a reply drafted by the model."
    (message,) = outbox.messages.values()
    assert drafted in message.get_content()
    prompt = json.dumps(server.received[1].body)
    assert "Saturdays" in prompt  # the question went to the model


async def test_the_audit_trail_records_the_mail_without_personal_data(
    tmp_path: Path, run_module: ModuleType, crm: str, sink: tuple[SmtpSettings, Any]
) -> None:
    settings, _ = sink
    functions = run_module.functions_for({"default": LocalProvider()}, Mailer(settings))
    (outcome,) = await run_module.process(
        sample(run_module, "4-delivery-time.json"),
        db=tmp_path / "runs.db",
        crm_url=crm,
        functions=functions,
    )
    store = wrap_store(SQLiteStore(tmp_path / "runs.db"))  # the run's data is sealed: open it
    await store.open()
    try:
        trail = await store.read_audit(run_id=outcome.run_id)
        (sent,) = [
            await store.open_json(entry.data_json, outcome.run_id)
            for entry in trail
            if entry.kind == "email.sent"
        ]
    finally:
        await store.close()
    assert sent["message_id"] == outcome.output["confirmation"]
    assert sent["to_count"] == 1
    assert "jonas" not in json.dumps(sent).lower()


class Refusing:
    """An SMTP server that knows no mailbox."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return "550 5.1.1 No such mailbox"


async def test_an_undeliverable_confirmation_leaves_the_enquiry_resolved(
    tmp_path: Path, run_module: ModuleType, crm: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = SmtpSettings(host="127.0.0.1", port=port, sender="care@northwind.example")
        functions = run_module.functions_for({"default": LocalProvider()}, Mailer(settings))
        (outcome,) = await run_module.process(
            sample(run_module, "3-opening-hours.json"),
            db=tmp_path / "runs.db",
            crm_url=crm,
            functions=functions,
        )
    finally:
        controller.stop()
    assert outcome.status == "completed"
    assert "confirmation" not in outcome.output
    assert outcome.output["confirmation_error"].startswith("EmailRejected: ")
    assert "550 5.1.1 No such mailbox" in outcome.output["confirmation_error"]
    assert enquiries(crm)[outcome.output["crm_id"]]["status"] == "resolved"


async def test_an_unanswered_complaint_is_never_answered_not_upheld(
    tmp_path: Path, run_module: ModuleType, crm: str, sink: tuple[SmtpSettings, Any]
) -> None:
    """Nobody in client-care answers, nor do the managers: the enquiry keeps waiting (asked
    again every four hours), and the client gets no "not upheld" reply, nor any reply."""
    settings, outbox = sink
    clock = FakeClock()
    setup = run_module.example_setup(crm, settings)
    functions = run_module.functions_for({"default": LocalProvider()}, Mailer(settings))
    document = load_document(str(run_module.WORKFLOW)).raw
    ((_, email),) = sample(run_module, "2-overcharged.json")
    db = str(tmp_path / "runs.db")
    async with (
        setup.session(db, functions=functions, clock=clock) as session,
        session.engine(clock=clock) as engine,
    ):
        handle = await session.runtime.start(engine, document, email, started_by=run_module.INTAKE)
        await engine.settle()
        for _ in range(4):  # an hour for client-care, then rounds of four hours
            await clock.advance(4 * 3600)
            await engine.settle()
        assert await handle.status() is bf.RunStatus.WAITING
        (pending,) = await list_pending(engine.store, run_id=handle.run_id)
    assert pending.approvers.groups == ("managers",)
    assert pending.round >= 3
    (entry,) = enquiries(crm).values()
    assert entry["status"] == "awaiting-approval"
    assert outbox.messages == {}
