"""``call: openapi``: find an operation in an OpenAPI 3.x or Swagger 2.0 document and call it.

The document (JSON or YAML) is fetched through the injected client, parsed once per URL for the
life of an :class:`OpenApiDocuments` cache (one per run), and searched by ``operationId``. The
request is built from the operation's parameters (path, query, header, cookie, Swagger
``formData`` and ``body``, OpenAPI ``requestBody``), the server URL (OpenAPI ``servers`` or
Swagger ``schemes``/``host``/``basePath``), and then sent by the same code as ``call: http``, so
outputs, redirects and errors behave the same. See ``docs/dsl.md``, "HTTP and OpenAPI calls".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urljoin

import httpx

from batonflow._net import normal_url
from batonflow.dsl._auth import AuthResolver, error, safe_url
from batonflow.dsl._http import (
    OUTPUTS,
    HttpRequest,
    endpoint_parts,
    expand_uri,
    perform,
    send,
    to_text,
)
from batonflow.dsl._problems import ErrorType, WorkflowError
from batonflow.dsl._yaml import SourceSyntaxError, parse_text

__all__ = ["OpenApiDocument", "OpenApiDocuments", "Operation", "build_request", "call_openapi"]

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_DOCUMENT_ACCEPT = "application/json, application/yaml;q=0.9, text/yaml;q=0.9, */*;q=0.8"
_SEPARATORS = {"csv": ",", "ssv": " ", "tsv": "\t", "pipes": "|"}
_FORM = "application/x-www-form-urlencoded"
_MAX_REF_DEPTH = 32


async def call_openapi(
    spec: Mapping[str, Any],
    *,
    input_data: Any,
    client: httpx.AsyncClient,
    auth: AuthResolver | None = None,
    documents: OpenApiDocuments | None = None,
) -> Any:
    """Perform ``call: openapi``. ``spec`` is the task's ``with``, runtime expressions already
    evaluated; ``input_data`` is the task's transformed input (the document URI may be a
    template); ``documents`` caches parsed documents (pass one per run)."""
    call = _read_with(spec)
    cache = documents if documents is not None else OpenApiDocuments(client, auth)
    document = await cache.load(call.document_endpoint, input_data)
    operation = document.operation(call.operation_id)
    request = replace(
        build_request(operation, call.arguments),
        output=call.output,
        redirect=call.redirect,
        authentication=call.authentication,
    )
    return await perform(request, client=client, auth=auth)


@dataclass(frozen=True, slots=True)
class _OpenApiCall:
    document_endpoint: Any
    operation_id: str
    arguments: Mapping[str, Any]
    authentication: Mapping[str, Any] | str | None
    output: str
    redirect: bool


def _read_with(spec: Any) -> _OpenApiCall:
    if not isinstance(spec, Mapping):
        raise error(ErrorType.CONFIGURATION, "'call: openapi' needs a 'with' mapping")
    document = spec.get("document")
    if not isinstance(document, Mapping) or "endpoint" not in document:
        raise error(ErrorType.CONFIGURATION, "'call: openapi' needs a 'document' with 'endpoint'")
    operation_id = spec.get("operationId")
    if not isinstance(operation_id, str) or not operation_id:
        raise error(ErrorType.CONFIGURATION, "'call: openapi' needs an 'operationId'")
    arguments = spec.get("parameters") or {}
    if not isinstance(arguments, Mapping):
        raise error(ErrorType.CONFIGURATION, "'parameters' must be a mapping")
    authentication = spec.get("authentication")
    if authentication is not None and not isinstance(authentication, Mapping | str):
        raise error(ErrorType.CONFIGURATION, "'authentication' must be a policy or its name")
    output = spec.get("output") or "content"
    if output not in OUTPUTS:
        raise error(ErrorType.CONFIGURATION, f"'output' must be one of {', '.join(OUTPUTS)}")
    redirect = spec.get("redirect", False)
    if not isinstance(redirect, bool):
        raise error(ErrorType.CONFIGURATION, "'redirect' must be a boolean")
    return _OpenApiCall(
        document["endpoint"], operation_id, arguments, authentication, str(output), redirect
    )


# -- documents -------------------------------------------------------------------------------


class OpenApiDocuments:
    """Parsed OpenAPI documents by URL; keep one per run so a document is fetched once."""

    def __init__(self, client: httpx.AsyncClient, auth: AuthResolver | None = None) -> None:
        self._client = client
        self._auth = auth
        self._documents: dict[str, OpenApiDocument] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def load(self, endpoint: Any, input_data: Any = None) -> OpenApiDocument:
        """The document at ``endpoint`` (a URI or ``{uri, authentication}``)."""
        uri, authentication = endpoint_parts(endpoint)
        url = expand_uri(uri, input_data)
        async with self._locks.setdefault(url, asyncio.Lock()):
            if url not in self._documents:
                self._documents[url] = await self._fetch(url, authentication)
            return self._documents[url]

    async def _fetch(
        self, url: str, authentication: Mapping[str, Any] | str | None
    ) -> OpenApiDocument:
        request = HttpRequest(
            "GET", url, headers={"Accept": _DOCUMENT_ACCEPT}, authentication=authentication
        )
        response = await send(request, client=self._client, auth=self._auth)
        try:
            data = _parse_document(response.text, response.url.path)
        except SourceSyntaxError as exc:
            raise error(
                ErrorType.CONFIGURATION, f"{safe_url(url)} is not JSON or YAML: {exc.message}"
            ) from None
        if not isinstance(data, Mapping) or not isinstance(data.get("paths"), Mapping):
            raise error(ErrorType.CONFIGURATION, f"{safe_url(url)} is not an OpenAPI document")
        return OpenApiDocument(str(response.url), data)


def _parse_document(text: str, path: str) -> Any:
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            pass  # let the YAML reader say where it breaks
    return parse_text(text, path).data


@dataclass(frozen=True)
class OpenApiDocument:
    """One parsed OpenAPI 3.x or Swagger 2.0 document, fetched from ``url``."""

    url: str
    data: Mapping[str, Any]
    _index: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_swagger(self) -> bool:
        return "swagger" in self.data

    def resolve(self, node: Any) -> Any:
        """``node`` with a local ``$ref`` (``#/...``) followed; other nodes unchanged."""
        for _ in range(_MAX_REF_DEPTH):
            if not (isinstance(node, Mapping) and isinstance(node.get("$ref"), str)):
                return node
            ref: str = node["$ref"]
            if not ref.startswith("#"):
                raise error(ErrorType.CONFIGURATION, f"external reference '{ref}' not supported")
            node = self.data
            for segment in ref[1:].split("/")[1:]:
                key = segment.replace("~1", "/").replace("~0", "~")
                node = node.get(key) if isinstance(node, Mapping) else None
        raise error(ErrorType.CONFIGURATION, f"reference loop in {safe_url(self.url)}")

    def operation(self, operation_id: str) -> Operation:
        """The operation with ``operation_id``; a configuration error when there is none."""
        if not self._index:
            for path, item in self.data["paths"].items():
                item = self.resolve(item)
                for method in _METHODS:
                    op = item.get(method) if isinstance(item, Mapping) else None
                    if isinstance(op, Mapping) and isinstance(op.get("operationId"), str):
                        self._index.setdefault(op["operationId"], (str(path), method))
        if operation_id not in self._index:
            raise error(
                ErrorType.CONFIGURATION,
                f"no operation '{operation_id}' in {safe_url(self.url)}",
            )
        path, method = self._index[operation_id]
        item = self.resolve(self.data["paths"][path])
        return Operation(self, path, method, item, item[method])


@dataclass(frozen=True)
class Operation:
    document: OpenApiDocument
    path: str
    method: str
    path_item: Mapping[str, Any]
    spec: Mapping[str, Any]

    @property
    def operation_id(self) -> str:
        return str(self.spec["operationId"])

    def parameters(self) -> list[Mapping[str, Any]]:
        """The operation's parameters, path-level ones included (the operation's win)."""
        merged: dict[tuple[str, str], Mapping[str, Any]] = {}
        for source in (self.path_item.get("parameters"), self.spec.get("parameters")):
            for raw in source if isinstance(source, list) else []:
                param = self.document.resolve(raw)
                if isinstance(param, Mapping) and "name" in param and "in" in param:
                    merged[(str(param["name"]), str(param["in"]))] = param
        return list(merged.values())

    def base_url(self) -> str:
        """Where the API lives: the first server, or Swagger's scheme, host and base path."""
        doc = self.document
        if doc.is_swagger:
            schemes = self.spec.get("schemes") or doc.data.get("schemes") or []
            origin = httpx.URL(normal_url(doc.url))
            scheme = "https" if "https" in schemes else (schemes[0] if schemes else origin.scheme)
            host = doc.data.get("host") or origin.netloc.decode("ascii")
            base_path = str(doc.data.get("basePath") or "")
            return f"{scheme}://{host}{base_path}".rstrip("/")
        servers = self.spec.get("servers") or self.path_item.get("servers")
        servers = servers or doc.data.get("servers") or [{"url": "/"}]
        server = servers[0] if isinstance(servers[0], Mapping) else {"url": "/"}
        url = str(server.get("url") or "/")
        variables = server.get("variables")
        for name, variable in (variables if isinstance(variables, Mapping) else {}).items():
            default = variable.get("default", "") if isinstance(variable, Mapping) else ""
            url = url.replace("{" + str(name) + "}", str(default))
        return urljoin(doc.url, url).rstrip("/")


# -- building the request --------------------------------------------------------------------


@dataclass
class _Parts:
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)
    form: dict[str, Any] = field(default_factory=dict)


