"""The console's workflows pages in a real browser: the list with versions, one document's
graph and data-flow report, validating a broken document (the verdict names line and field),
and deploying a new version, which only an admin may do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.harness import Server

from .test_alerts import audit_actors

CLAIMS = Path(__file__).resolve().parents[1] / "docs" / "fixtures" / "dataflow" / "claims.yaml"
ORDER_V1 = """\
document: { dsl: '1.0.3', namespace: shop, name: order, version: '1.0.0' }
do:
  - confirm:
      set: { order: '${ $workflow.input.order }', paid: true }
"""
BROKEN = """\
document: { dsl: '1.0.3', namespace: shop, name: order, version: '1.0.1' }
do:
  - confirm:
      sett: { paid: true }
"""


def test_an_admin_validates_deploys_and_reads_a_document(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    sign_in("ann", next_path="/workflows")
    assert page.get_by_role("link", name="complaint").is_visible()  # a Python workflow
    page.get_by_role("textbox", name="Document").fill(BROKEN)
    page.get_by_role("button", name="Validate").click()
    verdict = page.get_by_role("region", name="Verdict").inner_text()
    assert "not valid" in verdict
    assert "/do/0/confirm" in verdict
    assert page.get_by_role("textbox", name="Document").input_value() == BROKEN  # kept for fixing
    axe(page)
    screenshot("workflows-verdict")
    page.get_by_role("textbox", name="Document").fill(ORDER_V1)
    page.get_by_role("button", name="Validate").click()
    assert "valid shop/order version 1.0.0: 1 task(s)" in page.get_by_role("status").inner_text()
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_url("**/workflows/shop/order")
    assert "Deployed shop/order version 1.0.0" in page.get_by_role("status").inner_text()
    assert audit_actors(console, "workflow.deployed")[-1] == "ann"
    # the claims document, uploaded as a file: its graph and where its data goes
    page.goto("/workflows")
    page.get_by_label("or a file").set_input_files(str(CLAIMS))
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_url("**/workflows/insurance/claims")
    assert page.get_by_role("img", name="The flow of insurance/claims version 2.0.0").is_visible()
    flows = page.get_by_role("region", name="Data flow").inner_text()
    assert "crm.example.test" in flows
    assert "P6Y" in flows
    axe(page)
    screenshot("workflow")
    page.goto("/workflows")
    page.get_by_role("textbox", name="Document").fill(ORDER_V1)
    page.get_by_role("button", name="Deploy").click()  # the same version again
    assert "version 1.0.0 exists" in page.get_by_role("region", name="Verdict").inner_text()


def test_a_viewer_reads_but_may_not_deploy_and_forms_need_their_token(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    sign_in("vera", next_path="/workflows")
    assert page.get_by_role("textbox", name="Document").count() == 0
    axe(page)
    token = page.locator("input[name=csrf]").first.input_value()
    refused = page.request.post("/workflows/deploy", multipart={"csrf": token,
                                                                "document": ORDER_V1})  # fmt: skip
    assert refused.status == 403
    assert "You may not do this" in refused.text()
    forged = page.request.post("/workflows/validate", multipart={"document": ORDER_V1})
    assert forged.status == 400
    assert "no valid security token" in forged.text()
    missing = page.goto("/workflows/no/such")
    assert missing is not None
    assert missing.status == 404
