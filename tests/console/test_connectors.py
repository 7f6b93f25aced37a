"""The console's kill switches in a real browser: an operator switches a host off and on
again (the runs that need it wait meanwhile), a viewer may only look, a typo switches
nothing off, and a form without its token is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.harness import Server

from .test_alerts import audit_actors


def test_an_operator_switches_a_host_off_with_a_reason_and_on_again(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    sign_in("olly", next_path="/connectors")
    page.get_by_label("Host or connector").fill("crm.example.com")
    page.get_by_label("Reason", exact=True).fill("CRM upgrade tonight")
    page.get_by_role("button", name="Switch off", exact=True).last.click()
    page.wait_for_url("**/connectors")
    assert "crm.example.com switched off" in page.get_by_role("status").inner_text()
    row = page.get_by_role("row", name="crm.example.com")
    assert "off" in row.inner_text()
    assert "CRM upgrade tonight" in row.inner_text()
    assert "by olly" in row.inner_text()
    axe(page)
    screenshot("connectors")
    page.get_by_role("button", name="Switch crm.example.com on").click()
    page.wait_for_url("**/connectors")
    assert "crm.example.com switched on" in page.get_by_role("status").inner_text()
    assert audit_actors(console, "connector.enabled")[-1] == "olly"


def test_a_viewer_only_looks_a_typo_is_named_and_forms_need_their_token(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    sign_in("vera", next_path="/connectors")
    assert page.get_by_role("button", name="Switch off").count() == 0
    axe(page)
    token = page.locator("input[name=csrf]").first.input_value()
    refused = page.request.post("/connectors/disable", form={"csrf": token, "name": "x.test"})
    assert refused.status == 403
    page.context.clear_cookies()
    sign_in("ann", next_path="/connectors")
    token = page.locator("input[name=csrf]").first.input_value()
    typo = page.request.post("/connectors/disable", form={"csrf": token, "name": "crm"})
    assert typo.status == 400
    assert "no connector named" in typo.text()
    forged = page.request.post("/connectors/disable", form={"name": "x.test"})
    assert forged.status == 400
    assert "no valid security token" in forged.text()
    page.goto("/connectors")
    assert "x.test" not in page.locator("main").inner_text()
