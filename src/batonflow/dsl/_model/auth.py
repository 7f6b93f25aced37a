"""Authentication policies: basic, bearer, digest, OAuth2 and OpenID Connect, each given inline
or as the name of a secret, and references (``use: name``) to the workflow's reusable ones."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Discriminator, Tag

from batonflow.dsl._model.base import TAG, Model, NonEmptyStr, OpenModel, Uri, by_key

__all__ = [
    "AuthenticationPolicy",
    "AuthenticationReference",
    "BasicAuthentication",
    "BasicCredentials",
    "BearerAuthentication",
    "BearerToken",
    "DigestAuthentication",
    "OAuth2Authentication",
    "OAuth2Client",
    "OAuth2Endpoints",
    "OAuth2Properties",
    "OAuth2Settings",
    "OAuth2TokenDefinition",
    "OAuth2TokenRequest",
    "OidcAuthentication",
    "ReferenceableAuthentication",
    "ReusableAuthenticationPolicy",
    "SCHEMES",
    "SecretReference",
]

SCHEMES = ("basic", "bearer", "digest", "oauth2", "oidc")


class SecretReference(Model):
    """Credentials taken from a secret: ``use: secretName``."""

    use: NonEmptyStr


def _secret_or_inline(value: Any) -> str | None:
    if isinstance(value, SecretReference):  # serializing
        return TAG + "secret"
    if isinstance(value, dict | Model):
        return TAG + ("secret" if "use" in value else "inline")
    return None


def _secret_or(what: str) -> Discriminator:
    return Discriminator(
        _secret_or_inline,
        custom_error_type="wrong_type",
        custom_error_message=f"expected {what} (an object), or an object with 'use: <secret>'",
    )


class BasicCredentials(Model):
    username: str
    password: str


class BearerToken(Model):
    token: str


class OAuth2Client(Model):
    id: str | None = None
    secret: str | None = None
    assertion: str | None = None
    authentication: Literal[
        "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"
    ] = "client_secret_post"


class OAuth2TokenRequest(OpenModel):
    encoding: Literal["application/x-www-form-urlencoded", "application/json"] = (
        "application/x-www-form-urlencoded"
    )


class OAuth2TokenDefinition(Model):
    token: str
    type: str


class OAuth2Properties(Model):
    """Inline OAuth2 / OpenID Connect settings (all optional in DSL 1.0.3)."""

    authority: Uri | None = None
    grant: (
        Literal[
            "authorization_code",
            "client_credentials",
            "password",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ]
        | None
    ) = None
    client: OAuth2Client | None = None
    request: OAuth2TokenRequest | None = None
    issuers: list[str] | None = None
    scopes: list[str] | None = None
    audiences: list[str] | None = None
    username: str | None = None
    password: str | None = None
    subject: OAuth2TokenDefinition | None = None
    actor: OAuth2TokenDefinition | None = None


class OAuth2Endpoints(OpenModel):
    token: str = "/oauth2/token"
    revocation: str = "/oauth2/revoke"
    introspection: str = "/oauth2/introspect"


class OAuth2Settings(OAuth2Properties):
    """OAuth2 settings, with the token, revocation and introspection paths."""

    endpoints: OAuth2Endpoints | None = None


Basic = Annotated[
    Annotated[SecretReference, Tag(TAG + "secret")]
    | Annotated[BasicCredentials, Tag(TAG + "inline")],
    _secret_or("a username and a password"),
]
Bearer = Annotated[
    Annotated[SecretReference, Tag(TAG + "secret")] | Annotated[BearerToken, Tag(TAG + "inline")],
    _secret_or("a token"),
]
OAuth2 = Annotated[
    Annotated[SecretReference, Tag(TAG + "secret")]
    | Annotated[OAuth2Settings, Tag(TAG + "inline")],
    _secret_or("OAuth2 settings"),
]
Oidc = Annotated[
    Annotated[SecretReference, Tag(TAG + "secret")]
    | Annotated[OAuth2Properties, Tag(TAG + "inline")],
    _secret_or("OpenID Connect settings"),
]


class BasicAuthentication(Model):
    scheme: ClassVar[str] = "basic"
    basic: Basic


class BearerAuthentication(Model):
    scheme: ClassVar[str] = "bearer"
    bearer: Bearer


class DigestAuthentication(Model):
    scheme: ClassVar[str] = "digest"
    digest: Basic


class OAuth2Authentication(Model):
    scheme: ClassVar[str] = "oauth2"
    oauth2: OAuth2


class OidcAuthentication(Model):
    scheme: ClassVar[str] = "oidc"
    oidc: Oidc


class AuthenticationReference(Model):
    """``use: name``: the workflow's reusable policy of that name (``use.authentications``)."""

    scheme: ClassVar[str] = "use"
    use: NonEmptyStr


_policy_check, _policy_choice = by_key(SCHEMES, "an authentication policy")
_PolicyUnion = (
    Annotated[BasicAuthentication, Tag(TAG + "basic")]
    | Annotated[BearerAuthentication, Tag(TAG + "bearer")]
    | Annotated[DigestAuthentication, Tag(TAG + "digest")]
    | Annotated[OAuth2Authentication, Tag(TAG + "oauth2")]
    | Annotated[OidcAuthentication, Tag(TAG + "oidc")]
)

#: an inline policy: exactly one of basic, bearer, digest, oauth2, oidc
AuthenticationPolicy = Annotated[Annotated[_PolicyUnion, _policy_choice], _policy_check]


def _schemes_only(value: Any) -> Any:
    """The schema reads only the scheme of a reusable policy and ignores other keys."""
    if isinstance(value, dict) and any(k in value for k in SCHEMES):
        return {k: v for k, v in value.items() if k in SCHEMES}
    return value


#: an entry of ``use.authentications``
ReusableAuthenticationPolicy = Annotated[AuthenticationPolicy, BeforeValidator(_schemes_only)]

_ref_check, _ref_choice = by_key(("use", *SCHEMES), "an authentication policy")

#: a policy where one is used: inline, or ``use: name`` of a reusable one
ReferenceableAuthentication = Annotated[
    Annotated[
        Annotated[AuthenticationReference, Tag(TAG + "use")] | _PolicyUnion,
        _ref_choice,
    ],
    _ref_check,
]