def build_request(operation: Operation, arguments: Mapping[str, Any]) -> HttpRequest:
    """The request for ``operation`` with ``arguments`` (parameter name to value)."""
    swagger = operation.document.is_swagger
    parts = _Parts(operation.path)
    used: set[str] = set()
    body_param: Mapping[str, Any] | None = None
    for param in operation.parameters():
        name, where = str(param["name"]), str(param["in"])
        if where == "body":
            body_param = param
            continue
        if name not in arguments or arguments[name] is None:
            if param.get("required") or where == "path":
                raise _missing(operation, name, where)
            continue
        used.add(name)
        _place(parts, param, arguments[name], swagger=swagger)
    headers = dict(parts.headers)
    if parts.cookies:
        headers["Cookie"] = "; ".join(parts.cookies)
    body, content_type = _body(operation, arguments, used, body_param, parts.form)
    if content_type and body is not None:
        headers.setdefault("Content-Type", content_type)
    accept = _accept(operation)
    if accept:
        headers.setdefault("Accept", accept)
    return HttpRequest(
        method=operation.method.upper(),
        url=operation.base_url() + parts.path,
        headers=headers,
        query=parts.query,
        body=body,
    )


def _missing(operation: Operation, name: str, where: str) -> WorkflowError:
    return error(
        ErrorType.VALIDATION,
        f"operation '{operation.operation_id}' needs the {where} parameter '{name}'",
    )


