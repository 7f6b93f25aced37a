"""Issue #13, e-mail in, against a real Dovecot on loopback: each message starts one run (or is
refused, recorded and alerted), replies reach the run waiting for them, failures alert at once,
and 200 messages survive a trigger process SIGKILLed at random points: 200 runs, none twice."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.governance import Alert, AlertHook
from batonflow.triggers import (
    MailboxSettings,
    MailboxTrigger,
    Target,
    TriggerHost,
    workflow_target,
)
from batonflow.triggers._describe import describe_triggers
from batonflow.triggers._mail_auth import MailAuth
from conftest import EngineFactory

from .dovecot import Dovecot, append, count, dovecot

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent / "batonflow"


@pytest.fixture
def imap() -> Iterator[Dovecot]:
    # not under pytest's temporary directory: that is private to root, and Dovecot's mail
    # processes run as another user
    root = Path(tempfile.mkdtemp(prefix="bf-dovecot-", dir="/tmp"))
    try:
        with dovecot(root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def password(imap: Dovecot, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BF_TEST_IMAP_PASSWORD", imap.password)
    return "BF_TEST_IMAP_PASSWORD"


@bf.workflow
async def enquiry(ctx: bf.Context, mail: dict[str, Any]) -> dict[str, Any]:
    return {"subject": mail["subject"], "from": mail["from"]}


@bf.workflow
async def awaiting_reply(ctx: bf.Context, message_id: str) -> Any:
    return await ctx.wait_for_event("email.reply", key=message_id)


def settings(imap: Dovecot, password: str, **options: Any) -> MailboxSettings:
    return MailboxSettings(
        host=imap.host, port=imap.port, tls="none", username=imap.user,
        auth=MailAuth(password_env=password), poll=5, **options,
    )  # fmt: skip


def mail(subject: str, body: str = "Hello", **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ann Client <ann@client.test>"
    message["To"] = "office@example.test"
    message["Subject"] = subject
    message["Message-ID"] = headers.pop("message_id", f"<{subject.replace(' ', '.')}@client.test>")
    message["Date"] = "Mon, 07 Dec 2026 09:15:00 +0000"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def odd_messages() -> list[bytes]:
    with_file = mail("Invoice attached", "See attached.")
    with_file.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf",
                             filename="invoice.pdf")  # fmt: skip
    html = EmailMessage()
    html["From"], html["Subject"], html["Message-ID"] = "bob@x.test", "HTML only", "<h@x.test>"
    html.set_content("<p>Please <b>call</b> me</p><ul><li>today</li></ul>", subtype="html")
    latin = (
        b"From: cafe@x.test\r\nSubject: =?iso-8859-1?q?Caf=E9?=\r\nMessage-ID: <l@x.test>\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nCaf\xe9 cr\xe8me\r\n"
    )
    lying = (
        b"From: x@x.test\r\nSubject: wrong charset\r\nMessage-ID: <w@x.test>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nna\xefve\r\n"
    )
    unknown = (
        b"From: y@x.test\r\nSubject: klingon\r\nMessage-ID: <k@x.test>\r\n"
        b"Content-Type: text/plain; charset=x-klingon\r\n\r\nqapla'\r\n"
    )
    broken = (
        b"From: z@x.test\r\nSubject: broken mime\r\nMessage-ID: <b@x.test>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="nope"\r\n\r\n'
        b"--other\r\nContent-Type: text/plain\r\n\r\nlost boundary\r\n"
    )
    no_headers = b"\r\n\r\njust a body and nothing else\r\n"
    copy = mail("Invoice attached", "the same Message-ID again")
    return [with_file.as_bytes(), html.as_bytes(), latin, lying, unknown, broken, no_headers,
            copy.as_bytes()]  # fmt: skip


class Recorded:
    name = "recorded"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


def alerting() -> tuple[AlertHook, Recorded]:
    channel = Recorded()

    async def nothing() -> None:
        return None

    return AlertHook(lambda engine: ([channel], nothing)), channel


async def test_every_kind_of_message_gives_a_run_or_a_recorded_refusal(
    imap: Dovecot, password: str, make_engine: EngineFactory
) -> None:
    append(imap, odd_messages())
    hook, channel = alerting()
    async with make_engine(hooks=[hook]) as engine:
        trigger = MailboxTrigger("office", settings(imap, password), workflow_target(enquiry))
        done = await TriggerHost(engine, [trigger]).check()
        await engine.settle()
        runs = {json.loads(r.input_json)["subject"]: r for r in
                await engine.store.list_runs(workflow="enquiry")}  # fmt: skip
        again = await trigger.check(engine)
        await trigger.close()
        status = await trigger.status(engine.store, engine.clock.now())
        [described] = await describe_triggers(engine.store, [trigger], engine.clock.now())
        audit = {e.kind for e in await engine.store.read_audit()}
    states = [d["state"] for d in done]
    assert states == ["started"] * 6 + ["refused", "duplicate"]
    assert again == []  # everything was moved away
    assert (count(imap, "INBOX"), count(imap, "Processed"), count(imap, "Refused")) == (0, 7, 1)
    inputs = {s: json.loads(r.input_json) for s, r in runs.items()}
    (attachment,) = inputs["Invoice attached"]["attachments"]
    assert attachment["name"] == "invoice.pdf"
    assert attachment["type"] == "application/pdf"
    assert base64.b64decode(attachment["content"]) == b"%PDF-1.4 fake"
    assert attachment["size"] == 13
    assert inputs["HTML only"]["text"] == "Please **call** me\n\n  * today"
    assert inputs["Café"]["text"] == "Café crème"
    assert inputs["wrong charset"]["text"] == "na\ufffdve"
    assert "text not in its declared charset utf-8" in inputs["wrong charset"]["defects"]
    assert "unknown charset x-klingon" in inputs["klingon"]["defects"]
    assert inputs["broken mime"]["defects"]  # a run, with what the parser repaired
    first = inputs["Invoice attached"]
    assert first["from"] == "Ann Client <ann@client.test>"
    assert first["to"] == ["office@example.test"]
    assert first["cc"] == []
    assert first["date"] == "2026-12-07T09:15:00+00:00"
    assert first["message_id"] == "<Invoice.attached@client.test>"
    assert [a.kind for a in channel.alerts] == ["trigger.failed"]
    assert "refused: the message has no headers" in channel.alerts[0].summary
    assert (status["state"], status["backlog"]) == ("active", 0)
    assert status["last_success"] is not None
    assert (described.kind, described.backlog, described.overlap, described.next) == (
        "mailbox", 0, None, ()
    )  # fmt: skip
    assert described.last_success == status["last_success"]
    assert {"trigger.mail.started", "trigger.mail.refused", "trigger.mail.duplicate"} <= audit


async def test_a_reply_reaches_the_run_waiting_for_it(
    imap: Dovecot, password: str, make_engine: EngineFactory
) -> None:
    async with make_engine() as engine:
        waiting = await engine.start(awaiting_reply, "<quote-17@office.test>")
        await engine.settle()
        append(imap, [mail("Re: your quote", "Yes please", In_Reply_To="<quote-17@office.test>")
                      .as_bytes()])  # fmt: skip
        trigger = MailboxTrigger(
            "office", settings(imap, password, replies="event"), workflow_target(enquiry)
        )
        (done,) = await trigger.check(engine)
        await trigger.close()
        await engine.settle()
        reply = await waiting.result(timeout=5)
    assert done["state"] == "reply"
    assert reply["text"] == "Yes please"
    assert reply["subject"] == "Re: your quote"


async def test_a_paused_mailbox_leaves_its_messages_waiting(
    imap: Dovecot, password: str, make_engine: EngineFactory
) -> None:
    from batonflow.triggers._control import pause, resume

    append(imap, [mail("while paused").as_bytes()])
    async with make_engine() as engine:
        trigger = MailboxTrigger("office", settings(imap, password), workflow_target(enquiry))
        assert await pause(engine.store, "office", by="ann", now=engine.clock.now())
        assert await trigger.check(engine) == []
        assert (await trigger.status(engine.store, engine.clock.now()))["state"] == "paused"
        assert await resume(engine.store, "office", by="ann", now=engine.clock.now())
        assert [d["state"] for d in await trigger.check(engine)] == ["started"]
        await trigger.close()


async def test_flag_instead_of_move(
    imap: Dovecot, password: str, make_engine: EngineFactory
) -> None:
    append(imap, [mail("one").as_bytes(), mail("two").as_bytes()])
    async with make_engine() as engine:
        trigger = MailboxTrigger(
            "office", settings(imap, password, after="flag"), workflow_target(enquiry)
        )
        assert [d["state"] for d in await trigger.check(engine)] == ["started", "started"]
        assert await trigger.check(engine) == []
        await trigger.close()
    assert count(imap, "INBOX") == 2


@pytest.mark.parametrize("failure", ["bad password", "unreachable"])
async def test_a_failing_mailbox_alerts_at_once(
    imap: Dovecot, password: str, make_engine: EngineFactory, failure: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    port = imap.port
    if failure == "bad password":
        monkeypatch.setenv(password, "wrong")
    else:
        import socket

        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    hook, channel = alerting()
    async with make_engine(hooks=[hook]) as engine:
        options = settings(imap, password)
        trigger = MailboxTrigger("office", MailboxSettings(**{**options.__dict__, "port": port}),
                                 workflow_target(enquiry))  # fmt: skip
        with pytest.raises(Exception, match=r"(?i)authentication|refused|connect"):
            await TriggerHost(engine, [trigger]).check()
        await trigger.close()
    (alert,) = channel.alerts
    assert alert.kind == "trigger.failed"
    assert "mailbox trigger 'office' failed" in alert.summary


# -- 200 messages, a trigger process killed at random points -----------------------------------
def config(imap: Dovecot, tmp_path: Path) -> Path:
    path = tmp_path / "batonflow.toml"
    path.write_text(
        f"""
