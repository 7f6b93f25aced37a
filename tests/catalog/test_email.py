"""The ``email`` catalog function against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import email.policy
import hashlib
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

import batonflow as bf
from batonflow.catalog._email import (
    EmailDeferred,
    EmailRejected,
    InvalidEmailAddress,
    Mailer,
    SmtpSettings,
    load_smtp_settings,
    parse_smtp_settings,
)
from batonflow.core._trail import collecting
from batonflow.errors import ConfigError
from batonflow.testing import FakeClock


class Sink:
    """An SMTP handler that keeps every message it is given and answers as scripted:
    ``rcpt`` maps a recipient to its RCPT reply; ``data`` replies to DATA in turn."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.rcpt: dict[str, str] = {}
        self.data: list[str] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        reply = self.rcpt.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return self.data.pop(0) if self.data else "250 Message accepted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def mailer_for(port: int, clock: FakeClock | None = None) -> Mailer:
    settings = SmtpSettings(host="127.0.0.1", port=port, sender="Desk <desk@example.org>")
    return Mailer(settings, clock=clock)


async def test_a_message_arrives_with_its_headers(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    clock = FakeClock(start=1_700_000_000.0)
    with collecting() as trail:
        result = await mailer_for(port, clock).send_email(
            to=["Ann <ann@example.com>", "bo@example.net"],
            cc="cc@example.com",
            reply_to="help@example.org",
            subject="Your enquiry",
            body="Dear Ann,\n\nthank you. Ünïcode too.\n",
        )
    (message,) = handler.messages
    assert message["From"] == "Desk <desk@example.org>"
    assert message["To"] == "Ann <ann@example.com>, bo@example.net"
    assert message["Cc"] == "cc@example.com"
    assert message["Reply-To"] == "help@example.org"
    assert message["Subject"] == "Your enquiry"
    assert message["Date"].datetime.timestamp() == 1_700_000_000.0  # the injected clock
    assert message["Message-ID"] == result["message_id"]
    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == "Dear Ann,\n\nthank you. Ünïcode too.\n"
    assert handler.envelopes == [
        ("desk@example.org", ["ann@example.com", "bo@example.net", "cc@example.com"])
    ]
    assert result["accepted"] == 3
    assert result["refused"] == {}
    (entry,) = trail
    assert entry.kind == "email.sent"
    assert entry.data == {
        "to_count": 3,
        "subject_len": len("Your enquiry"),
        "message_id": result["message_id"],
        "smtp_host": "127.0.0.1",
        "refused_count": 0,
    }
    assert "ann" not in repr(entry.data)
    assert "Dear" not in repr(entry.data)


async def test_a_sender_argument_overrides_the_configured_one(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    await mailer_for(port).send_email(
        to="ann@example.com", subject="s", body="b", sender="care@example.org"
    )
    assert handler.messages[0]["From"] == "care@example.org"
    assert handler.envelopes[0][0] == "care@example.org"


async def test_a_retried_step_resends_the_same_message_id(
    tmp_path: Path, sink: tuple[Sink, int]
) -> None:
    handler, port = sink
    handler.data = ["451 4.3.0 Mailbox busy, try again later"]  # the first attempt is deferred
    send = bf.step(
        mailer_for(port).send_email,
        name="confirm",
        retry=bf.Retry(max_attempts=3, initial_delay=0, jitter=0),
    )

    async def confirm(ctx: bf.Context, to: str) -> Any:
        return await ctx.step(send, to=to, subject="Resolved", body="Done.")

    workflow = bf.Workflow(confirm, name="confirm")
    async with bf.Engine(tmp_path / "runs.db", workflows=[workflow]) as engine:
        handle = await engine.start(workflow, "ann@example.com")
        result = await handle.result()
        (step,) = await engine.store.load_steps(handle.run_id)
    first, second = handler.messages  # the deferred attempt reached DATA, then the retry
    key = f"{handle.run_id}:{step.step_id}"
    expected = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}.batonflow@example.org>"
    assert first["Message-ID"] == second["Message-ID"] == result["message_id"] == expected


async def test_a_4xx_answer_is_retryable(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    handler.data = ["451 4.3.0 Mailbox busy, try again later"]
    with collecting() as trail, pytest.raises(EmailDeferred) as raised:
        await mailer_for(port).send_email(to="ann@example.com", subject="s", body="b")
    assert raised.value.retryable is True
    assert raised.value.code == 451
    assert "Mailbox busy" in raised.value.reply
    assert bf.Retry().should_retry(raised.value, attempt=1) is True
    assert [(e.kind, e.data["code"], e.data["retryable"]) for e in trail] == [
        ("email.failed", 451, True)
    ]


async def test_a_5xx_answer_is_permanent_and_carries_the_reply(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    handler.data = ["554 5.7.1 Message rejected as spam"]
    with pytest.raises(EmailRejected) as raised:
        await mailer_for(port).send_email(to="ann@example.com", subject="s", body="b")
    assert raised.value.retryable is False
    assert raised.value.code == 554
    assert raised.value.reply == "554 5.7.1 Message rejected as spam"
    assert "554 5.7.1 Message rejected as spam" in str(raised.value)
    assert bf.Retry().should_retry(raised.value, attempt=1) is False


async def test_a_permanent_failure_is_not_retried_by_the_kernel(
    tmp_path: Path, sink: tuple[Sink, int]
) -> None:
    handler, port = sink
    handler.rcpt = {"gone@example.com": "550 5.1.1 No such user"}
    send = bf.step(
        mailer_for(port).send_email,
        name="confirm",
        retry=bf.Retry(max_attempts=5, initial_delay=0, jitter=0),
    )

    async def confirm(ctx: bf.Context, to: str) -> Any:
        return await ctx.step(send, to=to, subject="Resolved", body="Done.")

    workflow = bf.Workflow(confirm, name="confirm")
    async with bf.Engine(tmp_path / "runs.db", workflows=[workflow]) as engine:
        handle = await engine.start(workflow, "gone@example.com")
        with pytest.raises(bf.RunFailed, match=r"550 5\.1\.1 No such user") as raised:
            await handle.result()
        (step,) = await engine.store.load_steps(handle.run_id)
    cause = raised.value.__cause__
    assert isinstance(cause, EmailRejected)  # rebuilt from the journal, with the reply
    assert (cause.code, cause.reply) == (550, "550 5.1.1 No such user")
    assert step.attempts == 1
    assert handler.messages == []


async def test_some_recipients_refused_is_reported_not_raised(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    handler.rcpt = {"gone@example.com": "550 5.1.1 No such user"}
    result = await mailer_for(port).send_email(
        to=["ann@example.com", "gone@example.com"], subject="s", body="b"
    )
    assert result["accepted"] == 1
    assert result["refused"] == {"gone@example.com": "550 5.1.1 No such user"}
    assert handler.envelopes == [("desk@example.org", ["ann@example.com"])]


async def test_a_refused_connection_is_retryable() -> None:
    with pytest.raises(EmailDeferred, match="cannot deliver to SMTP server") as raised:
        await mailer_for(free_port()).send_email(to="ann@example.com", subject="s", body="b")
    assert raised.value.retryable is True
    assert raised.value.code == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"to": "ann.example.com"}, r"email.to: 'ann.example.com' has no '@'"),
        ({"to": "ann@"}, r"email.to: 'ann@' has no valid domain"),
        ({"to": ["ok@example.com", "a b@example.com"]}, r"email.to\[1\]: .* not one e-mail"),
        ({"to": "a@example.com, b@example.com"}, r"email.to: .* not one e-mail address"),
        ({"to": []}, r"email.to: expected an address or a non-empty list"),
        ({"cc": "x@-bad-.com"}, r"email.cc: .* no valid domain"),
        ({"reply_to": "a\r\nBcc: evil@example.com"}, r"email.reply_to: .* line break"),
        ({"sender": "nobody"}, r"email.sender: 'nobody' has no '@'"),
        ({"subject": "two\nlines"}, r"email.subject: must be one line"),
        ({"body": 42}, r"email.body: expected a string, got int"),
    ],
)
async def test_bad_input_is_refused_before_connecting(
    arguments: dict[str, Any], message: str
) -> None:
    call = {"to": "ann@example.com", "subject": "s", "body": "b", **arguments}
    # nothing listens on this port: had the mailer connected, it would raise EmailDeferred
    with pytest.raises(ConfigError, match=message):
        await mailer_for(free_port()).send_email(**call)


