"""Alerts: faulted, overdue and expiring-approval alerts, raised once, delivered to a real
webhook receiver and a real SMTP server on loopback, with a real engine and store."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import tomllib
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiosmtpd.controller import Controller

import batonflow as bf
from batonflow._net import make_client
from batonflow.errors import ConfigError
from batonflow.governance._alert_channels import Alert, SmtpChannel, WebhookChannel
from batonflow.governance._alert_config import AlertSettings, parse_duration
from batonflow.governance._alerts import AlertMonitor
from batonflow.store import SQLiteStore, Store, open_store
from batonflow.testing import FakeClock

T = TypeVar("T")
HOUR = 3600.0


# -- real servers on loopback ---------------------------------------------------------------------


@dataclass
class Hook:
    """A webhook receiver: answers each POST with the next of ``statuses`` (then 200)."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for headers, body in self.received]


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.statuses.pop(0) if state.statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            state.arrived.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/batonflow"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[Any]:
        return [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as client:
        yield client


def mail_channel(port: int) -> SmtpChannel:
    return SmtpChannel(
        "127.0.0.1", port, "batonflow@firm.test", ["ops@firm.test", "lead@firm.test"], False
    )


async def with_clock(clock: FakeClock, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` while moving the fake clock past each backoff sleep it starts."""
    task = asyncio.ensure_future(awaitable)
    while not task.done():
        await asyncio.wait({task}, timeout=0.01)  # let real network I/O happen
        deadline = clock.next_deadline()
        if not task.done() and deadline is not None:
            await clock.advance(deadline - clock.now())
    return task.result()


# -- workflows ------------------------------------------------------------------------------------


class CrmDown(Exception):
    pass


async def _log_enquiry(ctx: bf.Context) -> None:
    async def call_crm() -> None:
        raise CrmDown("CRM answered 503")

    await ctx.step(bf.step(call_crm, retry=bf.Retry(max_attempts=1)))


async def _wait_for_reply(ctx: bf.Context) -> str:
    reply: str = await ctx.wait_for_event("reply", key="case-1")
    return reply


FAILING = bf.Workflow(_log_enquiry, name="client-enquiries")
WAITING = bf.Workflow(_wait_for_reply, name="complaints")


async def audit_kinds(store: Store, prefix: str = "alert.") -> list[str]:
    return [r.kind for r in await store.read_audit() if r.kind.startswith(prefix)]


# -- the monitor ----------------------------------------------------------------------------------


async def test_faulted_run_alerts_webhook_and_mail_once(
    store_url: str,
    clock: FakeClock,
    hook: Hook,
    smtp: tuple[Mailbox, int],
    client: httpx.AsyncClient,
) -> None:
    mailbox, port = smtp
    async with bf.Engine(store_url, clock=clock) as engine:
        run = await engine.start(FAILING)
        await engine.settle()
        assert await run.status() is bf.RunStatus.FAULTED
        channels = [
            WebhookChannel(
                hook.url,
                {"X-Team": "ops"},
                client,
                headers_env={"Authorization": "HOOK_AUTH"},
                env={"HOOK_AUTH": "Bearer s3cret"},
            ),
            mail_channel(port),
        ]
        monitor = AlertMonitor(engine.store, clock, channels)
        [alert] = await monitor.check()
        assert await monitor.check() == []  # the same fault is raised once

        short = run.run_id[-8:]
        assert (alert.kind, alert.run_id, alert.workflow) == (
            "run.faulted",
            run.run_id,
            "client-enquiries",
        )
        assert alert.summary == f"run …{short} (client-enquiries) faulted"
        assert "CrmDown: CRM answered 503" in alert.details["error"]

        [(headers, _)] = hook.received
        assert headers["content-type"].startswith("application/cloudevents+json")
        assert (headers["authorization"], headers["x-team"]) == ("Bearer s3cret", "ops")
        [event] = hook.events()
        assert {k: event[k] for k in ("specversion", "type", "source", "id", "subject")} == {
            "specversion": "1.0",
            "type": "batonflow.alert.run.faulted",
            "source": "/batonflow/alerts",
            "id": alert.key,
            "subject": run.run_id,
        }
        assert event["time"] == "2026-01-01T00:00:00.000Z"
        assert event["data"]["summary"] == alert.summary
        assert event["data"]["workflow"] == "client-enquiries"

        [envelope] = mailbox.envelopes
        assert envelope.rcpt_tos == ["ops@firm.test", "lead@firm.test"]
        [mail] = mailbox.messages()
        assert mail["Subject"] == f"[batonflow] run …{short} (client-enquiries) faulted"
        assert (mail["From"], mail["X-Batonflow-Alert"]) == ("batonflow@firm.test", alert.key)
        body = mail.get_payload(decode=True).decode()
        assert f"Run:      {run.run_id}" in body
        assert "CrmDown: CRM answered 503" in body

        store = engine.store
        assert await audit_kinds(store) == ["alert.raised", "alert.sent", "alert.sent"]
        raised = next(r for r in await store.read_audit() if r.kind == "alert.raised")
        assert (raised.run_id, raised.actor) == (run.run_id, "system:alerts")
        record = json.loads(await store.get_record("alert", alert.key) or "{}")
        assert record["state"] == "sent"
        assert [(d["channel"], d["ok"]) for d in record["deliveries"]] == [
            ("webhook:http://127.0.0.1", True),
            (f"smtp:127.0.0.1:{port}", True),
        ]
        trail = json.dumps([r.data_json for r in await store.read_audit()])
        assert "s3cret" not in trail
        assert "s3cret" not in json.dumps(record)


async def test_a_resumed_run_that_faults_again_alerts_again(
    store_url: str, clock: FakeClock, hook: Hook, client: httpx.AsyncClient
) -> None:
    async with bf.Engine(store_url, clock=clock) as engine:
        run = await engine.start(FAILING)
        await engine.settle()
        monitor = AlertMonitor(engine.store, clock, [WebhookChannel(hook.url, {}, client)])
        assert len(await monitor.check()) == 1
        await clock.advance(60)
        await engine.resume(run.run_id)
        await engine.settle()
        assert await run.status() is bf.RunStatus.FAULTED
        [again] = await monitor.check()
        assert again.kind == "run.faulted"
        assert len({e["id"] for e in hook.events()}) == 2


async def test_overdue_run_alerts_once_past_its_workflow_deadline(
    store_url: str, clock: FakeClock, hook: Hook, client: httpx.AsyncClient
) -> None:
    async with bf.Engine(store_url, clock=clock) as engine:
        slow = await engine.start(WAITING)
        other = await engine.start(bf.Workflow(_wait_for_reply, name="no-deadline"))
        await engine.settle()
        channel = WebhookChannel(hook.url, {}, client)
        monitor = AlertMonitor(engine.store, clock, [channel], {"complaints": 4 * HOUR})
        await clock.advance(4 * HOUR - 1)
        assert await monitor.check() == []
        await clock.advance(12 * 60 + 1)
        [alert] = await monitor.check()
        assert (alert.kind, alert.run_id) == ("run.overdue", slow.run_id)
        assert alert.summary.endswith("(complaints) overdue: open 4h 12m, tolerance 4h")
        assert alert.details["status"] == "waiting"
        assert alert.details["deadline_at"] == "2026-01-01T04:00:00Z"
        await clock.advance(HOUR)
        assert await monitor.check() == []
        assert [e["type"] for e in hook.events()] == ["batonflow.alert.run.overdue"]

        # "*" covers every workflow without a deadline of its own
        catch_all = AlertMonitor(engine.store, clock, [channel], {"*": HOUR})
        [late] = await catch_all.check()
        assert late.run_id == other.run_id  # the complaints run already has its alert


async def test_a_runs_own_deadline_applies_where_the_configuration_names_none(
    store_url: str, clock: FakeClock, hook: Hook, client: httpx.AsyncClient
) -> None:
    """A workflow document carries its impact tolerance; the worker passes it as deadline_of."""
    async with bf.Engine(store_url, clock=clock) as engine:
        slow = await engine.start(WAITING)
        other = await engine.start(bf.Workflow(_wait_for_reply, name="no-deadline"))
        await engine.settle()
        own = {slow.run_id: 2 * HOUR}
        monitor = AlertMonitor(
            engine.store, clock, [WebhookChannel(hook.url, {}, client)],
            deadline_of=lambda run: own.get(run.id),
        )  # fmt: skip
        await clock.advance(2 * HOUR - 1)
        assert await monitor.check() == []
        await clock.advance(1)
        [alert] = await monitor.check()
        assert alert.run_id == slow.run_id
        assert other.run_id not in {a.run_id for a in await monitor.check()}


async def test_two_monitors_on_one_database_raise_one_alert(
    store_url: str, clock: FakeClock, hook: Hook, client: httpx.AsyncClient
) -> None:
    async with bf.Engine(store_url, clock=clock) as engine:
        await engine.start(FAILING)
        await engine.settle()
        other_process = open_store(store_url)
        await other_process.open()
        try:
            first = AlertMonitor(engine.store, clock, [WebhookChannel(hook.url, {}, client)])
            second = AlertMonitor(other_process, clock, [WebhookChannel(hook.url, {}, client)])
            assert len(await first.check()) == 1
            assert await second.check() == []
            # and a restarted monitor (no memory) stays silent too
            restarted = AlertMonitor(other_process, clock, [WebhookChannel(hook.url, {}, client)])
            assert await restarted.check() == []
        finally:
            await other_process.close()
        assert len(hook.received) == 1


async def test_monitors_checking_at_the_same_instant_raise_one_alert(
    store_url: str, clock: FakeClock, hook: Hook, client: httpx.AsyncClient
) -> None:
    """On SQLite and PostgreSQL: several monitor processes, one alert."""
    async with bf.Engine(store_url, clock=clock) as engine:
        await engine.start(FAILING)
        await engine.settle()
        stores = [open_store(store_url) for _ in range(3)]  # three processes, say
        for store in stores:
            await store.open()
        try:
            monitors = [
                AlertMonitor(store, clock, [WebhookChannel(hook.url, {}, client)])
                for store in stores
            ]
            results = await asyncio.gather(*(m.check() for m in monitors))
            assert await monitors[0].check() == []
        finally:
            for store in stores:
                await store.close()
        assert sorted(len(r) for r in results) == [0, 0, 1]
        assert len(hook.received) == 1
        [[alert]] = [r for r in results if r]
        raised = [r for r in await engine.store.read_audit() if r.kind == "alert.raised"]
        assert {json.loads(r.data_json)["key"] for r in raised} == {alert.key}
        assert len(raised) == 1


async def test_expiring_approval_alerts_once(
    store_url: str,
    clock: FakeClock,
    smtp: tuple[Mailbox, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailbox, port = smtp
    async with bf.Engine(store_url, clock=clock) as engine:
        run = await engine.start(WAITING)
        await engine.settle()
        now = clock.now()
        store = engine.store
        approval = {"run_id": run.run_id, "title": "Refund over limit", "status": "pending"}
        await store.put_record(
            "approval", "apr-1", json.dumps({**approval, "expires_at": now + 2 * HOUR}), now
        )
        decided = {**approval, "status": "approved", "expires_at": now + 60}
        await store.put_record("approval", "apr-2", json.dumps(decided), now)
        never = {**approval, "expires_at": None}
        await store.put_record("approval", "apr-3", json.dumps(never), now)
        broken = {"title": "no run", "expires_at": now}
        await store.put_record("approval", "apr-4", json.dumps(broken), now)
        monitor = AlertMonitor(store, clock, [mail_channel(port)], expiring_within=HOUR)
        with caplog.at_level(logging.ERROR, logger="batonflow.alerts"):
            assert await monitor.check() == []
            assert await monitor.check() == []
        assert caplog.text.count("approval record 'apr-4' cannot be checked") == 1
        await clock.advance(HOUR + 15 * 60)
        [alert] = await monitor.check()
        assert await monitor.check() == []
        assert (alert.kind, alert.workflow) == ("approval.expiring", "complaints")
        assert alert.summary == (
            f"approval 'Refund over limit' on run …{run.run_id[-8:]} (complaints) expires in 45m"
        )
        [mail] = mailbox.messages()
        assert mail["Subject"] == f"[batonflow] {alert.summary}"

        # the approval was extended: a new expiry is a new occurrence
        extended = {**approval, "expires_at": clock.now() + 30 * 60}
        await store.put_record("approval", "apr-1", json.dumps(extended), clock.now())
        expected = f"approval.expiring:apr-1:{extended['expires_at']:.3f}"
        assert [a.key for a in await monitor.check()] == [expected]


async def test_a_channel_that_stays_down_is_retried_then_recorded_and_the_rest_still_work(
    store_url: str,
    clock: FakeClock,
    hook: Hook,
    smtp: tuple[Mailbox, int],
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailbox, port = smtp
    down = WebhookChannel(f"http://127.0.0.1:{free_port()}/nobody-listens", {}, client)
    flaky = WebhookChannel(hook.url, {}, client)
    hook.statuses = [503, 503]  # down twice, then up
    async with bf.Engine(store_url, clock=clock) as engine:
        await engine.start(FAILING)
        await engine.settle()
        monitor = AlertMonitor(
            engine.store, clock, [down, flaky, mail_channel(port)], attempts=3, retry_delay=5
        )
        started = clock.now()
        with caplog.at_level(logging.ERROR, logger="batonflow.alerts"):
            [alert] = await with_clock(clock, monitor.check())
        assert clock.now() - started >= 5 + 10  # two backoffs, doubling
        assert len(hook.received) == 3
        assert len(mailbox.envelopes) == 1
        assert "ALERT NOT DELIVERED via webhook:http://127.0.0.1 after 3 attempt(s)" in caplog.text

        store = engine.store
        outcomes = [
            (r.kind, json.loads(r.data_json)["attempts"])
            for r in await store.read_audit()
            if r.kind in ("alert.sent", "alert.failed")
        ]
        assert sorted(outcomes) == [("alert.failed", 3), ("alert.sent", 1), ("alert.sent", 3)]
        record = json.loads(await store.get_record("alert", alert.key) or "{}")
        assert record["state"] == "partly sent"

        # the monitor keeps going: the next occurrence is raised and delivered as usual
        await engine.start(FAILING)
        await engine.settle()
        assert len(await with_clock(clock, monitor.check())) == 1
        assert len(mailbox.envelopes) == 2


async def test_a_refusal_is_not_retried(
    store_url: str, clock: FakeClock, hook: Hook, client: httpx.AsyncClient
) -> None:
    hook.statuses = [401]
    missing_secret = WebhookChannel(
        hook.url, {}, client, headers_env={"Authorization": "UNSET_VAR"}, env={}
    )
    async with bf.Engine(store_url, clock=clock) as engine:
        await engine.start(FAILING)
        await engine.settle()
        channels = [WebhookChannel(hook.url, {}, client), missing_secret]
        monitor = AlertMonitor(engine.store, clock, channels)
        [alert] = await monitor.check()  # no backoff sleep: nothing to drive
        record = json.loads(await engine.store.get_record("alert", alert.key) or "{}")
        assert record["state"] == "failed"
        errors = sorted(d["error"] for d in record["deliveries"])
        assert "HTTP 401; not retrying" in errors[0]
        assert errors[1].endswith("environment variable UNSET_VAR is not set")
        assert [d["attempts"] for d in record["deliveries"]] == [1, 1]
        assert len(hook.received) == 1


async def test_run_loops_on_the_clock_and_survives_a_store_that_is_down(
    db_path: Path,
    clock: FakeClock,
    hook: Hook,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SQLiteStore(db_path)  # not open yet: every check fails
    monitor = AlertMonitor(store, clock, [WebhookChannel(hook.url, {}, client)])
    with caplog.at_level(logging.ERROR, logger="batonflow.alerts"):
        loop = asyncio.create_task(monitor.run(60))
        try:
            await clock.advance(0)  # the first check, at once
            await clock.advance(60)
            assert caplog.text.count("alert check failed; retrying in 60s") == 2
            assert not loop.done()
            async with bf.Engine(str(db_path), clock=clock) as engine:
                await engine.start(FAILING)
                await engine.settle()
                await store.open()
                await clock.advance(60)
                assert await asyncio.to_thread(hook.arrived.wait, 10)
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop
            await store.close()
    assert [e["type"] for e in hook.events()] == ["batonflow.alert.run.faulted"]


# -- channels and configuration -------------------------------------------------------------------


def alert_now() -> Alert:
    return Alert("run.overdue", "r1", "wf", "run r1 (wf) overdue", 0.0, "run.overdue:r1")


async def test_webhook_url_and_headers_from_the_environment(
    hook: Hook, client: httpx.AsyncClient
) -> None:
    env = {"HOOK_URL": hook.url, "HOOK_TOKEN": "t0ken"}
    channel = WebhookChannel(
        None, {}, client, url_env="HOOK_URL", headers_env={"X-Token": "HOOK_TOKEN"}, env=env
    )
    await channel.send(alert_now())
    [(headers, _)] = hook.received
    assert headers["x-token"] == "t0ken"
    with pytest.raises(ConfigError, match=r"^webhook:\$HOOK_URL: environment variable HOOK_URL"):
        await WebhookChannel(None, {}, client, url_env="HOOK_URL", env={}).send(alert_now())


class Picky(Mailbox):
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("gone@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def test_smtp_refusals_are_final_and_name_the_recipient() -> None:
    port = free_port()
    controller = Controller(Picky(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        partly = SmtpChannel(
            "127.0.0.1", port, "b@firm.test", ["ops@firm.test", "gone@firm.test"], False
        )
        with pytest.raises(ConfigError, match=r"refused gone@firm\.test \(delivered to the other"):
            await partly.send(alert_now())
        nobody = SmtpChannel("127.0.0.1", port, "b@firm.test", ["gone@firm.test"], False)
        with pytest.raises(ConfigError, match=r"refused every recipient \(gone@firm\.test"):
            await nobody.send(alert_now())
    finally:
        controller.stop()
    with pytest.raises(ConnectionError, match=f"smtp:127.0.0.1:{port}: SMTPConnect"):
        await partly.send(alert_now())  # the server is gone: worth another try


def test_secrets_stay_out_of_webhook_configuration(client: httpx.AsyncClient) -> None:
    with pytest.raises(ConfigError, match="headers_env"):
        WebhookChannel("https://hooks.firm.test/x", {"Authorization": "Bearer x"}, client)
    with pytest.raises(ConfigError, match="credentials in the URL"):
        WebhookChannel("https://user:pw@hooks.firm.test/x", {}, client)
    channel = WebhookChannel(None, {}, client, url_env="HOOK_URL")
    assert channel.name == "webhook:$HOOK_URL"
    assert repr(channel) == "WebhookChannel('webhook:$HOOK_URL')"
    with pytest.raises(ConfigError, match="never sent in clear"):
        SmtpChannel("smtp.firm.test", 25, "a@firm.test", ["b@firm.test"], False, "u", "PW")


def test_durations() -> None:
    assert parse_duration("PT4H", "x") == 4 * HOUR
    assert parse_duration("P1DT12H30M", "x") == 36.5 * HOUR
    assert parse_duration("pt90s", "x") == 90
    assert parse_duration("P2W", "x") == 14 * 24 * HOUR
    for bad in ("P1Y", "P1M", "PT", "P", "4h", 3600, "PT1H30"):
        with pytest.raises(ConfigError, match=r"^f\.toml: k: expected an ISO 8601 duration"):
            parse_duration(bad, "f.toml: k")


CONFIG = """
[governance.alerts]
deadlines = { client-enquiries = "PT4H", "*" = "P1D" }
expiring_within = "PT30M"
interval = "PT5M"

[[governance.alerts.webhooks]]
url = "https://ops.firm.test/hooks/batonflow"
headers = { X-Team = "ops" }
headers_env = { Authorization = "ALERT_WEBHOOK_AUTH" }

[[governance.alerts.webhooks]]
url_env = "SLACK_WEBHOOK_URL"

[governance.alerts.smtp]
host = "smtp.firm.test"
sender = "batonflow@firm.test"
to = ["ops@firm.test"]
username = "batonflow"
password_env = "ALERT_SMTP_PASSWORD"
"""


def test_settings_parse(client: httpx.AsyncClient) -> None:
    table = tomllib.loads(CONFIG)["governance"]["alerts"]
    settings = AlertSettings.parse(table, "batonflow.toml")
    assert settings.deadlines == {"client-enquiries": 4 * HOUR, "*": 24 * HOUR}
    assert (settings.expiring_within, settings.interval) == (1800, 300)
    assert settings.webhooks[0].headers_env == {"Authorization": "ALERT_WEBHOOK_AUTH"}
    assert settings.webhooks[1].url_env == "SLACK_WEBHOOK_URL"
    smtp = settings.smtp
    assert smtp is not None
    assert (smtp.port, smtp.starttls, smtp.tls, smtp.to) == (587, True, False, ("ops@firm.test",))
    names = [c.name for c in settings.channels(client, env={})]
    assert names == ["webhook:https://ops.firm.test", "webhook:$SLACK_WEBHOOK_URL",
                     "smtp:smtp.firm.test:587"]  # fmt: skip
    assert AlertSettings.parse({}, "b.toml") == AlertSettings()


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        ({"deadline": "PT1H"}, "governance.alerts.deadline: unknown key"),
        ({"deadlines": {"wf": "4 hours"}}, "governance.alerts.deadlines.wf: expected an ISO"),
        ({"deadlines": {"wf": "PT0S"}}, "governance.alerts.deadlines.wf: expected a duration"),
        ({"expiring_within": 60}, "governance.alerts.expiring_within: expected an ISO 8601"),
        ({"interval": "PT0S"}, "governance.alerts.interval: expected a duration above zero"),
        ({"deadlines": "PT1H"}, "governance.alerts.deadlines: expected a table"),
        ({"webhooks": {"url": "x"}}, "governance.alerts.webhooks: expected an array of tables"),
        ({"webhooks": [{}]}, r"governance.alerts.webhooks\[0\]: give exactly one of url and"),
        (
            {"webhooks": [{"url": "https://h.test", "headers": {"X-Api-Key": "k"}}]},
            r"webhooks\[0\]: header 'X-Api-Key' carries a credential",
        ),
        ({"webhooks": [{"url": "ftp://h.test"}]}, r"webhooks\[0\]: url: expected an http"),
        ({"smtp": {"sender": "a@b.test", "to": ["c@d.test"]}}, "smtp.host: missing"),
        ({"smtp": {"host": "h", "sender": "a@b", "to": []}}, "smtp.to: expected a list of e-mail"),
        (
            {"smtp": {"host": "h", "sender": "a@b", "to": "c@d", "port": "25"}},
            "governance.alerts.smtp.port: expected an integer from 1 to 65535, got '25'",
        ),
        (
            {"smtp": {"host": "h", "sender": "a@b", "to": "c@d", "password": "x"}},
            "governance.alerts.smtp.password: unknown key",
        ),
        (
            {"smtp": {"host": "h", "sender": "a@b", "to": "c@d", "starttls": "yes"}},
            "governance.alerts.smtp.starttls: expected true or false",
        ),
        (
            {"smtp": {"host": "h", "sender": "a@b", "to": "c@d", "username": "u"}},
            "governance.alerts.smtp: username and password_env go together",
        ),
    ],
)
def test_settings_errors_name_the_file_and_key(edit: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError, match=f"^batonflow.toml: .*{error}"):
        AlertSettings.parse(edit, "batonflow.toml")


def test_alert_as_cloudevent_is_plain_json() -> None:
    alert = Alert("run.overdue", "r1", "wf", "run r1 (wf) overdue", 1.5, "run.overdue:r1", {})
    assert alert.to_dict()["at"] == "1970-01-01T00:00:01.500Z"


# -- plain relays and STARTTLS ------------------------------------------------------------------

ALERT = Alert(
    "run.faulted", "0193ab4c", "client-enquiries", "run 0193ab4c (client-enquiries) faulted",
    1_800_000_000.0, "run.faulted:0193ab4c:1800000000.000",
)  # fmt: skip


async def test_a_plain_relay_is_a_configuration_choice(smtp: tuple[Mailbox, int]) -> None:
    """``tls = "none"``: the relay offers no STARTTLS and the alert is delivered all the same."""
    mailbox, port = smtp
    table = {"smtp": {"host": "127.0.0.1", "port": port, "sender": "b@firm.test",
                      "to": ["ops@firm.test"], "tls": "none"}}  # fmt: skip
    settings = AlertSettings.parse(table, "batonflow.toml")
    assert settings.smtp is not None
    assert (settings.smtp.starttls, settings.smtp.tls) == (False, False)
    async with make_client() as client:
        (channel,) = settings.channels(client)
        await channel.send(ALERT)
    (message,) = mailbox.messages()
    assert message["Subject"] == ALERT.subject


async def test_a_relay_refusing_starttls_is_a_clear_error_not_retried(
    smtp: tuple[Mailbox, int], clock: FakeClock, db_path: Path
) -> None:
    mailbox, port = smtp
    channel = SmtpChannel("127.0.0.1", port, "b@firm.test", ["ops@firm.test"], True)
    with pytest.raises(ConfigError, match=r'does not offer STARTTLS.*tls = "none"') as refused:
        await channel.send(ALERT)
    assert not refused.value.retryable
    # raised through a monitor: one attempt, recorded as failed, nothing sent
    store = SQLiteStore(db_path)
    await store.open()
    try:
        monitor = AlertMonitor(store, clock, [channel])
        assert await monitor.dispatcher.raise_(ALERT) is True
        record = json.loads(await store.get_record("alert", ALERT.key) or "{}")
    finally:
        await store.close()
    assert record["state"] == "failed"
    assert record["deliveries"][0]["attempts"] == 1
    assert mailbox.envelopes == []


@pytest.mark.parametrize(
    ("smtp", "expected"),
    [
        ({"tls": "none"}, (587, False, False)),
        ({"tls": "starttls"}, (587, True, False)),
        ({"tls": "implicit"}, (465, False, True)),
        ({"tls": True}, (465, False, True)),
        ({"starttls": False}, (587, False, False)),
        ({}, (587, True, False)),
    ],
)
def test_tls_modes_are_read(smtp: dict[str, Any], expected: tuple[int, bool, bool]) -> None:
    table = {"smtp": {"host": "h", "sender": "a@b.test", "to": ["c@d.test"], **smtp}}
    settings = AlertSettings.parse(table, "batonflow.toml").smtp
    assert settings is not None
    assert (settings.port, settings.starttls, settings.tls) == expected


@pytest.mark.parametrize(
    ("smtp", "message"),
    [
        ({"tls": "plain"}, 'governance.alerts.smtp.tls: expected "none" (a plain relay)'),
        ({"tls": "none", "starttls": True}, "tls = 'none' contradicts starttls = True"),
        ({"tls": 1}, 'governance.alerts.smtp.tls: expected "none", "starttls" or "implicit"'),
        (
            {"tls": "none", "username": "u", "password_env": "P"},
            "a password needs starttls or tls",
        ),
    ],
)
def test_bad_tls_settings_are_refused(smtp: dict[str, Any], message: str) -> None:
    table = {"smtp": {"host": "h", "sender": "a@b.test", "to": ["c@d.test"], **smtp}}
    with pytest.raises(ConfigError, match=re.escape(message)):
        AlertSettings.parse(table, "batonflow.toml")


def test_the_email_function_reads_the_same_tls_modes() -> None:
    from batonflow.catalog._email import parse_smtp_settings

    base = {"host": "h", "sender": "a@b.test"}
    plain = parse_smtp_settings({"email": {**base, "tls": "none"}}, "f.toml")
    assert (plain.port, plain.starttls, plain.tls) == (25, False, False)
    upgraded = parse_smtp_settings({"email": {**base, "tls": "starttls", "port": 587}}, "f.toml")
    assert (upgraded.starttls, upgraded.tls) == (True, False)
    implicit = parse_smtp_settings({"email": {**base, "tls": "implicit"}}, "f.toml")
    assert (implicit.port, implicit.tls) == (465, True)
    with pytest.raises(ConfigError, match=r"f\.toml: email\.tls: expected \"none\""):
        parse_smtp_settings({"email": {**base, "tls": "sometimes"}}, "f.toml")


async def test_the_email_function_names_a_refused_starttls(smtp: tuple[Mailbox, int]) -> None:
    from batonflow.catalog._email import EmailRejected, Mailer, SmtpSettings

    _, port = smtp
    mailer = Mailer(SmtpSettings("127.0.0.1", "care@firm.test", port=port, starttls=True))
    (send,) = mailer.functions().values()
    with pytest.raises(EmailRejected, match=r'STARTTLS.*set tls = "none" in \[email\]'):
        await send(to="x@firm.test", subject="s", body="b")


# -- an outage longer than the retries ----------------------------------------------------------


async def test_an_alert_a_channel_missed_is_delivered_again_once_it_is_back(
    hook: Hook, clock: FakeClock, db_path: Path
) -> None:
    hook.statuses = [503, 503]  # down for the first delivery and the first round
    store = SQLiteStore(db_path)
    await store.open()
    try:
        async with make_client() as client:
            channel = WebhookChannel(hook.url, {}, client)
            first = AlertMonitor(store, clock, [channel], attempts=1)
            other = AlertMonitor(store, clock, [channel], attempts=1)  # another process
            assert await first.dispatcher.raise_(ALERT) is True
            record = json.loads(await store.get_record("alert", ALERT.key) or "{}")
            assert record["state"] == "failed"
            assert await first.check() == []
            assert first.next_due == clock.now() + 60  # the monitor wakes for the next round
            await clock.advance(60)
            await asyncio.gather(first.check(), other.check())  # both find it due: one round
            assert len(hook.received) == 2
            # still down: the one that made the round waits longer for the next
            assert {first.next_due, other.next_due} - {None} == {clock.now() + 120}
            await clock.advance(120)
            await asyncio.gather(first.check(), other.check())
            record = json.loads(await store.get_record("alert", ALERT.key) or "{}")
            assert await store.list_records("alert.pending") == []
            await clock.advance(3600)
            await first.check()  # nothing is left to deliver
    finally:
        await store.close()
    assert record["state"] == "sent"
    assert len(hook.received) == 3
    assert {e["id"] for e in hook.events()} == {ALERT.key}  # a receiver can drop repeats


async def test_a_delivery_abandoned_by_a_dead_process_is_finished_by_the_monitor(
    hook: Hook, clock: FakeClock, db_path: Path
) -> None:
    """The process raised the alert (the record says so) and died before it delivered it."""
    store = SQLiteStore(db_path)
    await store.open()
    try:
        async with make_client() as client:
            channel = WebhookChannel(hook.url, {}, client)
            dying = AlertMonitor(store, clock, [channel])
            assert await dying.dispatcher.claim(ALERT)
            await dying.dispatcher._pending(ALERT, [channel.name], 0, clock.now() + 300)
            monitor = AlertMonitor(store, clock, [channel])
            await monitor.check()
            assert hook.received == []  # it may still be delivering: wait
            await clock.advance(300)
            await monitor.check()
            record = json.loads(await store.get_record("alert", ALERT.key) or "{}")
    finally:
        await store.close()
    assert record["state"] == "sent"
    assert len(hook.received) == 1
