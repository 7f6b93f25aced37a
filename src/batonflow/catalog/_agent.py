"""``agent``: a model and tools in a loop, every model turn and tool call a durable step."""

from __future__ import annotations

import inspect
import json
import string
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import httpx
import jsonschema

from batonflow.catalog._catalog import Catalog
from batonflow.catalog._mcp import McpServer
from batonflow.core import Context, Retry, step
from batonflow.errors import BatonflowError, ConfigError
from batonflow.providers import ChatRequest, Message, Provider, Tool, ToolCall

__all__ = [
    "AgentBudgetExceeded",
    "AgentResult",
    "AgentTool",
    "ApprovalHook",
    "ApprovalUnavailable",
    "agent",
    "http_tool",
    "tool",
]

#: Decides whether a tool flagged ``needs_approval`` may run: ``(tool name, arguments) -> bool``.
ApprovalHook = Callable[[str, Mapping[str, Any]], bool | Awaitable[bool]]

_EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}


class AgentBudgetExceeded(BatonflowError):
    """The agent used up its step or token budget before it finished (not retryable)."""

    retryable = False


class ApprovalUnavailable(ConfigError):
    """A tool needs a human approval and the agent was given no ``approve`` hook."""


@dataclass(frozen=True, slots=True)
class AgentTool:
    """A tool the agent's model may call: ``fn(**arguments)``, sync or async, JSON result.

    ``parameters`` is the JSON Schema (an object schema) of the arguments; the model's
    arguments are validated against it before ``fn`` runs (an invalid call is handed back to
    the model as an error, nothing runs). ``needs_approval`` makes the agent ask its ``approve``
    hook first. ``retry`` is the tool step's retry policy (default: a single attempt).
    """

    name: str
    fn: Callable[..., Any]
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: dict(_EMPTY_SCHEMA))
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
            parameters=dict(parameters) if parameters is not None else dict(_EMPTY_SCHEMA),
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
        parameters=dict(parameters) if parameters is not None else dict(_EMPTY_SCHEMA),
        needs_approval=needs_approval,
        retry=retry,
    )


@dataclass(frozen=True, slots=True)
class AgentResult:
    """How the agent ended: its final ``output`` text, the model turns and tool calls it took,
    and the tokens used. :meth:`as_dict` gives it as JSON (e.g. for a workflow's output)."""

    output: str
    turns: int
    tool_calls: int
    input_tokens: int
    output_tokens: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "turns": self.turns,
            "tool_calls": self.tool_calls,
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
        }


@dataclass
class _Budget:
    max_steps: int
    max_tokens: int | None
    steps: int = 0
    turns: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def take_step(self, what: str) -> None:
        if self.steps >= self.max_steps:
            raise AgentBudgetExceeded(
                f"the agent used its {self.max_steps} steps (model turns and tool calls) "
                f"before it finished; it was about to {what}"
            )
        self.steps += 1

    def spend(self, usage: Mapping[str, Any]) -> None:
        self.input_tokens += int(usage.get("input_tokens", 0))
        self.output_tokens += int(usage.get("output_tokens", 0))
        used = self.input_tokens + self.output_tokens
        if self.max_tokens is not None and used > self.max_tokens:
            raise AgentBudgetExceeded(
                f"the agent used {used} tokens, over its budget of {self.max_tokens}"
            )


async def _refuse(tool_name: str, arguments: Mapping[str, Any]) -> bool:
    raise ApprovalUnavailable(
        f"tool {tool_name!r} needs a human approval before it runs, and the agent has no "
        "approve hook; human approvals arrive with governance: until then pass "
        "approve=<callable(tool_name, arguments) -> bool> to agent()"
    )


async def agent(
    ctx: Context,
    provider: Provider | Catalog,
    goal: str,
    tools: Sequence[AgentTool | McpServer | Callable[..., Any]] = (),
    *,
    provider_name: str | None = None,
    model: str | None = None,
    system: str | None = None,
    max_steps: int = 20,
    max_tokens: int | None = None,
    temperature: float | None = None,
    approve: ApprovalHook | None = None,
    name: str = "agent",
) -> AgentResult:
    """Pursue ``goal`` with a model and ``tools``, inside a workflow, durably.

    Each model turn is a step named ``<name>.model`` (its result: text, tool calls, usage and
    who answered) and each tool call a step named ``<name>.tool:<tool>``, so after a crash or a
    park the agent is replayed from the journal: recorded turns are not asked again and a
    recorded tool call never runs again. Only the step in flight when the engine died runs
    again (as any step would). An MCP server's tool list is a step too (``<name>.mcp:<server>``),
    so the model sees the same tools on replay.

    ``provider`` is a Provider or a :class:`Catalog` (``provider_name`` picks one of its
    providers). ``max_steps`` bounds model turns plus tool calls, ``max_tokens`` the input plus
    output tokens of all turns: past either, :class:`AgentBudgetExceeded`. Tools flagged
    ``needs_approval`` run only if ``approve(tool, arguments)`` says yes (recorded as the step
    ``<name>.approve:<tool>``); a refusal is told to the model. A tool that fails (or is called
    with invalid arguments, or does not exist) is reported to the model as an error.
    Plain callables in ``tools`` are made into tools with :func:`tool` (no arguments).
    """
    if max_steps < 1:
        raise ConfigError(f"agent max_steps must be at least 1, got {max_steps}")
    if max_tokens is not None and max_tokens < 1:
        raise ConfigError(f"agent max_tokens must be at least 1, got {max_tokens}")
    chosen = provider.provider(provider_name) if isinstance(provider, Catalog) else provider
    servers = [t for t in tools if isinstance(t, McpServer)]
    try:
        table = await _tool_table(ctx, tools, name)
        return await _loop(
            ctx, chosen, goal, table, model=model, system=system, temperature=temperature,
            budget=_Budget(max_steps, max_tokens), approve=approve or _refuse, name=name,
        )  # fmt: skip
    finally:
        for server in servers:
            await server.close()


