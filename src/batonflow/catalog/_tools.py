"""What an agent's model may call: Python functions, HTTP calls and MCP tools, as ``AgentTool``."""

from __future__ import annotations

import inspect
import string
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

import httpx
import jsonschema

from batonflow.catalog._mcp import McpServer
from batonflow.core import Retry
from batonflow.errors import ConfigError

__all__ = ["EMPTY_SCHEMA", "AgentTool", "ApprovalHook", "http_tool", "mcp_tool", "tool"]

#: Decides whether a tool flagged ``needs_approval`` may run: ``(tool name, arguments) -> bool``
#: (or an awaitable of it), run as a recorded step. A hook marked with
#: :func:`batonflow.core.takes_context` is awaited at workflow level instead, as
#: ``hook(ctx, tool name, arguments)``, so it can park the run while people decide.
ApprovalHook = Callable[[str, Mapping[str, Any]], bool | Awaitable[bool]]

EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class AgentTool:
    """A tool the agent's model may call: ``fn(**arguments)``, sync or async, JSON result.

    ``parameters`` is the JSON Schema (an object schema) of the arguments; the model's
    arguments are validated against it before ``fn`` runs (an invalid call is handed back to
    the model as an error, nothing runs). ``needs_approval`` makes the agent ask its ``approve``
    hook first. ``retry`` is the tool step's retry policy (default: a single attempt).

    Each call of ``fn`` is one durable step. An ``fn`` marked with
    :func:`batonflow.core.takes_context` is instead awaited at workflow level as
    ``fn(ctx, **arguments)`` and makes its own steps (a DSL function runs as its task this way).
    A tool is callable as its function, so it can be registered with ``DslRuntime(functions=)``
    and serve both as a DSL ``call:`` and as an agent tool named there.
    """

    name: str
    fn: Callable[..., Any]
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: dict(EMPTY_SCHEMA))
    needs_approval: bool = False
    retry: Retry | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("an agent tool needs a name")
        if not callable(self.fn):
            raise ConfigError(f"agent tool {self.name!r}: fn must be callable")
        try:
            jsonschema.Draft202012Validator.check_schema(dict(self.parameters))
        except jsonschema.SchemaError as exc:
            raise ConfigError(
                f"agent tool {self.name!r}: parameters is not a JSON Schema: {exc.message}"
            ) from None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


@overload
def tool(fn: Callable[..., Any], /) -> AgentTool: ...
@overload
def tool(
    fn: Callable[..., Any], /, *, name: str | None = ..., description: str | None = ...,
    parameters: Mapping[str, Any] | None = ..., needs_approval: bool = ...,
    retry: Retry | None = ...,
) -> AgentTool: ...  # fmt: skip
@overload
def tool(
    *, name: str | None = ..., description: str | None = ...,
    parameters: Mapping[str, Any] | None = ..., needs_approval: bool = ...,
    retry: Retry | None = ...,
) -> Callable[[Callable[..., Any]], AgentTool]: ...  # fmt: skip
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    needs_approval: bool = False,
    retry: Retry | None = None,
) -> AgentTool | Callable[[Callable[..., Any]], AgentTool]:
    """Make an :class:`AgentTool` of a function, as ``@tool(parameters={...})`` or inline.

    The name defaults to the function's name, the description to its docstring; the schema
    is explicit (default: no arguments).
    """

    def wrap(f: Callable[..., Any]) -> AgentTool:
        return AgentTool(
            name=name or str(getattr(f, "__name__", "")),
            fn=f,
            description=description if description is not None else inspect.getdoc(f) or "",
            parameters=dict(parameters) if parameters is not None else dict(EMPTY_SCHEMA),
            needs_approval=needs_approval,
            retry=retry,
        )

    return wrap(fn) if fn is not None else wrap


def http_tool(
    name: str,
    method: str,
    url: str,
    *,
    client: httpx.AsyncClient,
    description: str = "",
    parameters: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    needs_approval: bool = False,
    retry: Retry | None = None,
) -> AgentTool:
    """An HTTP call as an agent tool, sent with ``client`` (use ``batonflow``'s egress client).

    ``{placeholders}`` in ``url`` are filled from the arguments of the same name (URL-quoted);
    the other arguments go in the query string for GET and DELETE, else as the JSON body. The
    result is ``{"status": code, "body": JSON or text}``; an error status is a result too (the
    model sees it), a transport failure fails the call.
    """
    verb = method.upper()
    in_path = {field for _, field, _, _ in string.Formatter().parse(url) if field}

    async def call(**arguments: Any) -> dict[str, Any]:
        path = {
            k: urllib.parse.quote(str(v), safe="") for k, v in arguments.items() if k in in_path
        }
        rest = {k: v for k, v in arguments.items() if k not in in_path}
        target = url.format_map(path)
        if verb in {"GET", "DELETE"}:
            response = await client.request(verb, target, params=rest, headers=headers)
        else:
            response = await client.request(verb, target, json=rest, headers=headers)
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        return {"status": response.status_code, "body": body}

    call.__qualname__ = call.__name__ = name
    return AgentTool(
        name=name,
        fn=call,
        description=description or f"{verb} {url}",
        parameters=dict(parameters) if parameters is not None else dict(EMPTY_SCHEMA),
        needs_approval=needs_approval,
        retry=retry,
    )


def mcp_tool(server: McpServer, spec: Mapping[str, Any]) -> AgentTool:
    remote = str(spec["name"])

    async def call(**arguments: Any) -> Any:
        return await server.call_tool(remote, **arguments)

    call.__qualname__ = call.__name__ = f"{server.name}.{remote}"
    return AgentTool(
        name=server.prefix + remote,
        fn=call,
        description=str(spec.get("description") or ""),
        parameters=spec.get("parameters") or dict(EMPTY_SCHEMA),
    )
