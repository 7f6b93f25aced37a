"""``agent`` as a DSL function: JSON arguments in, the agent's result as JSON out.

A DSL ``call: agent`` (the function :meth:`Catalog.functions` gives) names everything by JSON:
the provider by its catalog name, each tool by name (a catalog tool or a configured MCP server)
or as an HTTP tool described inline. The DSL runtime hands in, already resolved, the tools that
name functions of the document (``use.functions``) or of the runtime, as :class:`AgentTool`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from batonflow.catalog._agent import agent
from batonflow.catalog._mcp import McpServer
from batonflow.catalog._tools import AgentTool, http_tool
from batonflow.core import Context, takes_context
from batonflow.errors import ConfigError

if TYPE_CHECKING:
    from batonflow.catalog._catalog import Catalog

__all__ = ["dsl_agent"]

_HTTP_KEYS = (
    "name", "description", "endpoint", "method", "parameters", "headers", "needs_approval",
)  # fmt: skip
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def dsl_agent(catalog: Catalog) -> Callable[..., Awaitable[dict[str, Any]]]:
    """The ``agent`` function of ``catalog`` for ``DslRuntime(functions=)``."""

    @takes_context
    async def run_agent(
        ctx: Context,
        *,
        goal: str | None = None,
        tools: list[Any] | None = None,
        provider: str | None = None,
        model: str | None = None,
        system: str | None = None,
        max_steps: int = 20,
        max_tokens: int | None = None,
        temperature: float | None = None,
        needs_approval: list[str] | None = None,
        name: str = "agent",
        **unknown: Any,
    ) -> dict[str, Any]:
        """Pursue ``goal`` with the catalog's provider ``provider`` and ``tools``; the result
        is ``{"output", "turns", "tool_calls", "tokens": {"input", "output"}, "cost"}``."""
        if unknown:
            raise ConfigError(
                f"agent: unknown argument {sorted(unknown)[0]!r} (arguments: goal, tools, "
                "provider, model, system, max_steps, max_tokens, temperature, needs_approval, "
                "name)"
            )
        _check("goal", goal, str, required=True)
        assert goal is not None
        for key, value in (("provider", provider), ("model", model), ("system", system)):
            _check(key, value, str)
        _check("name", name, str, required=True)
        for key, number in (("max_steps", max_steps), ("max_tokens", max_tokens)):
            _check(key, number, int)
        _check("temperature", temperature, (int, float))
        entries = _list("tools", tools)
        approval = _list("needs_approval", needs_approval)
        for index, item in enumerate(approval):
            _check(f"needs_approval[{index}]", item, str, required=True)
        result = await agent(
            ctx,
            catalog,
            goal,
            [_tool(catalog, entry, index) for index, entry in enumerate(entries)],
            provider_name=provider,
            model=model,
            system=system,
            max_steps=max_steps,
            max_tokens=max_tokens,
            temperature=temperature,
            approve=catalog.approve,
            needs_approval=approval,
            name=name,
        )
        return result.as_dict()

    run_agent.__qualname__ = run_agent.__name__ = "agent"
    return run_agent


def _tool(catalog: Catalog, entry: Any, index: int) -> AgentTool | McpServer:
    where = f"tools[{index}]"
    if isinstance(entry, AgentTool):  # a DSL or runtime function, resolved by the DSL runtime
        return entry
    if isinstance(entry, str):
        if entry in catalog.tools:
            return catalog.tools[entry]
        if entry in catalog.mcp_servers:
            return catalog.mcp_servers[entry].clone()  # its own connection, closed by the agent
        raise ConfigError(
            f"agent {where}: no tool named {entry!r}: it is not a function of the document "
            f"(use.functions) or the runtime, a catalog tool ({_known(catalog.tools)}) or a "
            f"configured MCP server ({_known(catalog.mcp_servers)})"
        )
    if isinstance(entry, Mapping):
        return _http(catalog, entry, where)
    raise ConfigError(
        f"agent {where}: expected a tool name or an HTTP tool object, got {type(entry).__name__}"
    )


def _http(catalog: Catalog, spec: Mapping[str, Any], where: str) -> AgentTool:
    unknown = sorted(set(spec) - set(_HTTP_KEYS))
    if unknown:
        raise ConfigError(
            f"agent {where}: unknown key {unknown[0]!r} in an HTTP tool "
            f"(keys: {', '.join(_HTTP_KEYS)})"
        )
    name = _check(f"{where}.name", spec.get("name"), str, required=True)
    endpoint = spec.get("endpoint")
    if isinstance(endpoint, Mapping):  # the DSL's endpoint object: {uri: ...}
        endpoint = endpoint.get("uri")
    url = _check(f"{where}.endpoint", endpoint, str, required=True)
    method = str(_check(f"{where}.method", spec.get("method", "GET"), str)).upper()
    if method not in _METHODS:
        raise ConfigError(
            f"agent {where}.method: must be one of {', '.join(_METHODS)}, got {method!r}"
        )
    parameters = _check(f"{where}.parameters", spec.get("parameters"), Mapping)
    headers = _check(f"{where}.headers", spec.get("headers"), Mapping)
    if catalog.client is None:
        raise ConfigError(
            f"agent {where}: HTTP tool {name!r} needs an HTTP client: give the catalog one, "
            "Catalog(client=batonflow._net.make_client(...)) (the egress-controlled client)"
        )
    return http_tool(
        name,
        method,
        url,
        client=catalog.client,
        description=_check(f"{where}.description", spec.get("description", ""), str),
        parameters=parameters,
        headers={str(k): str(v) for k, v in (headers or {}).items()},
        needs_approval=bool(_check(f"{where}.needs_approval", spec.get("needs_approval"), bool)),
    )


def _check(where: str, value: Any, kind: Any, *, required: bool = False) -> Any:
    if value is None:
        if required:
            raise ConfigError(f"agent {where}: required")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = kind.__name__ if isinstance(kind, type) else "number"
        raise ConfigError(f"agent {where}: expected {expected}, got {type(value).__name__}")
    if required and value == "":
        raise ConfigError(f"agent {where}: must not be empty")
    return value


def _list(where: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ConfigError(f"agent {where}: expected a list, got {type(value).__name__}")
    return list(value)


def _known(table: Mapping[str, Any]) -> str:
    return ", ".join(sorted(table)) or "none"
