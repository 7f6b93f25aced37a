"""Deciding from an e-mail against a real serve and a real SMTP server on loopback: the
notification carries a signed link; opening it decides nothing; the form post decides as the
person the link was sent to; the link then stops working, and a forged one never worked."""

from __future__ import annotations

import email
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import expect

from server.harness import Server

from .conftest import (
    FLOWS,
    audit_of,
    in_thread,
    save_screenshot,
    seed_people,
    start_run,
    wait_for_status,
)

EMAIL = {"from": "pat@customer.example", "from_name": "Pat", "subject": "Refund please",
         "body": "I was charged twice for order 42."}  # fmt: skip
_SMTP_PORTS: dict[int, int] = {}
_LINK = re.compile(r"(http://127\.0\.0\.1:\d+/approvals/link/\S+)")


class Catcher:
    """An SMTP server's handler that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Catcher]:
    catcher = Catcher()
    port = _free_port()
    smtp = Controller(catcher, hostname="127.0.0.1", port=port)
    smtp.start()
    _SMTP_PORTS[id(catcher)] = port
    try:
        yield catcher
    finally:
        smtp.stop()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, mailbox: Catcher) -> Iterator[Server]:
    where = tmp_path_factory.mktemp("console-mail")
    port = _free_port()
    smtp_port = _smtp_port(mailbox)
    (where / "batonflow.toml").write_text(
        f"""
[console]
url = "http://127.0.0.1:{port}"

[email]
host = "127.0.0.1"
port = {smtp_port}
sender = "batonflow@firm.example"
"""
    )
    db = str(where / "runs.db")
    tokens = in_thread(lambda: seed_people(db))
    extra = ("--workflow", f"{FLOWS}:complaint", "--port", str(port))
    running = Server(db, where, extra=extra).start()
    running.tokens = tokens  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        running.stop()


def _smtp_port(mailbox: Catcher) -> int:
    return _SMTP_PORTS[id(mailbox)]


def _mail_to(mailbox: Catcher, address: str, timeout: float = 20.0) -> email.message.Message:
    """The first message to ``address`` (a real SMTP server: poll until it arrives)."""
    deadline = time.monotonic() + timeout
    while True:
        for message in mailbox.messages:
            if message["To"] == address:
                return message
        if time.monotonic() > deadline:
            raise AssertionError(f"no message to {address}: {[m['To'] for m in mailbox.messages]}")
        time.sleep(0.05)


def test_a_decision_from_an_emailed_link(
    page: Any, console: Server, mailbox: Catcher, axe: Callable[[Any], None]
) -> None:
    run_id = start_run(console, "complaint", EMAIL)
    wait_for_status(console, run_id, "waiting")
    message = _mail_to(mailbox, "carol@firm.example")
    assert message["Subject"] == "To decide: Reply to Pat: Refund please"
    found = _LINK.search(message.get_payload(decode=True).decode())
    assert found is not None
    link = found[1]

    # a mail scanner opens the link: nothing is decided
    assert httpx.get(link).status_code == 200
    page.goto(link)
    assert "opened from the e-mail sent to carol" in page.locator("main").inner_text()
    assert wait_for_status(console, run_id, "waiting")["status"] == "waiting"
    axe(page)
    save_screenshot(page, "decide-from-email")
    page.get_by_label("Comment").fill("Approved from my phone.")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Thank you: your decision is recorded"
    )
    assert wait_for_status(console, run_id, "completed")["status"] == "completed"
    assert [e["actor"] for e in audit_of(console, "console.link_used")] == ["carol"]

    reply = page.goto(link)
    assert reply.status == 410
    assert "already used" in page.locator(".reason").inner_text()
    mac = link.rpartition(".")[2]
    forged = link.replace(mac, mac[::-1])
    reply = page.goto(forged)
    assert reply.status == 410
    assert "damaged or was not made by this batonflow" in page.locator(".reason").inner_text()


def test_each_decider_is_mailed_once_and_people_outside_the_group_not_at_all(
    console: Server, mailbox: Catcher
) -> None:
    run_id = start_run(console, "complaint", {**EMAIL, "from": "rita@customer.example"})
    wait_for_status(console, run_id, "waiting")
    deadline = time.monotonic() + 20
    while not (mailed := _mailed(console, run_id)):  # a real server: poll the trail
        assert time.monotonic() < deadline, "no approval e-mail was recorded"
        time.sleep(0.05)
    assert [e["actor"] for e in mailed] == ["carol"]
    to_carol = [m for m in mailbox.messages if m["To"] == "carol@firm.example"]
    assert len(to_carol) == 2  # one for each run of this module
    assert all(m["To"] == "carol@firm.example" for m in mailbox.messages)


def _mailed(console: Server, run_id: str) -> list[dict[str, Any]]:
    return [e for e in audit_of(console, "console.approval_mailed") if e["run_id"] == run_id]
