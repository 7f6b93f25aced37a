"""``call: http``: build the request from the task's evaluated ``with``, send it, shape the output.

The interpreter evaluates runtime expressions in ``with`` first; this module then expands the
endpoint's URI template (RFC 6570 simple string expansion, from the task's transformed input),
authenticates, sends the request through the injected client, and returns the output the task
asked for:

- ``content`` (default): the response body, deserialized when it is JSON, text when it is text,
  base64 otherwise (``None`` when empty);
- ``response``: the DSL's HTTP response object ``{request: {method, uri, headers}, statusCode,
  headers, content}``, header names in lower case and credentials masked;
- ``raw``: the body base64-encoded (``None`` when empty).

A status outside 200-299 (200-399 with ``redirect: true``, which also follows redirects) raises a
communication error carrying the HTTP status. See ``docs/dsl.md``, "HTTP and OpenAPI calls".
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from batonflow._net import normal_url
from batonflow.dsl._auth import (
    AuthResolver,
    Credentials,
    error,
    redact_headers,
    safe_url,
    scrub,
    transport_error,
)
from batonflow.dsl._problems import ErrorType, WorkflowError

__all__ = [
    "HttpRequest",
    "call_http",
    "decode_content",
    "endpoint_parts",
    "expand_uri",
    "perform",
    "send",
    "shape_output",
    "to_text",
]

OUTPUTS = ("content", "response", "raw")
_TEMPLATE_VARIABLE = re.compile(r"\{([^{}]*)\}")
_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_TEXT_TYPES = ("application/xml", "application/javascript", "application/x-www-form-urlencoded")
_EXCERPT = 200


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One outbound request, fully resolved: what ``call: http`` and ``call: openapi`` send."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Sequence[tuple[str, str]] = ()
    body: Any = None  # None: no body
    output: str = "content"
    redirect: bool = False
    authentication: Mapping[str, Any] | str | None = None


async def call_http(
    spec: Mapping[str, Any],
    *,
    input_data: Any,
    client: httpx.AsyncClient,
    auth: AuthResolver | None = None,
) -> Any:
    """Perform ``call: http``. ``spec`` is the task's ``with``, runtime expressions already
    evaluated; ``input_data`` is the task's transformed input, which URI templates read."""
    if not isinstance(spec, Mapping):
        raise error(ErrorType.CONFIGURATION, "'call: http' needs a 'with' mapping")
    uri, authentication = endpoint_parts(spec.get("endpoint"))
    request = HttpRequest(
        method=_method(spec.get("method")),
        url=expand_uri(uri, input_data),
        headers=_headers(spec.get("headers")),
        query=_query(spec.get("query")),
        body=spec.get("body"),
        output=_output(spec.get("output")),
        redirect=_redirect(spec.get("redirect")),
        authentication=authentication,
    )
    return await perform(request, client=client, auth=auth)


async def perform(
    request: HttpRequest, *, client: httpx.AsyncClient, auth: AuthResolver | None = None
) -> Any:
    """Send ``request`` and return the output it asks for."""
    response = await send(request, client=client, auth=auth)
    return shape_output(response, request.output)


async def send(
    request: HttpRequest, *, client: httpx.AsyncClient, auth: AuthResolver | None = None
) -> httpx.Response:
    """Send ``request``; raise a :class:`WorkflowError` unless the answer is a success."""
    credentials = await _credentials(request.authentication, client, auth)
    secrets = credentials.secrets if credentials else ()
    outgoing = _build(client, request)
    try:
        response = await client.send(
            outgoing,
            auth=credentials.auth if credentials else None,
            follow_redirects=request.redirect,
        )
    except httpx.RequestError as exc:
        raise transport_error(exc, outgoing.method, outgoing.url, secrets) from None
    highest = 399 if request.redirect else 299
    if not 200 <= response.status_code <= highest:
        raise _status_error(response, secrets)
    return response


# -- the endpoint and its URI template -----------------------------------------------------


def endpoint_parts(endpoint: Any) -> tuple[str, Mapping[str, Any] | str | None]:
    """``(uri, authentication)`` of an endpoint: a URI string or ``{uri, authentication}``."""
    if isinstance(endpoint, str):
        return endpoint, None
    if isinstance(endpoint, Mapping) and isinstance(endpoint.get("uri"), str):
        authentication = endpoint.get("authentication")
        if authentication is not None and not isinstance(authentication, Mapping | str):
            raise error(ErrorType.CONFIGURATION, "an endpoint's 'authentication' must be a policy")
        return endpoint["uri"], authentication
    raise error(ErrorType.CONFIGURATION, "an endpoint must be a URI or a mapping with a 'uri'")


def expand_uri(template: str, data: Any) -> str:
    """RFC 6570 simple string expansion, as the DSL defines it: ``{name}`` is the top-level
    property ``name`` of ``data`` (taken verbatim: ``{a.b}`` reads the key ``"a.b"``),
    percent-encoded; a missing or null value expands to nothing; an object or array is an
    expression error."""

    def expand(match: re.Match[str]) -> str:
        name = match.group(1)
        value = data.get(name) if isinstance(data, Mapping) else None
        if isinstance(value, Mapping | list):
            raise error(
                ErrorType.EXPRESSION,
                f"URI template variable '{name}' must be a string, number, boolean or null",
            )
        return quote(to_text(value), safe="-._~")

    return _TEMPLATE_VARIABLE.sub(expand, template)


