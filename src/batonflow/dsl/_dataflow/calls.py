"""``call`` tasks in the data-flow report: protocols (HTTP, OpenAPI, gRPC, AsyncAPI, A2A, MCP),
the catalog's model functions, approvals, e-mail, functions in ``use.functions`` and functions
the runtime provides. Each adds its :class:`~batonflow.dsl._dataflow.walk.Flow` to the walker and
returns the shape of the task's raw output."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from batonflow.dsl._dataflow.paths import Data, Shape, flatten, resolve
from batonflow.dsl._dataflow.walk import MODEL_FUNCTIONS, US_VENDORS, host_of
from batonflow.dsl._expr import is_expression

if TYPE_CHECKING:
    from batonflow.dsl._dataflow.walk import State, Walker

__all__ = ["call"]

_URI_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_PREFIX = re.compile(r"\s*\$\{\s*\$secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*(?:\+|\})")
_STATIC_PREFIX = re.compile(r'\s*\$\{\s*"(?P<prefix>[a-z][a-z0-9+.-]*://[^"\\/]+)')


def call(walker: Walker, name: str, task: dict[str, Any], pointer: str, state: State) -> Shape:
    target = task["call"]
    arguments = task.get("with") or {}
    handler = _PROTOCOLS.get(target)
    if handler is not None:
        return handler(walker, name, arguments, pointer, state)
    if target in MODEL_FUNCTIONS:
        return _model(walker, name, target, arguments, pointer, state)
    if target == "approval":
        return _approval(walker, name, arguments, pointer, state)
    if target == "email":
        return _email(walker, name, arguments, pointer, state)
    return _function(walker, name, target, arguments, pointer, state)


def _port(url: str) -> int:
    """The port a URL reaches (its scheme's default when it names none)."""
    try:
        parts = urlsplit(url)
        return parts.port or (80 if parts.scheme in ("http", "ws") else 443)
    except ValueError:
        return 443


def _response(name: str) -> Data:
    return Data(frozenset({f"response of {name}"}))


# -- protocols -----------------------------------------------------------------------------------


def _endpoint(
    walker: Walker, name: str, endpoint: Any, pointer: str, state: State, what: str
) -> tuple[str | None, str, frozenset[str]]:
    """(host, url or description, the input fields that shape the URL); flags a dynamic host
    and a host off the allow-list; reports a token endpoint of its authentication."""
    uri = endpoint.get("uri") if isinstance(endpoint, dict) else endpoint
    if isinstance(endpoint, dict) and endpoint.get("authentication") is not None:
        _authentication(walker, name, endpoint["authentication"], pointer)
    if not isinstance(uri, str):
        return None, "?", frozenset()
    if is_expression(uri):
        sent = walker.shape(uri, state)
        prefix = _STATIC_PREFIX.match(uri)
        if prefix is not None:  # "https://host/...\(.id)": the host is fixed
            host = host_of(prefix.group("prefix"))
            walker.check_host(host, name, pointer, _port(prefix.group("prefix")))
            return host, uri, flatten(sent)
        secret = _SECRET_PREFIX.match(uri)
        if secret is not None:  # the operator sets the host, not the data
            walker.flag(
                "info", "secret-host",
                f"{name}: {what} host taken from the secret {secret.group(1)}: check that the"
                " host it holds is on the egress allow-list", pointer,
            )  # fmt: skip
            return None, f"host from secret {secret.group(1)}", flatten(sent)
        walker.flag(
            "warning", "dynamic-host",
            f"{name}: {what} host computed at run time from {uri.strip()}: the egress"
            " allow-list decides whether it may be reached", pointer,
        )  # fmt: skip
        return None, f"dynamic host from {uri.strip()}", flatten(sent)
    fields: frozenset[str] = frozenset()
    for variable in _URI_VARIABLE.findall(uri):  # a URI template's {id} reads .id
        fields |= flatten(resolve(state.data, (variable,)))
    host = host_of(_URI_VARIABLE.sub("x", uri))
    walker.check_host(host, name, pointer, _port(_URI_VARIABLE.sub("x", uri)))
    return host, uri, fields


def _authentication(walker: Walker, name: str, policy: Any, pointer: str) -> None:
    """An OAuth2 / OpenID Connect policy sends credentials to its authority."""
    if isinstance(policy, dict) and isinstance(policy.get("use"), str):
        named = ((walker.raw.get("use") or {}).get("authentications") or {}).get(policy["use"])
        policy = named
    if not isinstance(policy, dict):
        return
    for scheme in ("oauth2", "oidc"):
        spec = policy.get(scheme)
        authority = spec.get("authority") if isinstance(spec, dict) else None
        if isinstance(authority, str):
            host = None if is_expression(authority) else host_of(authority)
            walker.add(
                "auth", name, pointer, host or authority, frozenset({"client credentials"}),
                scheme=scheme, authority=authority,
            )  # fmt: skip
            walker.check_host(host, name, pointer, _port(authority))


def _http(walker: Walker, name: str, args: dict[str, Any], pointer: str, state: State) -> Shape:
    host, url, url_fields = _endpoint(walker, name, args.get("endpoint"), pointer, state, "HTTP")
    sent = {k: v for k, v in args.items() if k in ("headers", "query", "body")}
    method = str(args.get("method", "?")).upper()
    walker.add(
        "http", name, pointer, host or url, flatten(walker.shape(sent, state)) | url_fields,
        method=method, host=host, url=url, dynamic=host is None,
    )  # fmt: skip
    return _response(name)


def _openapi(walker: Walker, name: str, args: dict[str, Any], pointer: str, state: State) -> Shape:
    document = (args.get("document") or {}).get("endpoint")
    host, url, fields = _endpoint(walker, name, document, pointer, state, "OpenAPI document")
    if args.get("authentication") is not None:
        _authentication(walker, name, args["authentication"], pointer)
    sent = flatten(walker.shape(args.get("parameters"), state)) | fields
    walker.add(
        "openapi", name, pointer, host or url, sent,
        operation=args.get("operationId"), document=url, host=host,
    )  # fmt: skip
    walker.flag(
        "info", "openapi-servers",
        f"{name}: the API host comes from the servers of the OpenAPI document {url}; check it"
        " against the egress allow-list", pointer,
    )  # fmt: skip
    return _response(name)


def _grpc(walker: Walker, name: str, args: dict[str, Any], pointer: str, state: State) -> Shape:
    service = args.get("service") or {}
    host = service.get("host")
    port = service.get("port")
    walker.check_host(host, name, pointer, port if isinstance(port, int) else 443)
    walker.add(
        "grpc", name, pointer, f"{host}:{port}" if port else str(host),
        walker.shape(args.get("arguments"), state),
        host=host, service=service.get("name"), method=args.get("method"),
    )  # fmt: skip
    return _response(name)


def _asyncapi(walker: Walker, name: str, args: dict[str, Any], pointer: str, state: State) -> Shape:
    document = (args.get("document") or {}).get("endpoint")
    _, url, fields = _endpoint(walker, name, document, pointer, state, "AsyncAPI document")
    message = args.get("message")
    server = (args.get("server") or {}).get("name")
    walker.add(
        "asyncapi", name, pointer, f"server {server} of {url}" if server else url,
        flatten(walker.shape(message, state)) | fields,
        document=url, operation=args.get("operation") or args.get("channel"),
        publishes=message is not None,
    )  # fmt: skip
    return _response(name)


def _a2a(walker: Walker, name: str, args: dict[str, Any], pointer: str, state: State) -> Shape:
    card = (args.get("agentCard") or {}).get("endpoint")
    where = args.get("server") or card
    host, url, fields = _endpoint(walker, name, where, pointer, state, "A2A agent")
    sent = flatten(walker.shape(args.get("parameters"), state)) | fields
    walker.add(
        "a2a", name, pointer, host or url, sent, method=args.get("method"), url=url, host=host
    )
    return _response(name)


def _mcp(walker: Walker, name: str, args: dict[str, Any], pointer: str, state: State) -> Shape:
    transport = args.get("transport") or {}
    sent = walker.shape(args.get("parameters"), state)
    if "stdio" in transport:
        command = (transport.get("stdio") or {}).get("command")
        walker.add("mcp", name, pointer, f"local process: {command}", sent,
                   method=args.get("method"), transport="stdio", command=command)  # fmt: skip
        walker.flag(
            "high", "process",
            f"{name}: starts a local MCP server process ({command}) and sends it workflow data",
            pointer,
        )  # fmt: skip
        return _response(name)
    endpoint = (transport.get("http") or {}).get("endpoint")
    host, url, fields = _endpoint(walker, name, endpoint, pointer, state, "MCP server")
    walker.add(
        "mcp", name, pointer, host or url, flatten(sent) | fields,
        method=args.get("method"), transport="http", url=url, host=host,
    )  # fmt: skip
    return _response(name)


_Handler = Callable[["Walker", str, dict[str, Any], str, "State"], Shape]
_PROTOCOLS: dict[str, _Handler] = {
    "http": _http,
    "openapi": _openapi,
    "grpc": _grpc,
    "asyncapi": _asyncapi,
    "a2a": _a2a,
    "mcp": _mcp,
}

# -- catalog functions ---------------------------------------------------------------------------


def _model(
    walker: Walker, name: str, function: str, args: dict[str, Any], pointer: str, state: State
) -> Shape:
    provider = args.get("provider") if function != "agent" else args.get("provider_name")
    provider = provider if provider is not None else args.get("provider")
    vendors = _vendors(walker, provider)
    sent = {k: v for k, v in args.items() if k not in ("provider", "provider_name", "model")}
    shape = walker.shape(sent, state)
    hosts = [(v["host"], v.get("port", 443)) for v in vendors if v.get("host")]
    target = ", ".join(v["vendor"] for v in vendors)
    walker.add(
        "model", name, pointer, target, shape,
        function=function, provider=provider, model=args.get("model"), vendors=vendors,
    )  # fmt: skip
    for host, port in hosts:
        walker.check_host(host, name, pointer, port)
    if isinstance(provider, str) and is_expression(provider):
        walker.flag(
            "warning",
            "dynamic-provider",
            f"{name}: the model provider is chosen at run time ({provider})",
            pointer,
        )
    # a model's answer is made from what it was sent
    return Data(flatten(shape) | {f"model answer of {name}"})


def _vendors(walker: Walker, provider: Any) -> list[dict[str, Any]]:
    """Who a provider name resolves to, per the ``[providers]`` configuration."""
    config = walker.config.providers if walker.config is not None else None
    if provider is not None and not isinstance(provider, str):
        provider = None
    if config is None:
        label = f"provider {provider!r}" if provider else "default provider"
        return [{"name": provider, "vendor": f"{label} from the providers config (not given)"}]
    if provider is None or provider == "default":
        names = list(config.fallback) or list(config.providers)[:1]
    elif provider == "fallback":
        names = list(config.fallback)
    else:
        names = [provider]
    found: list[dict[str, Any]] = []
    for key in names:
        cfg = config.providers.get(key)
        if cfg is None:
            found.append({"name": key, "vendor": f"unknown provider {key!r}"})
            walker.flag(
                "high",
                "unknown-provider",
                f"no provider named {key!r} in {config.source}",
                _current_pointer(walker),
            )
            continue
        found.append(_vendor(cfg))
    return found


def _current_pointer(walker: Walker) -> str:
    return walker.key.partition("#")[2]


def _vendor(cfg: Any) -> dict[str, Any]:
    if cfg.kind == "local":
        return {"name": cfg.name, "vendor": "offline local model (no network)", "host": None,
                "kind": "local", "model": cfg.model, "transfer": None}  # fmt: skip
    host = host_of(cfg.base_url) if cfg.base_url else {
        "openai": "api.openai.com", "anthropic": "api.anthropic.com"
    }[cfg.kind]  # fmt: skip
    vendor = US_VENDORS.get(host or "", host or "?")
    return {
        "port": _port(cfg.base_url) if cfg.base_url else 443,
        "name": cfg.name,
        "vendor": f"{vendor} ({host})" if vendor != host else str(host),
        "host": host,
        "kind": cfg.kind,
        "model": cfg.model,
        "base_url": cfg.base_url,
        "transfer": "depends on provider region: check" if host in US_VENDORS else None,
    }


def _approval(walker: Walker, name: str, args: dict[str, Any], pointer: str, state: State) -> Shape:
    shown = {k: v for k, v in args.items() if k in ("title", "summary", "data")}
    approvers = args.get("approvers")
    expires = args.get("expires_in")
    walker.add(
        "approval", name, pointer, _people(approvers), walker.shape(shown, state),
        approvers=approvers, quorum=args.get("quorum", 1), expires_in=expires,
        on_expiry=args.get("on_expiry", "escalate"),
        options=args.get("options", ["approve", "reject"]),
    )  # fmt: skip
    if expires is None:
        walker.flag("info", "approval-never-expires",
                    f"{name}: the approval has no expires_in: the run waits until people decide",
                    pointer)  # fmt: skip
    return Data(frozenset({f"decision of {name}"}))


def _people(approvers: Any) -> str:
    if isinstance(approvers, dict):
        parts = [f"{kind} {', '.join(map(str, names))}" for kind, names in approvers.items()
                 if isinstance(names, list) and names]  # fmt: skip
        return "; ".join(parts) or "?"
    return f"decided at run time from {approvers}" if approvers is not None else "?"


def _email(walker: Walker, name: str, args: dict[str, Any], pointer: str, state: State) -> Shape:
    recipients = {k: args[k] for k in ("to", "cc", "reply_to") if k in args}
    smtp = walker.config.smtp if walker.config is not None else None
    shown = ", ".join(
        f"{k}: {v if not is_expression(v) else 'the address in ' + v.strip()}"
        for k, v in recipients.items()
    )  # fmt: skip
    walker.add(
        "email", name, pointer, shown or "?", walker.shape(args, state),
        recipients=recipients, smtp=smtp or "the [email] SMTP server of the config (not given)",
        dynamic_recipients=any(is_expression(v) for v in recipients.values()),
    )  # fmt: skip
    return Data(frozenset({f"result of {name}"}))


def _function(
    walker: Walker, name: str, function: str, args: dict[str, Any], pointer: str, state: State
) -> Shape:
    defined = ((walker.raw.get("use") or {}).get("functions") or {}).get(function)
    sent = walker.shape(args, state)
    if isinstance(defined, dict):  # a task of the document's own: analyse it on the arguments
        ways = walker.function(name, function, defined, pointer, sent, state)
        sources: frozenset[str] = frozenset()
        for _, out in ways:
            sources |= flatten(out.data)
        return Data(sources)
    if "/" in function or "@" in function:
        host = host_of(function) if "://" in function else None
        walker.add(
            "function", name, pointer, function, sent, function=function, defined_at=function
        )
        walker.flag(
            "warning", "function-not-analysed",
            f"{name}: function {function} is defined outside this document: what it does with"
            " the data is not analysed", pointer,
        )  # fmt: skip
        walker.check_host(host, name, pointer, _port(function))
        return _response(name)
    walker.add("function", name, pointer, f"function {function} (runtime)", sent, function=function)
    walker.flag(
        "info", "function-not-analysed",
        f"{name}: {function} is a function registered with the runtime (Python code); what it"
        " does with the data is not analysed", pointer,
    )  # fmt: skip
    return _response(name)
