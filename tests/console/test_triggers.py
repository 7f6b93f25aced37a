"""The triggers page in a real browser on a real ``batonflow serve`` hosting two schedules:
state and next fire times in the schedule's zone, pause with a reason, resume, trigger now
(the hosting process starts the run), backfill, a refused backfill in words, and a viewer who
sees no actions and whose forged post is refused."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.harness import Server

from .conftest import FLOWS, api, audit_of, in_thread, seed_people

TICK = """\
document: {dsl: '1.0.3', namespace: office, name: tick, version: '1.0.0'}
do:
  - done:
      set:
        ticked: true
"""

CONFIG = """\
[triggers.schedules.nightly-report]
document = "tick.yaml"
cron = "30 1 * * *"
zone = "Europe/London"
overlap = "skip"
catchup_window = "PT6H"

[triggers.schedules.hourly-sync]
document = "tick.yaml"
every = 3600
overlap = "allow_all"
"""


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``batonflow serve`` hosting the two schedules of :data:`CONFIG`, people seeded."""
    where = tmp_path_factory.mktemp("console-triggers")
    (where / "tick.yaml").write_text(TICK)
    (where / "batonflow.toml").write_text(CONFIG)
    db = str(where / "runs.db")
    tokens = in_thread(lambda: seed_people(db))
    running = Server(db, where, extra=("--workflow", f"{FLOWS}:complaint")).start()
    running.tokens = tokens  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        running.stop()


def trigger(console: Server, name: str) -> dict[str, Any]:
    with api(console) as client:
        found: dict[str, Any] = client.get(f"/api/v1/triggers/{name}").json()
        return found


def test_an_operator_pauses_resumes_triggers_and_backfills(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    sign_in("olly", next_path="/triggers")
    assert page.get_by_role("heading", name="Triggers").is_visible()
    assert page.get_by_role("link", name="Triggers").get_attribute("aria-current") == "page"
    rows = page.locator("table tbody tr")
    assert rows.count() == 2
    nightly = rows.filter(has_text="nightly-report")
    assert "active" in nightly.locator(".status").inner_text()
    fire_times = nightly.locator("ul.plain li").all_inner_texts()
    assert len(fire_times) == 3
    assert all(t.split(" (")[0].endswith(("GMT", "BST")) for t in fire_times), fire_times
    assert "overlap skip, catch-up 6.0 h" in nightly.inner_text()

    page.get_by_label("Reason for pausing nightly-report").fill("year end")
    page.get_by_role("button", name="Pause nightly-report").click()
    page.wait_for_load_state()
    assert "nightly-report: paused" in page.get_by_role("status").first.inner_text()
    assert "by olly: year end" in rows.filter(has_text="nightly-report").inner_text()
    assert trigger(console, "nightly-report")["state"] == "paused"
    axe(page)
    screenshot("triggers")
    page.get_by_role("button", name="Resume nightly-report").click()
    page.wait_for_load_state()
    assert "nightly-report: resumed" in page.get_by_role("status").first.inner_text()

    page.get_by_role("button", name="Trigger now hourly-sync").click()
    page.wait_for_load_state()
    assert "hourly-sync: a run was requested" in page.get_by_role("status").first.inner_text()
    started = [e for e in audit_of(console, "trigger.requested") if e["schedule"] == "hourly-sync"]
    assert [(e["actor"], e["action"]) for e in started] == [("olly", "trigger")]

    page.get_by_label("Schedule").select_option("nightly-report")
    page.get_by_label("From (UTC)").fill("2026-03-30T00:00")
    page.get_by_label("To (UTC)").fill("2026-03-28T00:00")
    page.get_by_role("button", name="Request backfill").click()
    page.wait_for_load_state()
    assert "is before the start" in page.locator(".reason").inner_text()
    page.goto("/triggers")
    page.get_by_label("Schedule").select_option("nightly-report")
    page.get_by_label("From (UTC)").fill("2026-03-28T00:00")
    page.get_by_label("To (UTC)").fill("2026-03-30T00:00")
    page.get_by_role("button", name="Request backfill").click()
    page.wait_for_load_state()
    assert (
        "nightly-report: a backfill was requested" in page.get_by_role("status").first.inner_text()
    )
    paused = audit_of(console, "trigger.paused")
    assert [(e["actor"], e["note"]) for e in paused] == [("olly", "year end")]


def test_a_viewer_sees_no_actions_and_a_forged_post_is_refused(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    sign_in("vera", next_path="/triggers")
    assert page.locator("table tbody tr").count() == 2
    assert page.get_by_role("button", name="Pause hourly-sync").count() == 0
    assert page.get_by_role("button", name="Request backfill").count() == 0
    axe(page)
    csrf = page.locator("input[name=csrf]").first.input_value()
    reply = page.request.post(
        "/triggers/hourly-sync/pause", form={"csrf": csrf, "reason": "x"}, max_redirects=0
    )
    assert reply.status == 403
    assert "vera may not trigger.operate: it needs the role admin or operator" in reply.text()
    assert trigger(console, "hourly-sync")["state"] == "active"


def test_a_post_without_its_csrf_token_or_for_an_unknown_trigger_is_refused(
    page: Any, console: Server, sign_in: Callable[..., None]
) -> None:
    sign_in("olly", next_path="/triggers")
    forged = page.request.post("/triggers/hourly-sync/pause", form={"reason": "x"},
                               max_redirects=0)  # fmt: skip
    assert forged.status == 400
    assert trigger(console, "hourly-sync")["state"] == "active"
    csrf = page.locator("input[name=csrf]").first.input_value()
    unknown = page.request.post("/triggers/weekly/resume", form={"csrf": csrf}, max_redirects=0)
    assert unknown.status == 404
    assert "no trigger named 'weekly'" in html.unescape(unknown.text())
