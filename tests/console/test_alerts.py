"""The console's alerts page in a real browser: open alerts, acknowledging one (a form post
through the rule the API uses), the refusal for a role that may not, and CSRF."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import batonflow as bf
from batonflow.governance._alert_dispatch import ALERT_RECORD
from server.harness import Server

from .conftest import in_thread


def raise_alert(console: Server, key: str, summary: str) -> None:
    """An alert as a monitor records it (the monitors' own tests cover raising one)."""

    async def put() -> None:
        store = bf.open_store(console.db)
        await store.open()
        try:
            data = {"kind": "run.faulted", "state": "sent", "summary": summary, "run_id": None}
            await store.add_record(ALERT_RECORD, key, json.dumps(data), time.time())
        finally:
            await store.close()

    in_thread(put)


def audit_actors(console: Server, kind: str) -> list[str | None]:
    """Who acted in each audit entry of ``kind``, oldest first."""

    async def read() -> list[str | None]:
        store = bf.open_store(console.db)
        await store.open()
        try:
            found = await store.read_audit(limit=100_000)
            return [e.actor for e in found if e.kind == kind]
        finally:
            await store.close()

    return in_thread(read)


def acknowledged_by(console: Server) -> list[str | None]:
    return audit_actors(console, "alert.acknowledged")


def test_an_operator_acknowledges_an_open_alert(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    raise_alert(console, "run.faulted:a1", "Run a1 of triage faulted: CRM timed out")
    raise_alert(console, "run.faulted:a2", "Run a2 of refund faulted: bank said no")
    sign_in("olly", next_path="/alerts")
    assert page.get_by_role("heading", name="Open (2)").is_visible()
    axe(page)
    screenshot("alerts")
    page.get_by_role("button", name="Acknowledge: Run a1 of triage faulted: CRM timed out").click()
    page.wait_for_url("**/alerts")
    assert "Acknowledged: Run a1 of triage faulted" in page.get_by_role("status").inner_text()
    assert page.get_by_role("heading", name="Open (1)").is_visible()
    seen = page.locator("table").nth(1).inner_text()
    assert "Run a1 of triage faulted" in seen
    assert "acknowledged by olly" in seen
    assert acknowledged_by(console)[-1] == "olly"


def test_a_viewer_sees_alerts_but_may_not_acknowledge_and_a_forged_post_is_refused(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    raise_alert(console, "run.faulted:v1", "Run v1 faulted")
    before = acknowledged_by(console)
    sign_in("vera", next_path="/alerts")
    assert "Run v1 faulted" in page.locator("main").inner_text()
    assert page.get_by_role("button", name="Acknowledge: Run v1 faulted").count() == 0
    token = page.locator("input[name=csrf]").first.input_value()
    form = {"csrf": token, "key": "run.faulted:v1"}
    refused = page.request.post("/alerts/acknowledge", form=form)
    assert refused.status == 403
    assert "You may not do this" in refused.text()
    page.context.clear_cookies()
    sign_in("olly", next_path="/alerts")
    forged = page.request.post("/alerts/acknowledge", form={"key": "run.faulted:v1"})
    assert forged.status == 400
    assert "no valid security token" in forged.text()
    token = page.locator("input[name=csrf]").first.input_value()
    unknown = page.request.post("/alerts/acknowledge", form={"csrf": token, "key": "nope"})
    assert unknown.status == 404
    assert "there is no alert &#39;nope&#39;" in unknown.text()
    assert acknowledged_by(console) == before  # none of those posts acknowledged anything
    page.goto("/alerts")
    axe(page)