async def _tool_table(
    ctx: Context, tools: Sequence[AgentTool | McpServer | Callable[..., Any]], name: str
) -> dict[str, AgentTool]:
    table: dict[str, AgentTool] = {}
    for item in tools:
        found: list[AgentTool]
        if isinstance(item, AgentTool):
            found = [item]
        elif isinstance(item, McpServer):
            listed = await ctx.step(step(item.list_tools, name=f"{name}.mcp:{item.name}"))
            found = [_mcp_tool(item, spec) for spec in listed]
        elif callable(item):
            found = [tool(item)]
        else:
            raise ConfigError(f"agent tools must be tools, MCP servers or functions: {item!r}")
        for entry in found:
            if entry.name in table:
                raise ConfigError(f"two agent tools are named {entry.name!r}")
            table[entry.name] = entry
    return table


def _mcp_tool(server: McpServer, spec: Mapping[str, Any]) -> AgentTool:
    remote = str(spec["name"])

    async def call(**arguments: Any) -> Any:
        return await server.call_tool(remote, **arguments)

    call.__qualname__ = call.__name__ = f"{server.name}.{remote}"
    return AgentTool(
        name=server.prefix + remote,
        fn=call,
        description=str(spec.get("description") or ""),
        parameters=spec.get("parameters") or dict(_EMPTY_SCHEMA),
    )


async def _loop(
    ctx: Context,
    provider: Provider,
    goal: str,
    table: Mapping[str, AgentTool],
    *,
    model: str | None,
    system: str | None,
    temperature: float | None,
    budget: _Budget,
    approve: ApprovalHook,
    name: str,
) -> AgentResult:
    messages: list[Message] = []
    if system:
        messages.append(Message.system(system))
    messages.append(Message.user(goal))
    offered = tuple(Tool(t.name, t.description, t.parameters) for t in table.values())

    async def turn(number: int) -> dict[str, Any]:
        response = await provider.complete(
            ChatRequest(
                messages=tuple(messages), model=model, temperature=temperature, tools=offered
            )
        )
        return {
            "text": response.text,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": dict(c.arguments)}
                for c in response.tool_calls
            ],
            "finish_reason": response.finish_reason,
            "usage": {
                "input_tokens": response.usage.input_tokens,
                "output_tokens": response.usage.output_tokens,
            },
            "model": {"provider": response.provider, "id": response.model},
        }

    model_step = step(turn, name=f"{name}.model")
    while True:
        budget.take_step("ask the model")
        budget.turns += 1
        answer = await ctx.step(model_step, budget.turns)
        budget.spend(answer["usage"])
        calls = tuple(
            ToolCall(c["id"], c["name"], c.get("arguments") or {}) for c in answer["tool_calls"]
        )
        if not calls:
            return AgentResult(
                output=answer["text"], turns=budget.turns, tool_calls=budget.tool_calls,
                input_tokens=budget.input_tokens, output_tokens=budget.output_tokens,
            )  # fmt: skip
        messages.append(Message.assistant(answer["text"], calls))
        for call in calls:
            content = await _run_tool(ctx, table, call, budget, approve, name)
            messages.append(Message.tool(call.id, content))


async def _run_tool(
    ctx: Context,
    table: Mapping[str, AgentTool],
    call: ToolCall,
    budget: _Budget,
    approve: ApprovalHook,
    name: str,
) -> str:
    """Run one tool call durably; what to tell the model about it."""
    entry = table.get(call.name)
    if entry is None:
        return _error(f"there is no tool named {call.name!r}; tools: {', '.join(table)}")
    arguments = dict(call.arguments)
    problems = sorted(
        jsonschema.Draft202012Validator(dict(entry.parameters)).iter_errors(arguments), key=str
    )
    if problems:
        return _error(f"invalid arguments for {call.name!r}: {problems[0].message}")
    if entry.needs_approval:

        async def decide(tool_name: str, args: dict[str, Any]) -> dict[str, Any]:
            verdict = approve(tool_name, args)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            return {"approved": bool(verdict)}

        decision = await ctx.step(
            step(decide, name=f"{name}.approve:{entry.name}", retry=Retry.never()),
            entry.name,
            arguments,
        )
        if not decision["approved"]:
            return _error(f"the call of {call.name!r} was refused by the approver; it did not run")
    budget.take_step(f"call tool {call.name!r}")
    budget.tool_calls += 1
    tool_step = step(entry.fn, name=f"{name}.tool:{entry.name}", retry=entry.retry or Retry.never())
    try:
        result = await ctx.step(tool_step, **arguments)
    except Exception as exc:  # recorded: a replay raises the same error here
        return _error(f"tool {call.name!r} failed: {type(exc).__name__}: {exc}")
    return result if isinstance(result, str) else json.dumps(result)


def _error(message: str) -> str:
    return json.dumps({"error": message})
