"""Signing in and out of the console in a real browser against a real ``batonflow serve``:
sessions, CSRF on every form, refusals explained and audited, and the overview page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from server.harness import Server

from .conftest import PASSWORD, audit_of


def test_a_visitor_is_sent_to_sign_in_and_comes_back(
    page: Any, console: Server, axe: Callable[[Any], None], screenshot: Callable[[str], None]
) -> None:
    page.goto("/runs?status=faulted")
    assert "/sign-in" in page.url
    axe(page)
    screenshot("sign-in")
    page.get_by_label("Name").fill("olly")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/runs?status=faulted")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["bf_session"]
    assert session["httpOnly"]
    assert session["sameSite"] == "Lax"
    assert any(e["actor"] == "olly" for e in audit_of(console, "console.signed_in"))


def test_the_overview_shows_what_needs_a_person(
    page: Any, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    sign_in("ann")
    heading = page.get_by_role("heading", level=1)
    assert heading.inner_text() == "Overview"
    nav = page.get_by_role("navigation", name="Console areas")
    for label in ("Runs", "Approvals", "Workflows", "Audit", "Data subjects", "Connectors",
                  "Alerts", "Identities"):  # fmt: skip
        assert nav.get_by_role("link", name=label).is_visible()
    assert page.get_by_role("heading", name="Needs a person now").is_visible()
    assert page.get_by_role("heading", name="Runs by workflow").is_visible()
    axe(page)


def test_a_wrong_password_is_refused_in_words_and_audited(
    page: Any, console: Server, sign_in: Callable[..., None], axe: Callable[[Any], None]
) -> None:
    sign_in("vera", password="not vera's password")
    assert "/sign-in" in page.url
    alert = page.get_by_role("alert")
    assert "do not match" in alert.inner_text()
    axe(page)
    refused = audit_of(console, "console.sign_in_refused")
    assert any(e["name"] == "vera" and e["reason"] == "wrong password" for e in refused)


def test_sign_out_ends_the_session_everywhere(
    page: Any, console: Server, sign_in: Callable[..., None]
) -> None:
    sign_in("vera")
    token = {c["name"]: c["value"] for c in page.context.cookies()}["bf_session"]
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/sign-in")
    assert "You are signed out." in page.get_by_role("status").inner_text()
    # the old cookie, replayed, no longer opens anything: the session is gone from the store
    reply = httpx.get(console.url + "/", cookies={"bf_session": token}, follow_redirects=False)
    assert reply.status_code == 303
    assert reply.headers["location"].startswith("/sign-in")
    assert any(e["actor"] == "vera" for e in audit_of(console, "console.signed_out"))


def test_a_form_post_without_its_csrf_token_is_refused(
    page: Any, console: Server, sign_in: Callable[..., None]
) -> None:
    sign_in("olly")
    # the browser's own cookies, but no token in the form: a cross-site forgery's shape
    reply = page.request.post("/sign-out", form={"next": "/"}, max_redirects=0)
    assert reply.status == 400
    assert "no valid security token" in reply.text()
    page.goto("/")
    assert page.get_by_role("heading", level=1).inner_text() == "Overview"  # still signed in
    reply = page.request.post(
        "/sign-out", form={"csrf": "forged"}, headers={"origin": "https://evil.example"},
        max_redirects=0,
    )  # fmt: skip
    assert reply.status == 400
    assert "another site" in reply.text()
    refused = audit_of(console, "api.refused")
    assert any(e["path"] == "/sign-out" and e["actor"] == "olly" for e in refused)


def test_the_console_pages_carry_security_headers(console: Server) -> None:
    reply = httpx.get(console.url + "/sign-in")
    assert reply.status_code == 200
    policy = reply.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert reply.headers["x-content-type-options"] == "nosniff"
    # the sign-in page never redirects off the site, whatever `next` says
    for target in ("https://evil.example/", "//evil.example/x"):
        with httpx.Client(base_url=console.url) as login:
            login.get("/sign-in")
            form = {"name": "nobody", "password": "x", "next": target,
                    "csrf": login.cookies["bf_csrf"]}  # fmt: skip
            reply = login.post("/sign-in", data=form)
        assert reply.status_code == 401
        assert 'name="next" value="/"' in reply.text
