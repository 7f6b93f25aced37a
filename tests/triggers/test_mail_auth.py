"""Mailbox OAuth2 (XOAUTH2): the access token comes from the configured client credentials, from
a real token endpoint on loopback, through batonflow's egress client; it is reused until two
minutes before it expires, then refreshed; refused credentials say so."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from batonflow._net import make_client
from batonflow.errors import ConfigError
from batonflow.triggers._mail_auth import MailAuth, parse_auth


class TokenEndpoint:
    def __init__(self) -> None:
        self.forms: list[dict[str, list[str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = parse_qs(self.rfile.read(length).decode())
                outer.forms.append(form)
                ok = form.get("client_secret") == ["right"]
                body = {"access_token": f"token-{len(outer.forms)}", "expires_in": 3600}
                data = json.dumps(body if ok else {"error": "invalid_client"}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"


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


def oauth(url: str) -> dict[str, Any]:
    return {"oauth2": {"token_url": url, "client_id": "intake", "client_secret_env": "BF_SECRET"}}


async def test_tokens_are_fetched_reused_and_refreshed(
    endpoint: TokenEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BF_SECRET", "right")
    auth = parse_auth(oauth(endpoint.url), "[triggers.mailboxes.x]")
    async with make_client() as client:
        auth.client = client
        assert await auth.secret(0.0) == "token-1"
        assert await auth.secret(3000.0) == "token-1"  # still valid
        assert await auth.secret(3500.0) == "token-2"  # within two minutes of expiry
    (first, _) = endpoint.forms
    assert first["grant_type"] == ["client_credentials"]
    assert first["client_id"] == ["intake"]
    assert first["scope"] == ["https://outlook.office365.com/.default"]


async def test_refused_credentials_say_so(
    endpoint: TokenEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BF_SECRET", "wrong")
    auth = parse_auth(oauth(endpoint.url), "[triggers.mailboxes.x]")
    async with make_client() as client:
        auth.client = client
        with pytest.raises(ConfigError, match=r"refused the client credentials \(401\)"):
            await auth.secret(0.0)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({}, "exactly one of password_env"),
        ({"password_env": "X", "oauth2": {}}, "exactly one of password_env"),
        ({"oauth2": {"token_url": "https://t"}}, "missing client_id, client_secret_env"),
        ({"oauth2": {"token_url": "u", "client_id": "c", "client_secret_env": "S", "x": 1}},
         "unknown key(s) x"),
    ],
)  # fmt: skip
def test_bad_auth_tables(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_auth(entry, "[triggers.mailboxes.x]")
    assert message in str(err.value)


async def test_a_missing_password_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BF_NO_SUCH_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"set \$BF_NO_SUCH_PASSWORD"):
        await MailAuth(password_env="BF_NO_SUCH_PASSWORD").secret(0.0)
