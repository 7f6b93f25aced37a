"""The client-enquiries example fed from a real mailbox: its sample e-mails are delivered into
Dovecot on loopback (IMAP APPEND), a mailbox trigger turns each into a run of the workflow
document (its `transform` maps the mail input onto the document's input), and each is routed
where the example's table says."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import shutil
import tempfile
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from batonflow.catalog import Mailer, SmtpSettings
from batonflow.dsl import load_document
from batonflow.governance import list_pending
from batonflow.providers import LocalProvider
from batonflow.triggers import MailboxSettings, MailboxTrigger, document_target
from batonflow.triggers._mail_auth import MailAuth
from triggers.dovecot import Dovecot, append, count, dovecot

from .conftest import EXAMPLES
from .test_client_enquiries import EXPECTED, sample

WORKFLOW = EXAMPLES / "client-enquiries" / "workflow.yaml"
#: docs/triggers.md and the example's README show this same transform
TRANSFORM = (
    '{from: .from, to: (.to | join(", ")), subject: .subject, body: .text, received_at: .date}'
)


@pytest.fixture
def imap() -> Iterator[Dovecot]:
    root = Path(tempfile.mkdtemp(prefix="bf-dovecot-", dir="/tmp"))
    try:
        with dovecot(root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def sink(run_module: ModuleType) -> Iterator[tuple[SmtpSettings, Any]]:
    with run_module.smtp_sink() as (settings, outbox):
        yield settings, outbox


def as_mime(name: str, enquiry: dict[str, Any]) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = enquiry["from"], enquiry["to"]
    message["Subject"] = enquiry["subject"]
    received = dt.datetime.fromisoformat(enquiry["received_at"].replace("Z", "+00:00"))
    message["Date"] = email.utils.format_datetime(received)
    message["Message-ID"] = f"<{name.removesuffix('.json')}@client.example>"
    message.set_content(enquiry["body"])
    return message.as_bytes()


async def test_sample_emails_from_a_real_mailbox_are_each_routed(
    imap: Dovecot,
    tmp_path: Path,
    run_module: ModuleType,
    crm: str,
    sink: tuple[SmtpSettings, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENQUIRIES_IMAP_PASSWORD", imap.password)
    smtp, _ = sink
    functions = run_module.functions_for({"default": LocalProvider()}, Mailer(smtp))
    emails = sample(run_module)
    append(imap, [as_mime(name, enquiry) for name, enquiry in emails])
    document = load_document(str(WORKFLOW)).raw
    setup = run_module.example_setup(crm)
    mailbox = MailboxSettings(
        host=imap.host, port=imap.port, tls="none", username=imap.user,
        auth=MailAuth(password_env="ENQUIRIES_IMAP_PASSWORD"), transform=TRANSFORM,
    )  # fmt: skip
    async with (
        setup.session(str(tmp_path / "runs.db"), functions=functions) as session,
        session.engine() as engine,
    ):
        trigger = MailboxTrigger("enquiries", mailbox, document_target(session.runtime, document))
        done = await trigger.check(engine)
        await trigger.close()
        await engine.settle()
        # casey decides every approval as the demo does: a complaint is approved; where the
        # classifier was unsure, she picks the category (which may open a complaint's approval)
        ours, decided = {o["run_id"] for o in done}, set()
        while pending := [
            r for r in await list_pending(engine.store) if r.run_id in ours and r.id not in decided
        ]:
            for request in pending:
                decided.add(request.id)
                option = "approve" if "approve" in request.options else "routine question"
                await run_module.decide(
                    engine, request.run_id, run_module.DECIDER, option,
                    approval_id=request.id, now=engine.clock.now(),
                )  # fmt: skip
            await engine.settle()
        routed = {}
        for outcome in done:
            run = await engine.store.get_run(outcome["run_id"])
            assert run is not None
            assert run.status.value == "completed", run.error_json
            routed[outcome["message_id"]] = json.loads(run.output_json or "{}")
    assert [o["state"] for o in done] == ["started"] * len(EXPECTED)
    assert count(imap, "INBOX") == 0
    for name, (category, result) in EXPECTED.items():
        output = routed[f"<{name.removesuffix('.json')}@client.example>"]
        assert (output["category"], output["outcome"]) == (category, result), name