def _place(parts: _Parts, param: Mapping[str, Any], value: Any, *, swagger: bool) -> None:
    name, where = str(param["name"]), str(param["in"])
    if where == "path":
        text = quote(_joined(value, param, swagger=swagger), safe="")
        parts.path = parts.path.replace("{" + name + "}", text)
    elif where == "query":
        parts.query.extend(_query_pairs(name, value, param, swagger=swagger))
    elif where == "header":
        parts.headers[name] = _joined(value, param, swagger=swagger)
    elif where == "cookie":
        parts.cookies.append(f"{name}={_joined(value, param, swagger=swagger)}")
    elif where == "formData":
        parts.form[name] = value


def _joined(value: Any, param: Mapping[str, Any], *, swagger: bool) -> str:
    """A value in the simple (OpenAPI) or csv-like (Swagger) style: ``a,b`` or ``k,v``."""
    if isinstance(value, list):
        separator = _SEPARATORS.get(str(param.get("collectionFormat", "csv")), ",")
        return (separator if swagger else ",").join(to_text(item) for item in value)
    if isinstance(value, Mapping):
        if param.get("explode"):
            return ",".join(f"{key}={to_text(item)}" for key, item in value.items())
        return ",".join(f"{key},{to_text(item)}" for key, item in value.items())
    return to_text(value)


