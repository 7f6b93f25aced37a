"""``keycloak``: an OAuth2 / OpenID Connect authority, and ``secured.fake.com``: an API it guards.

The authority is the one the DSL examples name, ``http://keycloak/realms/fake-authority``. It
answers token requests at ``/oauth2/token`` (the DSL's default path), ``/auth/token`` (the path
``authentication-oauth2.yaml`` sets) and ``/protocol/openid-connect/token`` (what its discovery
document, ``/.well-known/openid-configuration``, advertises), for the ``client_credentials`` and
``password`` grants and token exchange (RFC 8693), client authentication by
``client_secret_post``, ``client_secret_basic`` or a client assertion (any JWT whose ``sub`` is
the client), form or JSON encoded. Tokens are HS256 JWTs; every token request is counted.

``secured.fake.com/sample`` (the DSL reference's examples) accepts Basic ``admin:password123``,
Digest ``admin:password123``, or a Bearer token this authority issued and that has not expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ._base import Request, Response
from .httpbin import digest_challenge, digest_valid

REALM = "fake-authority"
ISSUER = f"http://keycloak/realms/{REALM}"
CLIENTS = {"workflow-runtime-id": "workflow-runtime-secret", "workflow-runtime": "**********"}
USERS = {"admin": "password123"}
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
START = 1_767_225_600.0  # the fake clock's default start: 2026-01-01T00:00:00Z
_KEY = b"loopback-signing-key"
_SECURED_REALM = "secured.fake.com"


@dataclass
class TokenRequest:
    """What one token request asked for (secrets left out)."""

    path: str
    grant_type: str
    client_id: str | None
    client_auth: str  # "post", "basic", "jwt" or "none"
    scope: str | None
    audience: str | None
    encoding: str  # "form" or "json"


@dataclass
class Identity:
    """The authority's state. ``now`` is its clock (seconds); move it to expire tokens."""

    now: float = START
    expires_in: int | None = 300
    token_requests: list[TokenRequest] = field(default_factory=list)
    issued: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the authority --------------------------------------------------------------------

    def authority(self, request: Request) -> Response:
        prefix = f"/realms/{REALM}"
        path = request.path
        if path == f"{prefix}/.well-known/openid-configuration" and request.method == "GET":
            return Response.json(discovery_document())
        token_paths = ("/oauth2/token", "/auth/token", "/protocol/openid-connect/token")
        if request.method == "POST" and path in {prefix + p for p in token_paths}:
            return self._token(request)
        return Response.json({"error": "not_found"}, 404)

    def _token(self, request: Request) -> Response:
        as_json = request.header("content-type").startswith("application/json")
        params: dict[str, str] = (
            {k: str(v) for k, v in (request.json() or {}).items()}
            if as_json
            else {k: v[0] for k, v in request.form().items()}
        )
        client_id, secret, how = _client(request, params)
        record = TokenRequest(
            request.path,
            params.get("grant_type", ""),
            client_id,
            how,
            params.get("scope"),
            params.get("audience"),
            "json" if as_json else "form",
        )
        with self._lock:
            self.token_requests.append(record)
        if not self._client_ok(client_id, secret, how, params):
            return Response.json({"error": "invalid_client"}, 401)
        subject = self._subject(record.grant_type, params, client_id or "")
        if subject is None:
            return Response.json({"error": "invalid_grant"}, 400)
        return Response.json(self._issue(subject, record))

    def _client_ok(
        self, client_id: str | None, secret: str | None, how: str, params: dict[str, str]
    ) -> bool:
        if client_id not in CLIENTS:
            return False
        if how == "jwt":  # a client assertion: a JWT about this client, signed by anyone
            try:
                claims = json.loads(_b64decode(params["client_assertion"].split(".")[1]))
            except (ValueError, IndexError):
                return False
            return bool(claims.get("sub") == client_id)
        return CLIENTS[client_id] == secret

    def _subject(self, grant_type: str, params: dict[str, str], client_id: str) -> str | None:
        """Whom the token is for, or None when the grant is refused."""
        if grant_type == "client_credentials":
            return client_id
        if grant_type == "password":
            user = params.get("username", "")
            return user if USERS.get(user) == params.get("password") else None
        if grant_type == TOKEN_EXCHANGE:
            claims = self.valid_claims(params.get("subject_token", ""))
            return f"{claims['sub']} via {client_id}" if claims else None
        return None

    def _issue(self, subject: str, record: TokenRequest) -> dict[str, Any]:
        with self._lock:
            lifetime = self.expires_in
            claims: dict[str, Any] = {
                "iss": ISSUER,
                "sub": subject,
                "iat": int(self.now),
                "jti": str(len(self.token_requests)),
            }
            if lifetime is not None:
                claims["exp"] = int(self.now) + lifetime
            if record.scope:
                claims["scope"] = record.scope
            if record.audience:
                claims["aud"] = record.audience.split()
            token = make_jwt(claims)
            self.issued.add(token)
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if lifetime is not None:
            answer["expires_in"] = lifetime
        return answer

    # -- the guarded API ------------------------------------------------------------------

    def secured(self, request: Request) -> Response:
        if request.path != "/sample":
            return Response.json({"error": "not found"}, 404)
        who = self._authenticate(request)
        if who is None:
            return Response(
                401,
                b"",
                [
                    ("WWW-Authenticate", f'Basic realm="{_SECURED_REALM}"'),
                    ("WWW-Authenticate", digest_challenge(_SECURED_REALM)),
                ],
            )
        return Response.json({"authenticated": True, **who})

    def _authenticate(self, request: Request) -> dict[str, Any] | None:
        scheme, _, value = request.header("authorization").partition(" ")
        if scheme.lower() == "basic":
            user, _, password = base64.b64decode(value).decode().partition(":")
            return {"scheme": "Basic", "user": user} if USERS.get(user) == password else None
        if scheme.lower() == "digest":
            ok = digest_valid(request, "admin", USERS["admin"], _SECURED_REALM)
            return {"scheme": "Digest", "user": "admin"} if ok else None
        if scheme.lower() == "bearer":
            claims = self.valid_claims(value)
            return {"scheme": "Bearer", "claims": claims} if claims else None
        return None

    def valid_claims(self, token: str) -> dict[str, Any] | None:
        """The token's claims if this authority issued it and it has not expired."""
        with self._lock:
            if token not in self.issued:
                return None
            claims: dict[str, Any] = json.loads(_b64decode(token.split(".")[1]))
            if "exp" in claims and claims["exp"] <= self.now:
                return None
            return claims


def discovery_document() -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "token_endpoint": f"{ISSUER}/protocol/openid-connect/token",
        "authorization_endpoint": f"{ISSUER}/protocol/openid-connect/auth",
        "jwks_uri": f"{ISSUER}/protocol/openid-connect/certs",
        "grant_types_supported": ["client_credentials", "password", TOKEN_EXCHANGE],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    }


def _client(request: Request, params: dict[str, str]) -> tuple[str | None, str | None, str]:
    scheme, _, value = request.header("authorization").partition(" ")
    if scheme.lower() == "basic":
        client_id, _, secret = base64.b64decode(value).decode().partition(":")
        return unquote(client_id), unquote(secret), "basic"
    if params.get("client_assertion_type") == ASSERTION_TYPE:
        return params.get("client_id"), None, "jwt"
    if "client_secret" in params:
        return params.get("client_id"), params["client_secret"], "post"
    return params.get("client_id"), None, "none"


def make_jwt(claims: dict[str, Any]) -> str:
    def encode(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{encode({'alg': 'HS256', 'typ': 'JWT'})}.{encode(claims)}"
    signature = hmac.new(_KEY, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
