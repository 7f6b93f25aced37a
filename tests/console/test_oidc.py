"""OpenID Connect sign-in against a real (small) provider on loopback: an existing identity
by e-mail, a new one from a mapped group, a person nobody mapped refused in words, and a
callback replayed refused."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.harness import Server

from .conftest import FLOWS, audit_of, in_thread, seed_people
from .oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider

SECRET_ENV = "BATONFLOW_TEST_OIDC_SECRET"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    running = Provider().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Server]:
    """A serve whose batonflow.toml names the test provider (loopback: private addresses are
    allowed for this test's egress)."""
    where = tmp_path_factory.mktemp("console-oidc")
    (where / "batonflow.toml").write_text(
        f"""
[governance.egress]
allow = ["127.0.0.1"]
block_private = false

[console.oidc.testidp]
title = "Test IdP"
issuer = "{provider.url}"
client_id = "{CLIENT_ID}"
client_secret_env = "{SECRET_ENV}"
claim = "email"

[console.oidc.testidp.groups]
"g-complaints" = {{ roles = ["viewer"], groups = ["complaints"] }}
"""
    )
    db = str(where / "runs.db")
    in_thread(lambda: seed_people(db))
    os.environ[SECRET_ENV] = CLIENT_SECRET
    try:
        running = Server(db, where, extra=("--workflow", f"{FLOWS}:complaint")).start()
    finally:
        del os.environ[SECRET_ENV]
    try:
        yield running
    finally:
        running.stop()


def _sign_in_with_idp(page: Any) -> None:
    page.goto("/sign-in?next=/runs")
    page.get_by_role("link", name="Test IdP").click()
    page.wait_for_load_state()


def test_an_existing_identity_signs_in_by_its_email(
    page: Any, provider: Provider, console: Server, axe: Callable[[Any], None],
    screenshot: Callable[[str], None],
) -> None:  # fmt: skip
    provider.person = {"sub": "u-1", "email": "olly@firm.example"}
    page.goto("/sign-in")
    axe(page)
    screenshot("sign-in-oidc")
    _sign_in_with_idp(page)
    page.wait_for_url("**/runs")
    assert "olly" in page.locator("form.who").inner_text()
    signed = audit_of(console, "console.signed_in")
    assert any(e["actor"] == "olly" and e["method"] == "oidc:testidp" for e in signed)


def test_a_new_person_in_a_mapped_group_gets_an_identity(
    page: Any, provider: Provider, console: Server
) -> None:
    provider.person = {"sub": "u-2", "email": "nina@firm.example", "groups": ["g-complaints"]}
    _sign_in_with_idp(page)
    page.wait_for_url("**/runs")
    assert "nina@firm.example (viewer)" in page.locator("form.who").inner_text()
    made = [e for e in audit_of(console, "identity.created") if e["name"] == "nina@firm.example"]
    assert made[0]["actor"] == "oidc:testidp"
    assert made[0]["groups"] == ["complaints"]


def test_a_person_nobody_mapped_is_refused_in_words_and_a_replay_too(
    page: Any, provider: Provider, console: Server, axe: Callable[[Any], None]
) -> None:
    provider.person = {"sub": "u-3", "email": "mallory@elsewhere.example", "groups": ["g-x"]}
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if "/callback" in r.url else None)
    _sign_in_with_idp(page)
    assert "no batonflow identity has that email" in page.locator(".reason").inner_text()
    axe(page)
    refused = audit_of(console, "console.sign_in_refused")
    assert any(e["method"] == "oidc:testidp" for e in refused)
    provider.person = {"sub": "u-1", "email": "olly@firm.example"}
    reply = page.goto(callbacks[-1])  # the same code and state again
    assert reply.status == 403
    assert "already used" in page.locator(".reason").inner_text()