async def test_an_invalid_address_is_its_own_error() -> None:
    with pytest.raises(InvalidEmailAddress):
        await mailer_for(free_port()).send_email(to="nope", subject="s", body="b")


def test_functions_name_the_catalog_function() -> None:
    mailer = mailer_for(2525)
    assert mailer.functions() == {"email": mailer.send_email}
    assert mailer.functions("mail_") == {"mail_email": mailer.send_email}


# -- settings ---------------------------------------------------------------------------------


def test_settings_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "batonflow.toml"
    path.write_text(
        '[email]\nhost = "smtp.example.org"\nport = 587\nsender = "desk@example.org"\n'
        'starttls = true\nusername = "desk"\npassword_env = "SMTP_PASSWORD"\ntimeout = 10\n'
    )
    settings = load_smtp_settings(path)
    assert (settings.host, settings.port, settings.sender) == (
        "smtp.example.org",
        587,
        "desk@example.org",
    )
    assert (settings.starttls, settings.tls, settings.timeout) == (True, False, 10.0)
    assert settings.password({"SMTP_PASSWORD": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError, match=r"batonflow.toml: email.password_env: .*SMTP_PASSWORD"):
        settings.password({})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (None, r"cfg.toml: \[email\] table is missing"),
        ({"sender": "a@example.org"}, r"cfg.toml: email.host: required"),
        ({"host": "h"}, r"cfg.toml: email.sender: required"),
        ({"host": "h", "sender": "a@example.org", "prot": 25}, r"email.prot: unknown key"),
        ({"host": "h", "sender": "a@example.org", "port": "25"}, r"email.port: expected int"),
        ({"host": "h", "sender": "a@example.org", "port": True}, r"email.port: expected int"),
        ({"host": "h", "sender": "a@example.org", "starttls": 1}, r"email.starttls: expected bool"),
        ({"host": "h", "sender": "a@example.org", "port": 0}, r"email.port: must be 1-65535"),
        ({"host": "h", "sender": "nobody"}, r"cfg.toml: email.sender: 'nobody' has no '@'"),
        (
            {"host": "h", "sender": "a@example.org", "starttls": True, "tls": True},
            r"starttls and tls exclude each other",
        ),
        (
            {"host": "h", "sender": "a@example.org", "username": "u"},
            r"username and password_env go together",
        ),
    ],
)
def test_bad_settings_name_the_file_and_key(table: dict[str, Any] | None, message: str) -> None:
    data = {} if table is None else {"email": table}
    with pytest.raises(ConfigError, match=message):
        parse_smtp_settings(data, "cfg.toml")


def test_an_unreadable_or_invalid_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_smtp_settings(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[email\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_smtp_settings(broken)


async def test_starttls_required_but_not_offered_is_permanent(sink: tuple[Sink, int]) -> None:
    _, port = sink
    settings = SmtpSettings(host="127.0.0.1", port=port, sender="desk@example.org", starttls=True)
    with pytest.raises(EmailRejected, match="STARTTLS"):
        await Mailer(settings).send_email(to="ann@example.com", subject="s", body="b")


async def test_a_server_that_never_answers_times_out_retryably() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = int(silent.getsockname()[1])
        settings = SmtpSettings(host="127.0.0.1", port=port, sender="d@example.org", timeout=0.2)
        with pytest.raises(EmailDeferred, match="cannot deliver"):
            await Mailer(settings).send_email(to="ann@example.com", subject="s", body="b")
