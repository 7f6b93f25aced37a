"""Mailbox credentials: a password from the environment, or an OAuth2 access token (XOAUTH2, as
Microsoft 365 and Gmail require) obtained with the client-credentials grant from the configured
token endpoint, through the egress-controlled client, and refreshed before it expires."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from batonflow.errors import ConfigError

__all__ = ["MailAuth", "OAuth2", "parse_auth"]

# A refused credential is a ConfigError: not retryable until someone fixes the configuration.

#: Refresh a token this long before the expiry its endpoint announced.
REFRESH_MARGIN = 120.0


@dataclass(frozen=True)
class OAuth2:
    token_url: str
    client_id: str
    client_secret_env: str
    scope: str = "https://outlook.office365.com/.default"


@dataclass
class MailAuth:
    """``password_env`` names the variable holding the password; or ``oauth2``."""

    password_env: str | None = None
    oauth2: OAuth2 | None = None
    client: httpx.AsyncClient | None = None
    _token: str | None = field(default=None, repr=False)
    _expires: float = 0.0

    async def secret(self, now: float) -> str:
        """The password, or a current access token (fetched or refreshed as needed)."""
        if self.oauth2 is None:
            assert self.password_env is not None
            value = os.environ.get(self.password_env)
            if not value:
                raise ConfigError(f"the mailbox password: set ${self.password_env}")
            return value
        if self._token is None or now >= self._expires - REFRESH_MARGIN:
            self._token, lifetime = await self._fetch(self.oauth2)
            self._expires = now + lifetime
        return self._token

    async def _fetch(self, oauth2: OAuth2) -> tuple[str, float]:
        secret = os.environ.get(oauth2.client_secret_env)
        if not secret:
            raise ConfigError(f"the mailbox OAuth2 client secret: set ${oauth2.client_secret_env}")
        if self.client is None:
            raise ConfigError("an OAuth2 mailbox needs the egress-controlled HTTP client")
        form = {
            "grant_type": "client_credentials",
            "client_id": oauth2.client_id,
            "client_secret": secret,
            "scope": oauth2.scope,
        }
        response = await self.client.post(oauth2.token_url, data=form)
        if response.status_code in (400, 401, 403):
            raise ConfigError(
                f"the token endpoint {oauth2.token_url} refused the client credentials"
                f" ({response.status_code}): {response.text[:300]}"
            )
        response.raise_for_status()
        body: Any = response.json()
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ConfigError(f"the token endpoint {oauth2.token_url} gave no access_token")
        return token, float(body.get("expires_in", 3600))


def parse_auth(entry: Mapping[str, Any], where: str) -> MailAuth:
    has_password, oauth = "password_env" in entry, entry.get("oauth2")
    if has_password == (oauth is not None):
        raise ConfigError(
            f"{where}: give exactly one of password_env = 'VARIABLE' or an [oauth2] table"
            " (token_url, client_id, client_secret_env, scope)"
        )
    if has_password:
        return MailAuth(password_env=str(entry["password_env"]))
    if not isinstance(oauth, dict):
        raise ConfigError(f"{where}.oauth2: expected a table")
    missing = [k for k in ("token_url", "client_id", "client_secret_env") if not oauth.get(k)]
    if missing:
        raise ConfigError(f"{where}.oauth2: missing {', '.join(missing)}")
    unknown = sorted(set(oauth) - {"token_url", "client_id", "client_secret_env", "scope"})
    if unknown:
        raise ConfigError(f"{where}.oauth2: unknown key(s) {', '.join(unknown)}")
    return MailAuth(oauth2=OAuth2(**{k: str(v) for k, v in oauth.items()}))