[governance.egress]
allow = ["127.0.0.1"]

[triggers.mailboxes.office]
workflow = "trigger_flows:report"
host = "{imap.host}"
port = {imap.port}
tls = "none"
username = "{imap.user}"
password_env = "BF_TEST_IMAP_PASSWORD"
poll = 0.5
batch = 20
lease = 1
"""
    )
    return path


def mail_runs(db: str) -> list[bf.RunRecord]:
    async def read() -> list[bf.RunRecord]:
        store = bf.open_store(db)
        await store.open()
        try:
            return await store.list_runs(workflow="report", limit=10_000)
        finally:
            await store.close()

    return asyncio.run(read())


def hosts(env: dict[str, str], how_many: int, log: Path) -> list[subprocess.Popen[bytes]]:
    argv = [str(BIN), "triggers", "run", "--poll", "0.2"]
    with log.open("ab") as out:
        return [
            subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=out)
            for _ in range(how_many)
        ]


@pytest.mark.long
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_200_messages_while_trigger_processes_are_killed(
    imap: Dovecot, password: str, tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    """SQLite: one process at a time (the engine lock); PostgreSQL: two at once, both reading
    the same mailbox. Each is SIGKILLed at a random point, six times over."""
    db = str(tmp_path / "runs.db") if store == "sqlite" else request.getfixturevalue("pg_url")
    env = {
        **os.environ,
        "BATONFLOW_CONFIG": str(config(imap, tmp_path)),
        "BATONFLOW_DB": db,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    messages = [mail(f"enquiry {i}").as_bytes() for i in range(200)]
    rng = random.Random(13)
    kills, delivered = 0, 0
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        batch = messages[delivered : delivered + 50]
        if batch:
            append(imap, batch)
        delivered += len(batch)
        processes = hosts(env, 1 if store == "sqlite" else 2, tmp_path / "hosts.log")
        if kills < 6:
            time.sleep(rng.uniform(0.8, 2.5))  # let them get somewhere, in real time
            for process in processes:
                process.send_signal(signal.SIGKILL)
                process.wait()
            kills += 1
            continue
        log = tmp_path / "hosts.log"
        while time.monotonic() < deadline and (
            count(imap, "INBOX") or any(f"(pid {p.pid})" not in log.read_text() for p in processes)
        ):
            time.sleep(0.1)  # the last processes up and finishing the mailbox
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            assert process.wait(timeout=20) == 0, (tmp_path / "hosts.log").read_text()[-3000:]
        break
    runs = mail_runs(db)
    subjects = [json.loads(r.input_json)["subject"] for r in runs]
    assert count(imap, "INBOX") == 0, (tmp_path / "hosts.log").read_text()[-3000:]
    assert kills == 6
    assert len(subjects) == len(set(subjects)), "a message started two runs"
    assert sorted(subjects) == sorted(f"enquiry {i}" for i in range(200)), "a message was lost"
    assert count(imap, "Processed") == 200


async def test_idle_picks_up_a_message_as_it_arrives(
    imap: Dovecot, password: str, db_path: Path
) -> None:
    """A hosted mailbox waits in IDLE (poll is 5 minutes here): a message delivered while it
    waits starts its run within seconds."""
    started = asyncio.Event()
    inner = workflow_target(enquiry)

    async def start(engine: bf.Engine, input: Any, run_id: str, key: str) -> str:
        run = await inner.start(engine, input, run_id, key)
        started.set()
        return run

    async with bf.Engine(db_path) as engine:
        options = {**settings(imap, password).__dict__, "poll": 300.0}
        trigger = MailboxTrigger("office", MailboxSettings(**options),
                                 Target("enquiry", start))  # fmt: skip
        async with TriggerHost(engine, [trigger]):
            for _ in range(200):  # until it has connected and waits in IDLE
                if trigger._client is not None:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # real time for the IDLE command to be sent
            begun = time.monotonic()
            await asyncio.to_thread(append, imap, [mail("arrives during IDLE").as_bytes()])
            await asyncio.wait_for(started.wait(), 10)
            assert time.monotonic() - begun < 10


@pytest.mark.parametrize(
    ("egress", "host", "allowed"),
    [
        (None, "imap.firm.example", True),  # no table: any public host
        (None, "127.0.0.1", False),  # ...but no private or loopback address
        ({"allow": ["*"]}, "127.0.0.1", False),
        ({"allow": ["127.0.0.1"]}, "127.0.0.1", True),
        ({"allow": ["smtp.firm.example"]}, "imap.firm.example", False),
        ({"allow": ["*.firm.example:993"]}, "imap.firm.example", True),
    ],
)
def test_the_mailbox_server_must_be_on_the_egress_allow_list(
    tmp_path: Path, egress: dict[str, Any] | None, host: str, allowed: bool
) -> None:
    from batonflow.configuration import Setup

    data: dict[str, Any] = {
        "triggers": {"mailboxes": {"office": {
            "workflow": "trigger_flows:report", "host": host, "username": "u",
            "password_env": "P", "tls": "none" if host == "127.0.0.1" else "tls",
        }}}
    }  # fmt: skip
    if egress is not None:
        data["governance"] = {"egress": egress}
    setup = Setup("batonflow.toml", data)
    sys.path.insert(0, str(HERE))
    try:
        if allowed:
            assert [t.name for t in setup.schedules(None)] == ["office"]
        else:
            with pytest.raises(bf.ConfigError, match=f"mailbox server {host}:"):
                setup.schedules(None)
    finally:
        sys.path.remove(str(HERE))
