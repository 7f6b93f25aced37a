"""E-mail out with OAuth2 (XOAUTH2): Microsoft switches SMTP basic authentication off by default
at the end of December 2026. A real SMTP server on loopback (aiosmtpd) that accepts only a
bearer token, a real token endpoint on loopback, batonflow's egress client between them."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from batonflow._net import make_client
from batonflow._oauth import OAuth2
from batonflow.catalog._email import EmailRejected, Mailer, SmtpSettings, parse_smtp_settings
from batonflow.errors import ConfigError
from triggers.test_mail_auth import TokenEndpoint


class BearerOnly:
    """Accepts AUTH XOAUTH2 with the token ``token-1`` for office@firm.example, nothing else."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.logins: list[str] = []

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        raw = base64.b64decode(args[1]).decode() if len(args) > 1 else ""
        self.logins.append(raw)
        ok = raw == "user=office@firm.example\x01auth=Bearer token-1\x01\x01"
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        self.messages.append(envelope.content)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[BearerOnly, int]]:
    handler, port = BearerOnly(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, auth_require_tls=False,
                            auth_exclude_mechanism=["LOGIN", "PLAIN"])  # fmt: skip
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    server = TokenEndpoint()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def settings(port: int, url: str) -> SmtpSettings:
    oauth2 = OAuth2(token_url=url, client_id="mailer", client_secret_env="BF_SMTP_SECRET")
    return SmtpSettings(host="127.0.0.1", port=port, sender="office@firm.example",
                        username="office@firm.example", oauth2=oauth2)  # fmt: skip


async def test_mail_goes_out_with_a_bearer_token(
    smtp: tuple[BearerOnly, int], endpoint: TokenEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, port = smtp
    monkeypatch.setenv("BF_SMTP_SECRET", "right")
    async with make_client() as client:
        mailer = Mailer(settings(port, endpoint.url), client=client)
        for n in range(2):
            sent = await mailer.send_email(to="ann@client.example", subject=f"Re {n}", body="Hi")
            assert sent["accepted"] == 1
    assert len(handler.messages) == 2
    assert len(endpoint.forms) == 1  # the token was reused


async def test_a_token_the_server_refuses_is_a_rejection(
    smtp: tuple[BearerOnly, int], endpoint: TokenEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port = smtp
    monkeypatch.setenv("BF_SMTP_SECRET", "right")
    endpoint.forms.append({})  # the endpoint now hands out token-2, which the server refuses
    async with make_client() as client:
        mailer = Mailer(settings(port, endpoint.url), client=client)
        with pytest.raises(EmailRejected, match="535"):
            await mailer.send_email(to="ann@client.example", subject="Re", body="Hi")


def test_the_email_table_takes_an_oauth2_table() -> None:
    data = {"email": {"host": "smtp.office365.com", "port": 587, "tls": "starttls",
                      "sender": "office@firm.example", "username": "office@firm.example",
                      "oauth2": {"token_url": "https://login.example/token", "client_id": "c",
                                 "client_secret_env": "S"}}}  # fmt: skip
    parsed = parse_smtp_settings(data, "batonflow.toml")
    assert parsed.oauth2 is not None
    assert parsed.oauth2.scope == "https://outlook.office365.com/.default"
    data["email"]["password_env"] = "P"
    with pytest.raises(
        ConfigError,
        match=r"email: with \[email.oauth2\] \(XOAUTH2\) give username and no password_env",
    ):
        parse_smtp_settings(data, "batonflow.toml")
