"""Authentication policies for outbound calls: basic, bearer, digest, OAuth2 and OpenID Connect.

An :class:`AuthResolver` turns a policy (the ``authentication`` of an endpoint, already evaluated)
into :class:`Credentials`: an :class:`httpx.Auth` to send the request with, plus what
``$authorization`` shows. OAuth2 and OIDC tokens are fetched through the same injected client as
every other call and cached until shortly before they expire.

Secrets never leave this module in readable form: :class:`Credentials` hides them from ``repr``
and lists them so error details can be scrubbed (:func:`scrub`), and the helpers here that
describe URLs and headers (:func:`safe_url`, :func:`redact_headers`) mask credentials.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from batonflow._net import normal_url
from batonflow.core import Clock, SystemClock
from batonflow.dsl._problems import ErrorType, Problem, WorkflowError

__all__ = [
    "AuthResolver",
    "Credentials",
    "error",
    "redact_headers",
    "safe_url",
    "scrub",
    "transport_error",
]

_WELL_KNOWN = "/.well-known/openid-configuration"
_DEFAULT_TOKEN_PATH = "/oauth2/token"
_DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, when the token response gives no expiry at all
_REDACTED = "<redacted>"
_SENSITIVE = re.compile(
    r"(?i)(authori[sz]ation|authenticat|auth[-_]|^auth$|cookie|token|secret|passw|pwd"
    r"|api[-_]?key|signature|credential|session)"
)
_SCHEMES = ("basic", "bearer", "digest", "oauth2", "oidc", "certificate")
_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
_GRANTS = {
    "client_credentials": "client_credentials",
    "password": "password",
    _TOKEN_EXCHANGE: _TOKEN_EXCHANGE,
}
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


# -- problems and hygiene, shared by the HTTP and OpenAPI calls -------------------------------


def error(
    kind: ErrorType, detail: str, *, status: int | None = None, title: str | None = None
) -> WorkflowError:
    """A workflow error of a standard kind."""
    return WorkflowError(Problem.of(kind, detail, title=title, status=status))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of a secret (four characters or longer) masked."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    return text


def safe_url(url: httpx.URL | str) -> str:
    """A URL fit to show: no user info, and secret-looking query values masked."""
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(normal_url(url))
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    if parsed.query and any(_SENSITIVE.search(key) for key in parsed.params):
        pairs = [
            (key, _REDACTED if _SENSITIVE.search(key) else value)
            for key, value in parsed.params.multi_items()
        ]
        parsed = parsed.copy_with(params=pairs)
    return str(parsed)


def redact_headers(headers: httpx.Headers) -> dict[str, str]:
    """Headers fit to show (lower-case names): credentials and cookies masked."""
    return {
        name: (_REDACTED if _SENSITIVE.search(name) else value) for name, value in headers.items()
    }


def transport_error(
    exc: httpx.RequestError, method: str, url: httpx.URL | str, secrets: Iterable[str] = ()
) -> WorkflowError:
    """The workflow error for a request that got no response: a timeout (408), a service that
    cannot be reached (503), or any other failure to communicate (500)."""
    reason = str(exc) or type(exc).__name__
    detail = scrub(f"{method} {safe_url(url)} failed: {reason}", secrets)
    if isinstance(exc, httpx.TimeoutException):
        return error(ErrorType.TIMEOUT, detail, title="Request timed out")
    if isinstance(exc, httpx.ConnectError):
        return error(ErrorType.COMMUNICATION, detail, status=503, title="Service unavailable")
    return error(ErrorType.COMMUNICATION, detail, title="Communication failed")


# -- credentials --------------------------------------------------------------------------------


class _HeaderAuth(httpx.Auth):
    """Sends a fixed ``Authorization`` header (bearer tokens, OAuth2 access tokens)."""

    def __init__(self, value: str) -> None:
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._value
        yield request


@dataclass(frozen=True, slots=True)
class Credentials:
    """A resolved policy: how to authenticate a request, and what ``$authorization`` shows."""

    scheme: str
    auth: httpx.Auth = field(repr=False)
    parameter: str = field(default="", repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def descriptor(self) -> dict[str, str]:
        """The ``$authorization`` runtime expression argument."""
        return {"scheme": self.scheme, "parameter": self.parameter}


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    type: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class _TokenRequest:
    endpoint: str
    form: dict[str, str]
    headers: dict[str, str]
    as_json: bool
    secrets: tuple[str, ...]

    def cache_key(self) -> str:
        material = json.dumps(
            [self.endpoint, self.form, self.headers, self.as_json], sort_keys=True
        )
        return hashlib.sha256(material.encode()).hexdigest()


class AuthResolver:
    """Resolves authentication policies to credentials; one per engine or per run.

    ``secrets`` holds the secrets the workflow may use (a policy body ``{use: name}`` reads its
    properties from ``secrets[name]``); ``policies`` the workflow's named policies
    (``use.authentications``, already evaluated) for ``{use: name}`` references that the caller
    did not resolve itself. OAuth2/OIDC tokens are cached per token request until shortly
    before they expire, measured on ``clock``.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        secrets: Mapping[str, Any] | None = None,
        policies: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._secrets: Mapping[str, Any] = secrets or {}
        self._policies: Mapping[str, Any] = policies or {}
        self._clock: Clock = clock or SystemClock()
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._token_endpoints: dict[str, str] = {}

    async def resolve(self, policy: Mapping[str, Any] | str) -> Credentials:
        """Credentials for ``policy``: an authentication policy, ``{use: name}``, or a name."""
        scheme, props = self._properties(self._dereference(policy))
        if scheme == "basic":
            username, password = _text(props, "username", scheme), _text(props, "password", scheme)
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            auth = httpx.BasicAuth(username, password)
            return Credentials("Basic", auth, token, (password, token))
        if scheme == "bearer":
            token = _text(props, "token", scheme)
            return Credentials("Bearer", _HeaderAuth(f"Bearer {token}"), token, (token,))
        if scheme == "digest":
            username, password = _text(props, "username", scheme), _text(props, "password", scheme)
            return Credentials("Digest", httpx.DigestAuth(username, password), "", (password,))
        if scheme in ("oauth2", "oidc"):
            return await self._oauth2(props, oidc=scheme == "oidc")
        raise error(
            ErrorType.CONFIGURATION,
            f"'{scheme}' authentication is not supported",
            title="Unsupported authentication",
        )

    # -- policy shapes --------------------------------------------------------------------------

    def _dereference(self, policy: Mapping[str, Any] | str) -> Mapping[str, Any]:
        if isinstance(policy, Mapping) and not (set(policy) & set(_SCHEMES)):
            policy = policy.get("use", policy)
        if isinstance(policy, str):
            named = self._policies.get(policy)
            if not isinstance(named, Mapping):
                raise error(ErrorType.CONFIGURATION, f"no authentication policy named '{policy}'")
            return named
        return policy

    def _properties(self, policy: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        scheme = next((name for name in _SCHEMES if name in policy), None)
        if scheme is None:
            raise error(
                ErrorType.CONFIGURATION,
                f"an authentication policy needs one of {', '.join(_SCHEMES)}",
            )
        body = policy[scheme]
        if isinstance(body, str) and scheme == "bearer":  # shorthand: `bearer: <token>`
            return scheme, {"token": body}
        if not isinstance(body, Mapping):
            raise error(ErrorType.CONFIGURATION, f"the '{scheme}' policy must be a mapping")
        if "use" in body:
            return scheme, self._secret_properties(scheme, body["use"])
        return scheme, dict(body)

    def _secret_properties(self, scheme: str, name: Any) -> dict[str, Any]:
        if not isinstance(name, str) or name not in self._secrets:
            raise error(
                ErrorType.AUTHORIZATION,
                f"secret '{name}' does not exist or the workflow may not use it",
                title="Secret not available",
            )
        value = self._secrets[name]
        if isinstance(value, str) and scheme == "bearer":
            return {"token": value}
        if not isinstance(value, Mapping):
            raise error(
                ErrorType.CONFIGURATION, f"secret '{name}' does not hold '{scheme}' properties"
            )
        return dict(value)

    # -- OAuth2 / OIDC --------------------------------------------------------------------------

    async def _oauth2(self, props: Mapping[str, Any], *, oidc: bool) -> Credentials:
        endpoint = await self._token_endpoint(props, oidc=oidc)
        request = _token_request(props, endpoint)
        token = await self._token(request, _issuers(props))
        secrets = (token.value, *request.secrets)
        auth = _HeaderAuth(f"{token.type} {token.value}")
        return Credentials(token.type, auth, token.value, secrets)

    async def _token_endpoint(self, props: Mapping[str, Any], *, oidc: bool) -> str:
        authority = _text(props, "authority", "oauth2")
        endpoints = props.get("endpoints")
        path = endpoints.get("token") if isinstance(endpoints, Mapping) else None
        if oidc or (path is None and authority.rstrip("/").endswith(_WELL_KNOWN)):
            return await self._discover(authority)
        path = str(path or _DEFAULT_TOKEN_PATH)
        if "://" in path:
            return path
        return f"{authority.rstrip('/')}/{path.lstrip('/')}"

    async def _discover(self, authority: str) -> str:
        url = authority.rstrip("/")
        if not url.endswith(_WELL_KNOWN):
            url += _WELL_KNOWN
        if url in self._token_endpoints:
            return self._token_endpoints[url]
        try:
            response = await self._client.get(url, headers={"Accept": "application/json"})
        except httpx.RequestError as exc:
            raise transport_error(exc, "GET", url) from None
        document = _json_object(response) if response.is_success else None
        endpoint = document.get("token_endpoint") if document else None
        if not isinstance(endpoint, str):
            raise error(
                ErrorType.AUTHENTICATION,
                f"OpenID discovery at {safe_url(url)} answered {response.status_code} "
                "without a token endpoint",
                title="Authentication failed",
            )
        self._token_endpoints[url] = endpoint
        return endpoint

    async def _token(self, request: _TokenRequest, issuers: list[str]) -> _Token:
        key = request.cache_key()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at > self._clock.now():
                return cached
            token = await self._fetch_token(request, issuers)
            self._tokens[key] = token
            return token

    async def _fetch_token(self, request: _TokenRequest, issuers: list[str]) -> _Token:
        headers = {"Accept": "application/json", **request.headers}
        try:
            if request.as_json:
                response = await self._client.post(
                    request.endpoint, json=request.form, headers=headers
                )
            else:
                response = await self._client.post(
                    request.endpoint, data=request.form, headers=headers
                )
        except httpx.RequestError as exc:
            raise transport_error(exc, "POST", request.endpoint, request.secrets) from None
        payload = _json_object(response)
        value = payload.get("access_token") if payload else None
        if not response.is_success or not isinstance(value, str) or not value:
            code = payload.get("error") if payload else None
            reason = f" ({code})" if isinstance(code, str) else ""
            raise error(
                ErrorType.AUTHENTICATION,
                f"token request to {safe_url(request.endpoint)} answered "
                f"{response.status_code}{reason} without an access token",
                title="Authentication failed",
            )
        claims = _jwt_claims(value)
        _check_issuer(claims, issuers)
        token_type = payload.get("token_type") if payload else None
        return _Token(value, _scheme_name(token_type), self._expiry(payload or {}, claims))

    def _expiry(self, payload: Mapping[str, Any], claims: Mapping[str, Any]) -> float:
        now = self._clock.now()
        lifetime = _number(payload.get("expires_in"))
        if lifetime is None and _number(claims.get("exp")) is not None:
            lifetime = float(claims["exp"]) - now
        if lifetime is None:
            lifetime = _DEFAULT_TOKEN_LIFETIME
        return now + lifetime - min(30.0, lifetime / 10)


# -- OAuth2 token requests ----------------------------------------------------------------------


def _token_request(props: Mapping[str, Any], endpoint: str) -> _TokenRequest:
    grant = str(props.get("grant", "")).replace("-", "_")
    grant_type = _GRANTS.get(grant) or _GRANTS.get(str(props.get("grant", "")))
    if grant_type is None:
        raise error(
            ErrorType.CONFIGURATION,
            f"OAuth2 grant '{props.get('grant')}' is not supported (supported: "
            "client_credentials, password, token exchange)",
        )
    form: dict[str, str] = {"grant_type": grant_type}
    secrets: list[str] = []
    if grant_type == "password":
        form["username"] = _text(props, "username", "oauth2")
        form["password"] = _text(props, "password", "oauth2")
        secrets.append(form["password"])
    elif grant_type.endswith("token-exchange"):
        form.update(_exchange_tokens(props, secrets))
    for key, name in (("scopes", "scope"), ("audiences", "audience")):
        values = props.get(key)
        if isinstance(values, list) and values:
            form[name] = " ".join(str(value) for value in values)
    headers = _client_authentication(props, form, secrets)
    request = props.get("request")
    encoding = request.get("encoding") if isinstance(request, Mapping) else None
    as_json = encoding == "application/json"
    return _TokenRequest(endpoint, form, headers, as_json, tuple(secrets))


def _exchange_tokens(props: Mapping[str, Any], secrets: list[str]) -> dict[str, str]:
    form: dict[str, str] = {}
    for role, required in (("subject", True), ("actor", False)):
        token = props.get(role)
        if not isinstance(token, Mapping):
            if required:
                raise error(ErrorType.CONFIGURATION, "token exchange needs a 'subject' token")
            continue
        form[f"{role}_token"] = _text(token, "token", "oauth2")
        form[f"{role}_token_type"] = _text(token, "type", "oauth2")
        secrets.append(form[f"{role}_token"])
    return form


def _client_authentication(
    props: Mapping[str, Any], form: dict[str, str], secrets: list[str]
) -> dict[str, str]:
    client = props.get("client")
    client = client if isinstance(client, Mapping) else {}
    method = str(client.get("authentication") or "client_secret_post")
    client_id = _optional_text(client, "id")
    secret = _optional_text(client, "secret")
    if secret:
        secrets.append(secret)
    if method == "none":
        if client_id:
            form["client_id"] = client_id
        return {}
    if client_id is None:
        raise error(ErrorType.CONFIGURATION, "the OAuth2 policy needs 'client.id'")
    if method == "client_secret_basic":
        pair = f"{quote(client_id, safe='')}:{quote(secret or '', safe='')}"
        basic = base64.b64encode(pair.encode()).decode("ascii")
        secrets.append(basic)
        return {"Authorization": f"Basic {basic}"}
    form["client_id"] = client_id
    if method == "client_secret_post":
        if secret is not None:
            form["client_secret"] = secret
        return {}
    if method in ("client_secret_jwt", "private_key_jwt"):
        form["client_assertion_type"] = _ASSERTION_TYPE
        form["client_assertion"] = _text(client, "assertion", "oauth2")
        secrets.append(form["client_assertion"])
        return {}
    raise error(
        ErrorType.CONFIGURATION, f"OAuth2 client authentication '{method}' is not supported"
    )


# -- small parsers ------------------------------------------------------------------------------


def _optional_text(props: Mapping[str, Any], key: str) -> str | None:
    value = props.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise error(ErrorType.CONFIGURATION, f"'{key}' must be a string")
    return str(value)


def _text(props: Mapping[str, Any], key: str, scheme: str) -> str:
    value = _optional_text(props, key)
    if value is None:
        raise error(ErrorType.CONFIGURATION, f"the '{scheme}' policy needs '{key}'")
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _issuers(props: Mapping[str, Any]) -> list[str]:
    issuers = props.get("issuers")
    return [str(issuer) for issuer in issuers] if isinstance(issuers, list) else []


def _scheme_name(token_type: Any) -> str:
    if not isinstance(token_type, str) or not token_type or token_type.lower() == "bearer":
        return "Bearer"
    return token_type


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        payload = json.loads(response.content)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT access token (not verified: only to read ``iss`` and ``exp``), or
    nothing when the token is opaque."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


def _check_issuer(claims: Mapping[str, Any], issuers: list[str]) -> None:
    issuer = claims.get("iss")
    if issuers and isinstance(issuer, str) and issuer not in issuers:
        raise error(
            ErrorType.AUTHENTICATION,
            f"the token's issuer '{issuer}' is not one of the policy's issuers",
            title="Authentication failed",
        )
