"""The console's audit area in a real browser against a real ``batonflow serve``: the chain's
verification, entries filtered by run, actor and kind, their download, and the printable
one-run report (the page ``batonflow audit report --html`` writes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.harness import Server, make_token

from .conftest import PASSWORD, in_thread, seed_people

EMAIL = {
    "from": "jane@example.com",
    "from_name": "Jane",
    "subject": "double charge",
    "body": "I was charged twice",
}


def start_complaint(console: Server) -> str:
    async def start() -> str:
        token = await make_token(console.db, "ann")
        async with console.client(token) as client:
            reply = await client.post("/api/v1/runs", json={"workflow": "complaint",
                                                             "input": EMAIL})  # fmt: skip
            assert reply.status_code == 201, reply.text
            return str(reply.json()["id"])

    return in_thread(start)


def test_the_audit_page_verifies_filters_and_reports_one_run(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    run_id = start_complaint(console)
    sign_in("vera", next_path="/audit")
    assert page.get_by_role("heading", level=1).inner_text() == "Audit trail"
    assert "All" in page.get_by_role("region", name="Chain verification").inner_text()
    assert page.get_by_text("verified", exact=True).is_visible()
    axe(page)
    screenshot("audit")
    page.get_by_label("Run id").fill(run_id)
    page.get_by_label("Kind").fill("run")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/audit?*")
    rows = page.locator("tbody tr")
    assert rows.count() >= 1
    texts = rows.all_inner_texts()
    assert any("The run of complaint started by ann." in t for t in texts), texts
    assert all("\trun." in t for t in texts), texts  # only run.* entries
    page.get_by_label("Actor").fill("nobody-at-all")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_text("No audit entry matches these filters.").is_visible()
    # the printable report, from the run's filter
    page.goto(f"/audit?run={run_id}")
    page.get_by_role("link", name="Printable report on this run").click()
    page.wait_for_url(f"**/audit/runs/{run_id}/report")
    assert page.get_by_role("heading", level=1).inner_text() == f"Report on run {run_id}"
    story = page.get_by_role("table").inner_text()
    assert "The run of complaint started by ann." in story
    assert "Approval requested (its details are withheld or erased)." in story  # Jane's data
    assert "Reply to Jane" not in story
    assert "personal data withheld" in page.locator("main").inner_text()
    assert "The audit chain verifies from its start" in page.locator("main").inner_text()
    axe(page)
    screenshot("audit-report")
    page.emulate_media(media="print")  # the print stylesheet hides the on-screen caption
    assert not page.locator("caption").is_visible()


def test_the_export_downloads_what_the_filter_selects_and_is_audited(
    page: Any, console: Server, sign_in: Callable[..., None]
) -> None:
    run_id = start_complaint(console)
    sign_in("olly", next_path=f"/audit?run={run_id}")
    with page.expect_download() as caught:
        page.get_by_role("link", name="Download as CSV").click()
    download = caught.value
    assert download.suggested_filename == "batonflow-audit.csv"
    lines = Path(download.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("seq,time,kind,run_id")
    assert all(f",{run_id}," in line for line in lines[1:])
    reply = page.request.get(f"/audit/export?run={run_id}&format=jsonl")
    events = [json.loads(line) for line in reply.text().splitlines()]
    assert events[0]["type"] == "batonflow.audit.run.created"
    assert {e["subject"] for e in events} == {run_id}
    page.goto("/audit?kind=data.read&actor=olly")
    assert "read the run's data (console audit export)" in page.locator("tbody").inner_text()


def test_a_report_on_an_unknown_run_and_a_bad_date_are_refused_in_words(
    page: Any, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    sign_in("vera")
    reply = page.goto("/audit/runs/no-such-run/report")
    assert reply is not None
    assert reply.status == 404
    assert "there is no run with id 'no-such-run'" in page.locator("main").inner_text()
    axe(page)
    reply = page.goto("/audit?since=yesterday")
    assert reply is not None
    assert reply.status == 400
    assert "since: expected a date like 2026-12-07" in page.locator("main").inner_text()


def test_a_visitor_must_sign_in_to_read_the_trail(page: Any) -> None:
    page.goto("/audit/export?format=csv")
    assert "/sign-in" in page.url


def test_a_long_trail_is_verified_on_request_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``VERIFY_AT_ONCE`` entries the page offers a button instead of hashing the whole
    trail on every visit (in process: the threshold is lowered for the test)."""
    from batonflow.configuration import Setup
    from batonflow.server._app import ServeOptions, create_app
    from batonflow.server.console import _pages_audit

    monkeypatch.setattr(_pages_audit, "VERIFY_AT_ONCE", 0)
    monkeypatch.chdir(tmp_path)  # no ./batonflow.toml
    db = str(tmp_path / "runs.db")
    in_thread(lambda: seed_people(db))
    app = create_app(Setup.load(None), ServeOptions(db=db, workers=False))
    in_thread(lambda: _visit(app))


async def _visit(app: Any) -> None:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            await client.get("/sign-in")
            form = {"name": "vera", "password": PASSWORD, "next": "/audit",
                    "csrf": client.cookies["bf_csrf"]}  # fmt: skip
            assert (await client.post("/sign-in", data=form)).status_code == 303
            page = (await client.get("/audit")).text
            assert "Verify the chain now" in page
            assert "verified" not in page
            page = (await client.get("/audit?verify=true")).text
            assert "Verify the chain now" not in page
            assert "verified</strong>" in page