def to_text(value: Any) -> str:
    """A value as it appears in a URI or header: JSON spelling for scalars, ``""`` for null."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | Mapping | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


# -- reading ``with`` --------------------------------------------------------------------------


def _method(value: Any) -> str:
    if not isinstance(value, str) or not _METHOD.match(value):
        raise error(ErrorType.CONFIGURATION, "'method' must be an HTTP method name")
    return value.upper()


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise error(ErrorType.CONFIGURATION, "'headers' must be a mapping")
    return {str(name): to_text(item) for name, item in value.items() if item is not None}


def _query(value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise error(ErrorType.CONFIGURATION, "'query' must be a mapping")
    pairs: list[tuple[str, str]] = []
    for name, item in value.items():
        items = item if isinstance(item, list) else [item]
        pairs.extend((str(name), to_text(each)) for each in items if each is not None)
    return pairs


def _output(value: Any) -> str:
    if value is None:
        return "content"
    if value not in OUTPUTS:
        raise error(ErrorType.CONFIGURATION, f"'output' must be one of {', '.join(OUTPUTS)}")
    return str(value)


def _redirect(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise error(ErrorType.CONFIGURATION, "'redirect' must be a boolean")
    return value


# -- building and sending ----------------------------------------------------------------------


async def _credentials(
    policy: Mapping[str, Any] | str | None, client: httpx.AsyncClient, auth: AuthResolver | None
) -> Credentials | None:
    if policy is None:
        return None
    resolver = auth if auth is not None else AuthResolver(client)
    return await resolver.resolve(policy)


def _build(client: httpx.AsyncClient, request: HttpRequest) -> httpx.Request:
    try:
        url = httpx.URL(normal_url(request.url))
    except httpx.InvalidURL as exc:
        raise error(ErrorType.CONFIGURATION, f"invalid endpoint URI: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise error(ErrorType.CONFIGURATION, f"endpoint '{safe_url(url)}' is not an http(s) URL")
    if request.query:
        url = url.copy_merge_params(list(request.query))
    headers = httpx.Headers(dict(request.headers))
    content = _encode_body(request.body, headers)
    return client.build_request(request.method, url, headers=headers, content=content)


def _encode_body(body: Any, headers: httpx.Headers) -> bytes | None:
    """The body's bytes; sets a content type when the task did not."""
    if body is None:
        return None
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if isinstance(body, str):
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        return body.encode()
    if media == "application/x-www-form-urlencoded" and isinstance(body, Mapping):
        pairs = [
            (str(name), to_text(each))
            for name, item in body.items()
            for each in (item if isinstance(item, list) else [item])
        ]
        return urlencode(pairs).encode()
    try:
        encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise error(ErrorType.CONFIGURATION, f"the request body is not JSON: {exc}") from None
    headers.setdefault("Content-Type", "application/json")
    return encoded.encode()


def _status_error(response: httpx.Response, secrets: Sequence[str]) -> WorkflowError:
    request = response.request
    status = response.status_code
    phrase = response.reason_phrase or httpx.codes.get_reason_phrase(status)
    excerpt = _excerpt(response)
    detail = f"{request.method} {safe_url(request.url)} answered {status} {phrase}".rstrip()
    if excerpt:
        detail += f": {excerpt}"
    return error(
        ErrorType.COMMUNICATION,
        scrub(detail, secrets),
        status=status,
        title=phrase or "Unexpected HTTP status",
    )


def _excerpt(response: httpx.Response) -> str:
    if not response.content:
        return ""
    content = decode_content(response)
    if isinstance(content, str) and _is_binary(response):
        return f"({len(response.content)} bytes)"
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


# -- the output --------------------------------------------------------------------------------


def shape_output(response: httpx.Response, output: str) -> Any:
    """The task output for ``output`` (``content``, ``response`` or ``raw``)."""
    if output == "raw":
        return base64.b64encode(response.content).decode("ascii") if response.content else None
    content = decode_content(response)
    if output == "content":
        return content
    request = response.request
    return {
        "request": {
            "method": request.method.lower(),
            "uri": safe_url(request.url),
            "headers": redact_headers(request.headers),
        },
        "statusCode": response.status_code,
        "headers": redact_headers(response.headers),
        "content": content,
    }


def decode_content(response: httpx.Response) -> Any:
    """The body deserialized by content type: JSON parsed, text decoded, anything else base64;
    ``None`` when there is no body. JSON that does not parse is returned as text."""
    data = response.content
    if not data:
        return None
    media = _media_type(response)
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(data)
        except ValueError:
            return response.text
    if not _is_binary(response):
        return response.text
    return base64.b64encode(data).decode("ascii")


def _media_type(response: httpx.Response) -> str:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";")[0].strip().lower()


def _is_binary(response: httpx.Response) -> bool:
    media = _media_type(response)
    textual = (
        media.startswith("text/")
        or media in _TEXT_TYPES
        or media.endswith(("+xml", "+json", "/json", "+yaml", "/yaml", "/x-yaml"))
    )
    return not textual
