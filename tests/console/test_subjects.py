"""The console's data-subject pages in a real browser against a real ``batonflow serve`` with
a sealed store: finding a person's runs, exporting what is held, and erasing it after typing
the id again; afterwards the pages show nothing readable."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server.harness import Server, make_token

from .conftest import in_thread, seed_people

FLOWS = Path(__file__).resolve().with_name("subject_flows.py")
JANE = {"from": "Jane.Doe@Example.com", "name": "Jane Doe", "topic": "arrears at 14 Larch Close"}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    where = tmp_path_factory.mktemp("subjects")
    db = str(where / "runs.db")
    in_thread(lambda: seed_people(db))
    running = Server(db, where, extra=("--workflow", f"{FLOWS}:enquiry")).start()
    try:
        yield running
    finally:
        running.stop()


def start_enquiry(console: Server, enquiry: dict[str, Any]) -> str:
    async def start() -> str:
        token = await make_token(console.db, "ann")
        async with console.client(token) as client:
            reply = await client.post("/api/v1/runs", json={"workflow": "enquiry",
                                                             "input": enquiry})  # fmt: skip
            assert reply.status_code == 201, reply.text
            return str(reply.json()["id"])

    return in_thread(start)


def test_find_export_and_erase_a_data_subject(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    run_id = start_enquiry(console, JANE)
    sign_in("olly", next_path="/subjects")
    page.get_by_label("Data subject id").fill("jane.doe@example.com")
    page.get_by_role("button", name="Find").click()
    page.wait_for_url("**/subjects?subject=*")
    table = page.get_by_role("table").inner_text()
    assert "enquiry" in table
    assert run_id[-8:] in table
    axe(page)
    screenshot("subjects")
    with page.expect_download() as caught:
        page.get_by_role("button", name="Download everything held about").click()
    held = json.loads(Path(caught.value.path()).read_text(encoding="utf-8"))
    assert [r["id"] for r in held["runs"]] == [run_id]
    assert held["runs"][0]["input"] == JANE
    # a confirmation that is not the id erases nothing
    page.get_by_label("Type").fill("jane")
    page.get_by_role("button", name="Erase").click()
    assert "Erasure not confirmed" in page.get_by_role("heading", level=1).inner_text()
    assert "nothing was erased" in page.locator("main").inner_text()
    page.goto("/subjects?subject=jane.doe@example.com")
    page.get_by_label("Type").fill("JANE.DOE@example.com")  # the same person, as typed
    page.get_by_role("button", name="Erase").click()
    page.wait_for_url("**/subjects?subject=*")
    assert "Erased: the data of 1 run(s) can no longer be read" in page.get_by_role(
        "status").inner_text()  # fmt: skip
    assert "erased" in page.get_by_role("region", name="jane.doe@example.com").inner_text()
    assert page.get_by_role("button", name="Erase").count() == 0
    axe(page)
    # nothing readable is left on the pages that showed her data
    page.goto(f"/audit/runs/{run_id}/report")
    report = page.locator("main").inner_text()
    assert "Larch Close" not in report
    assert "Jane Doe" not in report
    assert "the data subject's key was destroyed" in report
    for path in (f"/audit?run={run_id}", f"/runs/{run_id}", f"/runs?subject={JANE['from']}"):
        page.goto(path)
        shown = page.locator("main").inner_text()
        assert "Larch Close" not in shown, path
        assert "Jane Doe" not in shown, path


def test_a_viewer_may_search_but_not_export_or_erase_and_forms_need_their_token(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    start_enquiry(console, {**JANE, "from": "john@example.org", "name": "John"})
    sign_in("vera", next_path="/subjects?subject=john@example.org")
    assert page.get_by_role("button", name="Erase").count() == 0
    assert page.get_by_role("button", name="Download everything held about").count() == 0
    axe(page)
    token = page.locator("input[name=csrf]").first.input_value()
    form = {"csrf": token, "subject": "john@example.org", "confirm": "john@example.org"}
    refused = page.request.post("/subjects/erase", form=form)
    assert refused.status == 403
    assert "You may not do this" in refused.text()
    page.context.clear_cookies()
    sign_in("ann", next_path="/subjects?subject=john@example.org")
    forged = page.request.post("/subjects/erase", form={"subject": "john@example.org",
                                                        "confirm": "john@example.org"})  # fmt: skip
    assert forged.status == 400
    assert "no valid security token" in forged.text()
    page.goto("/subjects?subject=john@example.org")
    assert page.get_by_role("button", name="Erase").count() == 1  # still there: not erased
