"""The console's identities page in a real browser: an admin creates a service identity,
changes its roles, issues a token (shown once) that then works on the API, revokes it, and
disables a person; no one else may open the page, and forms need their token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from server.harness import Server

from .test_alerts import audit_actors


def test_an_admin_manages_identities_and_tokens(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    sign_in("ann", next_path="/identities")
    form = page.get_by_role("form", name="Create an identity")
    form.get_by_label("Name").fill("crm-sync")
    form.get_by_label("Kind").select_option("service")
    form.get_by_label("viewer").check()
    form.get_by_role("button", name="Create").click()
    page.wait_for_url("**/identities")
    assert "Created crm-sync (viewer)" in page.get_by_role("status").inner_text()
    row = page.get_by_role("row", name="crm-sync")
    row.get_by_label("operator").check()
    row.get_by_role("button", name="Save the roles of crm-sync").click()
    assert "crm-sync now has: operator, viewer" in page.get_by_role("status").inner_text()
    assert audit_actors(console, "identity.roles_changed")[-1] == "ann"
    row = page.get_by_role("row", name="crm-sync")
    row.get_by_label("Label for a new token of crm-sync").fill("nightly job")
    row.get_by_role("button", name="Issue a token for crm-sync").click()
    token = page.get_by_role("textbox", name="Token", exact=False).first.input_value()
    assert token.startswith("bf_")
    issued = page.get_by_role("status", name="New token for crm-sync").inner_text()
    assert "shown this once" in issued
    axe(page)
    screenshot("identities")
    api = httpx.get(console.url + "/api/v1/runs", headers={"authorization": f"Bearer {token}"})
    assert api.status_code == 200
    page.goto("/identities")
    assert token not in page.content()  # never shown again
    page.get_by_role("row", name="crm-sync").get_by_role("button", name="Revoke token").click()
    assert "Revoked token" in page.get_by_role("status").inner_text()
    api = httpx.get(console.url + "/api/v1/runs", headers={"authorization": f"Bearer {token}"})
    assert api.status_code == 401
    page.get_by_role("button", name="Disable dave").click()
    assert "dave disabled" in page.get_by_role("status").inner_text()
    page.get_by_role("button", name="Enable dave").click()
    assert "dave enabled again" in page.get_by_role("status").inner_text()
    # an admin cannot lock itself out
    own = page.get_by_role("row", name="ann")
    own.get_by_label("admin").uncheck()
    own.get_by_role("button", name="Save the roles of ann").click()
    assert "cannot take the admin role from itself" in page.locator("main").inner_text()


def test_only_an_admin_opens_the_page_and_forms_need_their_token(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    sign_in("olly", next_path="/identities")
    assert "You may not do this" in page.get_by_role("heading", level=1).inner_text()
    axe(page)
    token = page.locator("input[name=csrf]").first.input_value()
    refused = page.request.post("/identities/create", form={"csrf": token, "name": "eve",
                                                            "role": "admin"})  # fmt: skip
    assert refused.status == 403
    page.context.clear_cookies()
    sign_in("ann", next_path="/identities")
    forged = page.request.post("/identities/create", form={"name": "eve", "role": "admin"})
    assert forged.status == 400
    assert "no valid security token" in forged.text()
    page.goto("/identities")
    assert page.get_by_role("row", name="eve").count() == 0
