"""The approvals inbox in a real browser on a real ``batonflow serve``: a complaint waits for
the complaints team, is approved with a comment while its run page follows the run live, a
member of another group and the run's own starter are refused in words, the model's label is
corrected, and an erased subject's run shows nothing readable."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from server.harness import Server

from .conftest import api, audit_of, save_screenshot, start_run, wait_for_status

EMAIL = {
    "from": "pat@customer.example", "from_name": "Pat", "subject": "Refund please",
    "body": "I was charged twice for order 42 and want a refund.",
}  # fmt: skip


def _approval_id(console: Server, run_id: str) -> str:
    with api(console) as client:
        found = client.get("/api/v1/approvals", params={"mine": "false"}).json()["items"]
    return next(a["approval"] for a in found if a["run_id"] == run_id)


def test_a_complaint_is_approved_with_a_comment_and_its_run_completes_live(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    run_id = start_run(console, "complaint", EMAIL)
    wait_for_status(console, run_id, "waiting")
    sign_in("carol", next_path=f"/runs/{run_id}")
    run_page = page
    expect(run_page.locator("h1 .status")).to_have_text("waiting")
    axe(run_page)
    screenshot("run-waiting")

    inbox = page.context.new_page()
    inbox.goto("/approvals")
    card = inbox.locator("article", has_text="Reply to Pat: Refund please")
    expect(card).to_be_visible()
    assert "The model's label: complaint (62% confident)" in card.inner_text()
    assert "no vote yet, 1 needed" in card.inner_text()
    card.get_by_text("The original message").click()
    assert "charged twice for order 42" in card.inner_text()
    axe(inbox)
    save_screenshot(inbox, "approvals")
    card.get_by_label("Comment").fill("Refund approved: duplicate charge confirmed.")
    card.get_by_role("button", name="Approve").click()
    expect(inbox.get_by_role("status").first).to_contain_text("You decided 'approve'")

    # the run page, untouched since, follows the run to its end
    expect(run_page.locator("h1 .status")).to_have_text("completed", timeout=20_000)
    votes = run_page.locator("article.approval table").inner_text()
    assert "carol" in votes
    assert "Refund approved: duplicate charge confirmed." in votes
    assert wait_for_status(console, run_id, "completed")["status"] == "completed"


def test_another_group_and_the_runs_own_starter_are_refused_in_words(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    run_id = start_run(console, "complaint", {**EMAIL, "from": "quinn@customer.example"},
                       name="carol")  # fmt: skip
    wait_for_status(console, run_id, "waiting")
    approval = urllib.parse.quote(_approval_id(console, run_id), safe="")
    sign_in("dave", next_path="/approvals")
    assert "Nothing waits for your decision." in page.locator("main").inner_text()
    assert "dave is not one of the deciders" in page.locator("main").inner_text()
    reply = page.goto(f"/approvals/{approval}/decide")
    assert reply.status == 403
    assert "dave is not one of the deciders" in page.locator(".reason").inner_text()
    axe(page)
    page.goto("/approvals")
    csrf = page.locator("input[name=csrf]").first.input_value()
    posted = page.request.post(f"/approvals/{approval}/decide",
                               form={"csrf": csrf, "option": "approve"})  # fmt: skip
    assert posted.status == 403
    assert "dave is not one of the deciders" in posted.text()
    page.context.clear_cookies()
    sign_in("carol", next_path=f"/approvals/{approval}/decide")
    assert "carol started this run or is its subject" in page.locator(".reason").inner_text()
    assert wait_for_status(console, run_id, "waiting")["status"] == "waiting"
    refused = [e for e in audit_of(console, "api.refused") if "decide" in e.get("path", "")]
    assert refused == [] or all(e["actor"] in ("dave", "carol") for e in refused)


def test_the_models_label_is_corrected_from_the_inbox(
    page: Any, console: Server, sign_in: Callable[..., None]
) -> None:
    run_id = start_run(console, "complaint", {**EMAIL, "body": "Is the shop open on Sunday?"})
    wait_for_status(console, run_id, "waiting")
    sign_in("carol", next_path="/approvals")
    card = page.locator("article", has=page.locator(f"a[href='/runs/{run_id}']"))
    assert "The model's label: question" in card.inner_text()
    card.get_by_label("Correct the label").select_option("praise")
    card.get_by_role("button", name="Keep as an example").click()
    expect(page.get_by_role("status").first).to_contain_text("from 'question' to 'praise'")
    corrected = [e for e in audit_of(console, "classify.corrected") if e["run_id"] == run_id]
    assert [(e["actor"], e["from"], e["to"]) for e in corrected] == [
        ("carol", "question", "praise")
    ]


def test_an_erased_subjects_run_shows_nothing_readable(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    secret = "my account number is 99-1234"
    run_id = start_run(console, "complaint",
                       {**EMAIL, "from": "erin@customer.example", "body": secret})  # fmt: skip
    wait_for_status(console, run_id, "waiting")
    with api(console) as client:
        erased = client.post(
            "/api/v1/subjects/erase", json={"subject": "erin@customer.example", "confirm": "erase"}
        )
        assert erased.status_code == 200, erased.text
    sign_in("ann", next_path=f"/runs/{run_id}")
    for details in page.locator("details").all():
        details.evaluate("d => d.open = true")
    text = page.locator("main").inner_text()
    assert secret not in text
    assert "erin@customer.example" not in text
    assert "Pat" not in text
    axe(page)


def test_the_inbox_works_on_a_phone(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    run_id = start_run(console, "complaint", {**EMAIL, "from": "sam@customer.example"})
    wait_for_status(console, run_id, "waiting")
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in("carol", next_path="/approvals")
    card = page.locator("article", has=page.locator(f"a[href='/runs/{run_id}']"))
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"
    approve = card.get_by_role("button", name="Approve")
    box = approve.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 390
    assert box["height"] >= 32  # big enough for a thumb
    axe(page)
    approve.click()
    expect(page.get_by_role("status").first).to_contain_text("You decided 'approve'")
    assert wait_for_status(console, run_id, "completed")["status"] == "completed"


def test_the_overview_lists_the_waiting_approval_with_its_expiry(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    run_id = start_run(console, "complaint", {**EMAIL, "from": "uma@customer.example"})
    broken = start_run(console, "fragile", {"reason": "the CRM is down"})
    wait_for_status(console, run_id, "waiting")
    wait_for_status(console, broken, "faulted")
    sign_in("olly")
    failed = page.locator("section", has=page.get_by_role("heading", name="Failed runs"))
    assert broken[-8:] in failed.inner_text()
    axe(page)
    screenshot("overview")
    panel = page.locator("section", has=page.get_by_role("heading", name="Approvals waiting"))
    assert "Reply to Pat: Refund please" in panel.inner_text()
    assert "expires in 48.0 h" in panel.inner_text() or "expires in 47" in panel.inner_text()
    assert page.locator("tr", has_text="complaint").locator("td").nth(2).inner_text() != "0"
    panel.get_by_role("link", name="Reply to Pat: Refund please").first.click()
    page.wait_for_load_state()
    # olly is not in the complaints group: the link explains rather than decides
    assert (
        "olly is not one of the deciders (group complaints)" in page.locator(".reason").inner_text()
    )
