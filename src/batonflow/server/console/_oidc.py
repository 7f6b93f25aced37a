"""OpenID Connect sign-in (any provider with discovery; Microsoft Entra ID is the common case),
with Authlib for the protocol pieces: authorization code with PKCE (S256), a nonce, and the ID
token's signature, issuer, audience and expiry checked (``joserfc``, Authlib's JOSE) against
the keys the provider publishes. Every request to the provider goes through the
egress-controlled client; the issuer's host is on the allow-list by being configured.

Configuration, per provider (``batonflow.toml``)::

    [console.oidc.entra]
    title = "Microsoft Entra ID"
    issuer = "https://login.microsoftonline.com/<tenant>/v2.0"
    client_id = "..."
    client_secret_env = "ENTRA_CLIENT_SECRET"   # the secret stays in the environment
    claim = "email"                             # compared with identities' e-mail and name
    groups_claim = "groups"                     # optional, with [console.oidc.entra.groups]

    [console.oidc.entra.groups]                 # optional: who gets an identity on first sign-in
    "<group object id>" = { roles = ["operator"], groups = ["complaints"] }

A person whose claim names an existing identity signs in as it (its roles are administered in
batonflow). Without one, an identity is created only when ``groups`` maps one of their groups
(actor ``oidc:<provider>``, audited); anyone else is refused, in words. The state, nonce and
PKCE verifier live in a ``console.oidc`` record (any ``serve`` process can finish the sign-in)
bound to the browser by a cookie, used once, and valid for ten minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from batonflow.configuration import Setup
from batonflow.errors import AccessDenied, ConfigError
from batonflow.governance._identity import (
    Identity,
    create_identity,
    list_identities,
)
from batonflow.store import AuditEntry, Store

__all__ = ["OIDC_KIND", "Provider", "finish", "providers", "start"]

OIDC_KIND = "console.oidc"
#: Seconds a sign-in may take at the provider.
PENDING_LIFETIME = 600.0


@dataclass(frozen=True)
class Provider:
    name: str
    issuer: str
    client_id: str
    client_secret: str | None
    title: str
    claim: str = "email"
    groups_claim: str = "groups"
    groups: Mapping[str, Mapping[str, list[str]]] = field(default_factory=dict)


def providers(setup: Setup) -> dict[str, Provider]:
    """The configured providers by name; ConfigError naming the file and key when wrong."""
    console = setup.data.get("console", {})
    table = console.get("oidc", {}) if isinstance(console, Mapping) else None
    if not isinstance(table, Mapping):
        raise ConfigError(f"{setup.source}: console.oidc: must be a table of providers")
    found = {}
    for name, entry in table.items():
        where = f"{setup.source}: console.oidc.{name}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: must be a table")
        for key in ("issuer", "client_id"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ConfigError(f"{where}.{key}: expected a string (see docs/console.md)")
        secret_env = entry.get("client_secret_env")
        secret = os.environ.get(secret_env) if isinstance(secret_env, str) else None
        if isinstance(secret_env, str) and secret is None:
            raise ConfigError(f"{where}.client_secret_env: ${secret_env} is not set")
        groups = entry.get("groups", {})
        if not isinstance(groups, Mapping):
            raise ConfigError(f"{where}.groups: expected a table of group = {{roles, groups}}")
        found[name] = Provider(
            name, entry["issuer"].rstrip("/"), entry["client_id"], secret,
            str(entry.get("title", name)), str(entry.get("claim", "email")),
            str(entry.get("groups_claim", "groups")), groups,
        )  # fmt: skip
    return found


async def _discover(client: Any, provider: Provider) -> dict[str, Any]:
    url = f"{provider.issuer}/.well-known/openid-configuration"
    reply = await client.get(url)
    if reply.status_code != 200:
        raise AccessDenied(f"{provider.title} did not answer its discovery document ({url})")
    found: dict[str, Any] = reply.json()
    if found.get("issuer", "").rstrip("/") != provider.issuer:
        raise AccessDenied(f"{provider.title}'s discovery document names another issuer")
    return found


async def start(
    store: Store, client: Any, provider: Provider, redirect_uri: str, next_path: str, now: float
) -> tuple[str, str]:
    """``(URL to send the browser to, browser binding for the cookie)``."""
    meta = await _discover(client, provider)
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    binding = secrets.token_urlsafe(24)
    url = add_params_to_uri(
        meta["authorization_endpoint"],
        [("response_type", "code"), ("client_id", provider.client_id),
         ("redirect_uri", redirect_uri), ("scope", "openid email profile"), ("state", state),
         ("nonce", nonce), ("code_challenge", create_s256_code_challenge(verifier)),
         ("code_challenge_method", "S256")],
    )  # fmt: skip
    pending = {"provider": provider.name, "nonce": nonce, "verifier": verifier, "next": next_path,
               "binding": _hash(binding), "expires_at": now + PENDING_LIFETIME}  # fmt: skip
    await store.put_record(OIDC_KIND, _hash(state), json.dumps(pending), now)
    return url, binding


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def finish(
    store: Store, client: Any, provider: Provider, redirect_uri: str, *,
    code: str, state: str, binding: str | None, now: float,
) -> tuple[Identity, str]:  # fmt: skip
    """The identity the provider vouches for and the page to go to; AccessDenied, in words,
    when anything does not check out."""
    text = await store.get_record(OIDC_KIND, _hash(state))
    if text is None:
        raise AccessDenied(
            "this sign-in link was already used or never started here: sign in again"
        )
    await store.put_record(OIDC_KIND, _hash(state), None, now)  # used once, whatever follows
    pending = json.loads(text)
    if pending["provider"] != provider.name or not binding or _hash(binding) != pending["binding"]:
        raise AccessDenied("this sign-in was started in another browser: sign in again")
    if float(pending["expires_at"]) <= now:
        raise AccessDenied("this sign-in took longer than 10 minutes: sign in again")
    meta = await _discover(client, provider)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": provider.client_id, "code_verifier": pending["verifier"]}  # fmt: skip
    if provider.client_secret:
        form["client_secret"] = provider.client_secret
    reply = await client.post(meta["token_endpoint"], data=form)
    if reply.status_code != 200:
        raise AccessDenied(f"{provider.title} refused the sign-in code ({reply.status_code})")
    token = reply.json()
    keys = (await client.get(meta["jwks_uri"])).json()
    registry = jwt.JWTClaimsRegistry(
        now=int(now), leeway=60, iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": provider.client_id},
        nonce={"essential": True, "value": pending["nonce"]}, exp={"essential": True},
    )  # fmt: skip
    try:
        found = KeySet.import_key_set(keys)
        decoded = jwt.decode(token["id_token"], found, algorithms=["RS256", "ES256", "PS256"])
        registry.validate(decoded.claims)
        claims = dict(decoded.claims)
    except (JoseError, KeyError, ValueError) as exc:
        raise AccessDenied(f"{provider.title}'s ID token did not check out: {exc}") from None
    return await _identity_for(store, provider, claims, now), str(pending["next"])


async def _identity_for(
    store: Store, provider: Provider, claims: dict[str, Any], now: float
) -> Identity:
    value = claims.get(provider.claim)
    if not isinstance(value, str) or not value:
        raise AccessDenied(f"{provider.title} did not say who you are (no {provider.claim!r})")
    wanted = value.casefold()
    for identity in await list_identities(store):
        if wanted in identity.aliases():
            if identity.disabled:
                raise AccessDenied(f"identity {identity.name!r} is disabled")
            return identity
    member = claims.get(provider.groups_claim) or []
    mapped = [provider.groups[g] for g in member if isinstance(g, str) and g in provider.groups]
    if not mapped:
        raise AccessDenied(
            f"{value} signed in at {provider.title}, but no batonflow identity has that"
            f" {provider.claim} and none of their groups is mapped to roles: ask an administrator"
        )
    roles = sorted({r for m in mapped for r in m.get("roles", [])})
    groups = sorted({g for m in mapped for g in m.get("groups", [])})
    actor = Identity(name=f"oidc:{provider.name}", roles=("admin",))
    email = value if "@" in value else claims.get("email")
    made = await create_identity(
        store, value, actor=actor, now=now, roles=roles, groups=groups, email=email
    )
    await store.append_audit(
        [AuditEntry("console.identity_provisioned", json.dumps({"provider": provider.name}),
                    actor=made.name)], now,
    )  # fmt: skip
    return made