def _query_pairs(
    name: str, value: Any, param: Mapping[str, Any], *, swagger: bool
) -> list[tuple[str, str]]:
    if swagger:
        if isinstance(value, list) and param.get("collectionFormat") == "multi":
            return [(name, to_text(item)) for item in value]
        return [(name, _joined(value, param, swagger=True))]
    style = str(param.get("style", "form"))
    explode = bool(param.get("explode", style == "form"))
    if isinstance(value, Mapping):
        if style == "deepObject":
            return [(f"{name}[{key}]", to_text(item)) for key, item in value.items()]
        if explode:
            return [(str(key), to_text(item)) for key, item in value.items()]
        return [(name, _joined(value, {}, swagger=False))]
    if isinstance(value, list):
        if explode:
            return [(name, to_text(item)) for item in value]
        separator = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(style, ",")
        return [(name, separator.join(to_text(item) for item in value))]
    return [(name, to_text(value))]


def _body(
    operation: Operation,
    arguments: Mapping[str, Any],
    used: set[str],
    body_param: Mapping[str, Any] | None,
    form: Mapping[str, Any],
) -> tuple[Any, str | None]:
    """The request body and its content type.

    The body is the argument named after the Swagger body parameter (or OpenAPI's
    ``x-codegen-request-body-name``), else the argument ``body``, else an object of the
    arguments that match no declared parameter.
    """
    if form:
        return dict(form), _FORM
    request_body = operation.document.resolve(operation.spec.get("requestBody"))
    if body_param is None and not isinstance(request_body, Mapping):
        return None, None
    spec = body_param if body_param is not None else request_body
    assert isinstance(spec, Mapping)
    names = [spec.get("name"), operation.spec.get("x-codegen-request-body-name"), "body"]
    name = next((n for n in names if isinstance(n, str) and n in arguments), None)
    if name is not None:
        body = arguments[name]
    else:
        leftovers = {k: v for k, v in arguments.items() if k not in used}
        body = leftovers or None
    if body is None and spec.get("required"):
        raise _missing(operation, "body", "body")
    return body, _body_type(operation, request_body)


def _body_type(operation: Operation, request_body: Any) -> str | None:
    if isinstance(request_body, Mapping):
        types = list(request_body.get("content") or {})
    else:
        types = list(
            operation.spec.get("consumes") or operation.document.data.get("consumes") or []
        )
    return _prefer_json(types)


def _accept(operation: Operation) -> str | None:
    if operation.document.is_swagger:
        produces = operation.spec.get("produces") or operation.document.data.get("produces")
        return _prefer_json(list(produces or []))
    types: list[str] = []
    for response in (operation.spec.get("responses") or {}).values():
        content = operation.document.resolve(response)
        if isinstance(content, Mapping):
            types.extend(t for t in content.get("content") or {} if t not in types)
    return _prefer_json(types)


def _prefer_json(types: list[str]) -> str | None:
    """A JSON media type if one is offered, else the first one, else none."""
    for media in types:
        base = media.split(";")[0].strip().lower()
        if base == "application/json" or base.endswith("+json"):
            return media
    return types[0] if types else None
