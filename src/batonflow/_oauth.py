"""OAuth2 client-credentials tokens for XOAUTH2 (IMAP in, SMTP out), as Microsoft 365 and Gmail
require: fetched from the configured token endpoint through the egress-controlled client, reused
until shortly before they expire, then refreshed. A refused credential is a ConfigError: trying
again cannot help until someone fixes it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from batonflow.errors import ConfigError

__all__ = ["OAuth2", "TokenSource", "parse_oauth2"]

#: Refresh a token this long before the expiry its endpoint announced.
REFRESH_MARGIN = 120.0
DEFAULT_SCOPE = "https://outlook.office365.com/.default"
_KEYS = ("token_url", "client_id", "client_secret_env", "scope")


@dataclass(frozen=True)
class OAuth2:
    """Client credentials: the secret is read from the environment variable
    ``client_secret_env`` when a token is fetched."""

    token_url: str
    client_id: str
    client_secret_env: str
    scope: str = DEFAULT_SCOPE


@dataclass
class TokenSource:
    """Access tokens for ``oauth2``, through ``client`` (set it before the first token)."""

    oauth2: OAuth2
    client: httpx.AsyncClient | None = None
    _token: str | None = field(default=None, repr=False)
    _expires: float = 0.0

    async def token(self, now: float) -> str:
        if self._token is None or now >= self._expires - REFRESH_MARGIN:
            self._token, lifetime = await self._fetch()
            self._expires = now + lifetime
        return self._token

    async def _fetch(self) -> tuple[str, float]:
        oauth2 = self.oauth2
        secret = os.environ.get(oauth2.client_secret_env)
        if not secret:
            raise ConfigError(f"the OAuth2 client secret: set ${oauth2.client_secret_env}")
        if self.client is None:
            raise ConfigError("OAuth2 tokens need the egress-controlled HTTP client")
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


def parse_oauth2(table: Any, where: str) -> OAuth2:
    """An ``[...oauth2]`` table: token_url, client_id, client_secret_env, scope."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table")
    missing = [k for k in _KEYS[:3] if not table.get(k)]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    return OAuth2(**{k: str(v) for k, v in table.items()})
