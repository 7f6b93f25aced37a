"""``agent``: a model and tools in a loop, every model turn and tool call a durable step."""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from batonflow.catalog._budget import Guard, Meter, journal_guard
from batonflow.catalog._catalog import Catalog
from batonflow.catalog._errors import BudgetExceeded
from batonflow.catalog._mcp import McpServer
from batonflow.catalog._tools import AgentTool, ApprovalHook, mcp_tool, tool
from batonflow.core import Context, Retry, step, wants_context
from batonflow.errors import ConfigError, DeadlineExceeded, NonDeterminismError
from batonflow.providers import ChatRequest, Message, Provider, Tool, ToolCall

__all__ = [
    "AgentBudgetExceeded",
    "AgentResult",
    "ApprovalUnavailable",
    "agent",
]


class AgentBudgetExceeded(BudgetExceeded):
    """The agent used up its step or token budget before it finished (not retryable)."""

    retryable = False


class ApprovalUnavailable(ConfigError):
    """A tool needs a human approval and the agent was given no ``approve`` hook."""


@dataclass(frozen=True, slots=True)
class AgentResult:
    """How the agent ended: its final ``output`` text, the model turns and tool calls it took,
    and the tokens used and their ``cost`` (at the providers' configured prices). :meth:`as_dict`
    gives it as JSON (e.g. for a workflow's output)."""

    output: str
    turns: int
    tool_calls: int
    input_tokens: int
    output_tokens: int
    cost: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "turns": self.turns,
            "tool_calls": self.tool_calls,
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "cost": round(self.cost, 10),
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
    cost: float = 0.0

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
        self.cost += float(usage.get("cost") or 0.0)
        used = self.input_tokens + self.output_tokens
        if self.max_tokens is not None and used > self.max_tokens:
            raise AgentBudgetExceeded(
                f"the agent used {used} tokens, over its budget of {self.max_tokens}"
            )


async def _refuse(tool_name: str, arguments: Mapping[str, Any]) -> bool:
    raise ApprovalUnavailable(
        f"tool {tool_name!r} needs an approval before it runs, and the agent has no approve "
        "hook: pass approve=<callable(tool_name, arguments) -> bool> to agent() (or to the "
        "Catalog, for DSL agents), or a hook marked takes_context that asks people"
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
    needs_approval: Collection[str] = (),
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
    providers; a catalog's :class:`~batonflow.catalog.RunBudget` is checked before every
    turn). ``max_steps`` bounds model turns plus tool calls, ``max_tokens`` the input plus
    output tokens of all turns: past either, :class:`AgentBudgetExceeded`. Tools flagged
    ``needs_approval`` run only if ``approve(tool, arguments)`` says yes (recorded as the step
    ``<name>.approve:<tool>``); a refusal is told to the model. A tool that fails (or is called
    with invalid arguments, or does not exist) is reported to the model as an error.
    ``needs_approval`` names more tools (an MCP server's, say) that need approval.
    Plain callables in ``tools`` are made into tools with :func:`tool` (no arguments).
    """
    if max_steps < 1:
        raise ConfigError(f"agent max_steps must be at least 1, got {max_steps}")
    if max_tokens is not None and max_tokens < 1:
        raise ConfigError(f"agent max_tokens must be at least 1, got {max_tokens}")
    guard: Guard | None = None
    if isinstance(provider, Catalog):
        chosen = provider.provider(provider_name)
        if provider.budget is not None:
            guard = journal_guard(provider.budget, ctx.engine.store)
    else:
        chosen = provider
    servers = [t for t in tools if isinstance(t, McpServer)]
    try:
        table = _needing_approval(await _tool_table(ctx, tools, name), needs_approval)
        return await _loop(
            ctx, chosen, goal, table, model=model, system=system, temperature=temperature,
            budget=_Budget(max_steps, max_tokens), approve=approve or _refuse, name=name,
            guard=guard,
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
            found = [mcp_tool(item, spec) for spec in listed]
        elif callable(item):
            found = [tool(item)]
        else:
            raise ConfigError(f"agent tools must be tools, MCP servers or functions: {item!r}")
        for entry in found:
            if entry.name in table:
                raise ConfigError(f"two agent tools are named {entry.name!r}")
            table[entry.name] = entry
    return table


def _needing_approval(table: dict[str, AgentTool], names: Collection[str]) -> dict[str, AgentTool]:
    for tool_name in names:
        if tool_name not in table:
            raise ConfigError(
                f"agent needs_approval names {tool_name!r}, which is not one of its tools "
                f"({', '.join(table) or 'none'})"
            )
        table[tool_name] = dataclasses.replace(table[tool_name], needs_approval=True)
    return table


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
    guard: Guard | None,
) -> AgentResult:
    messages: list[Message] = []
    if system:
        messages.append(Message.system(system))
    messages.append(Message.user(goal))
    offered = tuple(Tool(t.name, t.description, t.parameters) for t in table.values())

    async def turn(number: int) -> dict[str, Any]:
        meter = Meter(provider, guard)
        response = await meter.complete(
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
            "usage": meter.spent.usage(),
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
                cost=budget.cost,
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
    if entry.needs_approval and not await _approved(ctx, approve, entry.name, arguments, name):
        return _error(f"the call of {call.name!r} was refused by the approver; it did not run")
    budget.take_step(f"call tool {call.name!r}")
    budget.tool_calls += 1
    if wants_context(entry.fn):  # runs at workflow level, making its own steps (a DSL function)
        try:
            result = await entry.fn(ctx, **arguments)
        except (DeadlineExceeded, NonDeterminismError):
            raise  # the workflow itself must stop, not the tool
        except Exception as exc:  # its steps are recorded: a replay fails the same way
            return _error(f"tool {call.name!r} failed: {type(exc).__name__}: {exc}")
        return result if isinstance(result, str) else json.dumps(result)
    tool_step = step(entry.fn, name=f"{name}.tool:{entry.name}", retry=entry.retry or Retry.never())
    try:
        result = await ctx.step(tool_step, **arguments)
    except Exception as exc:  # recorded: a replay raises the same error here
        return _error(f"tool {call.name!r} failed: {type(exc).__name__}: {exc}")
    return result if isinstance(result, str) else json.dumps(result)


async def _approved(
    ctx: Context, approve: ApprovalHook, tool_name: str, arguments: dict[str, Any], name: str
) -> bool:
    """Ask ``approve``: in a step of its own (its answer recorded), or, for a hook marked
    :func:`~batonflow.core.takes_context` (people deciding: it parks and makes its own steps),
    at workflow level as ``approve(ctx, tool_name, arguments)``."""
    if wants_context(approve):
        at_workflow_level: Callable[..., Awaitable[Any]] = approve  # type: ignore[assignment]
        return bool(await at_workflow_level(ctx, tool_name, arguments))

    async def decide(tool_name: str, args: dict[str, Any]) -> dict[str, Any]:
        verdict = approve(tool_name, args)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return {"approved": bool(verdict)}

    decide_step = step(decide, name=f"{name}.approve:{tool_name}", retry=Retry.never())
    decision = await ctx.step(decide_step, tool_name, arguments)
    return bool(decision["approved"])


def _error(message: str) -> str:
    return json.dumps({"error": message})
