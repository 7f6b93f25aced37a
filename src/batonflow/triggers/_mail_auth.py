"""Mailbox credentials: a password from the environment, or an OAuth2 access token (XOAUTH2, as
Microsoft 365 and Gmail require) from the configured client credentials (:mod:`batonflow._oauth`:
fetched through the egress-controlled client, refreshed before it expires)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from batonflow._oauth import OAuth2, TokenSource, parse_oauth2
from batonflow.errors import ConfigError

__all__ = ["MailAuth", "OAuth2", "parse_auth"]


@dataclass
class MailAuth:
    """``password_env`` names the variable holding the password; or ``oauth2``."""

    password_env: str | None = None
    oauth2: OAuth2 | None = None
    client: httpx.AsyncClient | None = None
    _tokens: TokenSource | None = None

    async def secret(self, now: float) -> str:
        """The password, or a current access token (fetched or refreshed as needed)."""
        if self.oauth2 is None:
            assert self.password_env is not None
            value = os.environ.get(self.password_env)
            if not value:
                raise ConfigError(f"the mailbox password: set ${self.password_env}")
            return value
        if self._tokens is None:
            self._tokens = TokenSource(self.oauth2)
        self._tokens.client = self.client
        return await self._tokens.token(now)


def parse_auth(entry: Mapping[str, Any], where: str) -> MailAuth:
    has_password, oauth = "password_env" in entry, entry.get("oauth2")
    if has_password == (oauth is not None):
        raise ConfigError(
            f"{where}: give exactly one of password_env = 'VARIABLE' or an [oauth2] table"
            " (token_url, client_id, client_secret_env, scope)"
        )
    if has_password:
        return MailAuth(password_env=str(entry["password_env"]))
    return MailAuth(oauth2=parse_oauth2(oauth, f"{where}.oauth2"))
