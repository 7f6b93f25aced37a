"""The runs list and one run's page, in a real browser on a real ``batonflow serve``: filters,
cursor paging, bulk actions with the API's rules, the timeline, the error in words, retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.harness import Server

from .conftest import audit_of, start_run, wait_for_status


def test_the_runs_list_filters_and_pages_by_cursor(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    greeted = [start_run(console, "greet", {"name": n}) for n in ("ada", "bob", "cy")]
    broken = start_run(console, "fragile", {"reason": "the CRM said no"})
    for run_id in greeted:
        wait_for_status(console, run_id, "completed")
    wait_for_status(console, broken, "faulted")
    sign_in("olly", next_path="/runs")
    rows = page.locator("table tbody tr")
    assert rows.count() >= 4
    axe(page)
    screenshot("runs")

    page.get_by_label("Status").select_option("faulted")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=faulted**")
    assert broken[-8:] in page.locator("table tbody").inner_text()
    assert greeted[0][-8:] not in page.locator("table tbody").inner_text()

    # two at a time: the cursor walks the greet runs, newest first, without repeats
    page.goto("/runs?workflow=greet&limit=2")
    seen = page.locator("table tbody a.mono").all_inner_texts()
    page.get_by_role("link", name="Older runs").click()
    seen += page.locator("table tbody a.mono").all_inner_texts()
    assert seen == [r[-8:] for r in reversed(greeted)][: len(seen)]
    assert len(seen) == 3
    assert page.get_by_role("link", name="Older runs").count() == 0


def test_bulk_cancel_applies_the_status_table_and_says_what_it_skipped(
    page: Any, console: Server, sign_in: Callable[..., None]
) -> None:
    waiting = [start_run(console, "waiting", {}) for _ in range(2)]
    done = start_run(console, "greet", {"name": "dee"})
    for run_id in waiting:
        wait_for_status(console, run_id, "waiting")
    wait_for_status(console, done, "completed")
    sign_in("olly", next_path="/runs")
    for run_id in [*waiting, done]:
        page.get_by_label(f"Select run {run_id}").check()
    page.get_by_label("Reason (for cancel)").fill("customer withdrew")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_load_state()
    message = page.get_by_role("status").first.inner_text()
    assert "cancel: 2 of 3 runs" in message
    assert f"{done[-8:]} (completed)" in message
    for run_id in waiting:
        assert wait_for_status(console, run_id, "cancelled")["status"] == "cancelled"


def test_a_viewer_sees_no_actions_and_a_forged_one_is_refused_in_words(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    run_id = start_run(console, "waiting", {})
    wait_for_status(console, run_id, "waiting")
    sign_in("vera", next_path="/runs")
    assert page.get_by_role("button", name="Cancel").count() == 0
    csrf = page.locator("input[name=csrf]").first.input_value()
    reply = page.request.post(
        "/runs/actions", form={"csrf": csrf, "action": "cancel", "run": run_id}, max_redirects=0
    )
    assert reply.status == 403
    assert "vera may not run.cancel: it needs the role admin or operator" in reply.text()
    page.set_content(reply.text())
    assert "recorded on the audit trail" in page.locator("main").inner_text()
    axe(page)
    screenshot("refused")
    assert wait_for_status(console, run_id, "waiting")["status"] == "waiting"
    page.goto(f"/runs/{run_id}")
    assert page.get_by_role("button", name="Cancel").count() == 0
    page.goto("/runs?status=nonsense")
    assert "status: expected one of pending" in page.get_by_text("status: expected").inner_text()
    assert "audit trail" not in page.locator("main").inner_text()  # a typo is not a refusal
    axe(page)


def test_a_failed_run_shows_its_error_timeline_and_retries_from_the_failed_step(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    run_id = start_run(console, "fragile", {"reason": "the CRM said no"})
    wait_for_status(console, run_id, "faulted")
    sign_in("olly", next_path=f"/runs/{run_id}")
    assert page.get_by_role("heading", name="What went wrong").is_visible()
    assert "the CRM said no" in page.locator(".problem").inner_text()
    timeline = page.get_by_role("img", name="Timeline of 1 steps")
    assert timeline.is_visible()
    step = page.locator("details.step", has_text="explode")
    step.locator("summary").first.click()  # open the step's details: its input as stored
    assert '"the CRM said no"' in step.locator("pre").first.inner_text()
    axe(page)
    screenshot("run-faulted")
    page.get_by_role("button", name="Retry from the failed step").click()
    page.wait_for_load_state()
    assert "retry: the run is now pending" in page.get_by_role("status").first.inner_text()
    retried = [e for e in audit_of(console, "run.resumed") if e["run_id"] == run_id]
    assert [e["actor"] for e in retried] == ["olly"]


def test_an_unknown_run_is_a_page_that_says_so(
    page: Any, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    sign_in("vera")
    reply = page.goto("/runs/no-such-run")
    assert reply.status == 404
    assert "there is no run with id 'no-such-run'" in page.locator(".reason").inner_text()
    axe(page)


def test_a_documents_run_shows_its_path_through_the_flow_and_the_routing_decision(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    run_id = start_run(console, "test/triage", {"amount": 500})
    wait_for_status(console, run_id, "completed")
    sign_in("vera", next_path=f"/runs/{run_id}")
    graph = page.locator(".graph svg")
    assert graph.is_visible()
    on_path = graph.locator("rect.on-path")
    assert on_path.count() == 4  # start, size, escalate and the end: not accept
    routing = page.locator("section", has=page.get_by_role("heading", name="Routing decisions"))
    row = routing.locator("tbody tr").first.inner_text()
    assert "big" in row
    assert ".amount > 100" in row
    assert "escalate" in row
    axe(page)
    screenshot("run-document")
