"""The agent loop: tools called as durable steps, replay, budgets, approvals, MCP tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import batonflow as bf
from batonflow._net import make_client
from batonflow.catalog import (
    AgentBudgetExceeded,
    AgentTool,
    ApprovalUnavailable,
    Catalog,
    McpServer,
    agent,
    http_tool,
    tool,
)
from batonflow.core import takes_context
from batonflow.errors import ConfigError
from batonflow.providers import OpenAIProvider
from providers.servers import FakeOpenAI, ok

HERE = Path(__file__).resolve().parent
NUMBERS = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}
TEXT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


class Calls:
    """Tools that count their calls."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def tools(self, *, approve_pay: bool = False) -> list[AgentTool]:
        def add(a: int, b: int) -> int:
            """Add two integers."""
            self.log.append(f"add {a} {b}")
            return a + b

        async def shout(text: str) -> str:
            self.log.append(f"shout {text}")
            return text.upper()

        def pay(a: int, b: int) -> dict[str, Any]:
            self.log.append(f"pay {a} {b}")
            return {"paid": a + b}

        def broken(text: str) -> str:
            self.log.append(f"broken {text}")
            raise RuntimeError("the printer is on fire")

        return [
            tool(add, parameters=NUMBERS),
            tool(shout, description="Upper-case a text.", parameters=TEXT),
            tool(pay, parameters=NUMBERS, needs_approval=True),
            tool(broken, parameters=TEXT),
        ]


def tool_messages(body: Any) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


async def run_agent(
    tmp_path: Path, provider: Any, **options: Any
) -> tuple[Any, list[bf.StepRecord]]:
    async def flow(ctx: bf.Context) -> Any:
        result = await agent(ctx, provider, "do the sums", **options)
        return result.as_dict()

    workflow = bf.Workflow(flow, name="agentic")
    async with bf.Engine(tmp_path / "x.db", workflows=[workflow]) as engine:
        handle = await engine.start(workflow)
        result = await handle.result()
        return result, await engine.store.load_steps(handle.run_id)


async def test_the_loop_calls_tools_and_finishes(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    calls = Calls()
    server.script(
        ok(tool=("add", {"a": 2, "b": 3})), ok(tool=("shout", {"text": "hi"})), ok("5 HI")
    )
    result, steps = await run_agent(tmp_path, provider, tools=calls.tools())
    assert result == {
        "output": "5 HI",
        "turns": 3,
        "tool_calls": 2,
        "tokens": {"input": 36, "output": 15},
        "cost": 0.0,
    }
    assert calls.log == ["add 2 3", "shout hi"]
    assert [s.name for s in steps] == [
        "agent.model", "agent.tool:add", "agent.model", "agent.tool:shout", "agent.model",
    ]  # fmt: skip
    assert json.loads(steps[1].input_json or "")["kwargs"] == {"a": 2, "b": 3}
    first, second, third = (r.body for r in server.received)
    assert {t["function"]["name"] for t in first["tools"]} == {"add", "shout", "pay", "broken"}
    assert tool_messages(second) == ["5"]
    assert tool_messages(third) == ["5", "HI"]


async def test_a_catalog_names_the_provider(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    server.script(ok("nothing to do"))
    catalog = Catalog(providers={"main": provider}, default="main")
    result, _ = await run_agent(tmp_path, catalog, provider_name="main")
    assert result["output"] == "nothing to do"


async def test_tool_errors_bad_arguments_and_unknown_tools_go_back_to_the_model(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    calls = Calls()
    server.script(
        ok(tool=("broken", {"text": "x"})),
        ok(tool=("add", {"a": "two", "b": 3})),
        ok(tool=("nope", {})),
        ok("gave up"),
    )
    result, _ = await run_agent(tmp_path, provider, tools=calls.tools())
    assert result["output"] == "gave up"
    assert calls.log == ["broken x"]  # add never ran with bad arguments
    errors = [json.loads(m)["error"] for m in tool_messages(server.received[3].body)]
    assert "the printer is on fire" in errors[0]
    assert "invalid arguments for 'add'" in errors[1]
    assert "no tool named 'nope'" in errors[2]


async def test_replay_after_a_park_runs_no_tool_again(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    calls = Calls()
    tools = calls.tools()

    async def flow(ctx: bf.Context) -> Any:
        result = await agent(ctx, provider, "do the sums", tools)
        verdict = await ctx.wait_for_event("reviewed")  # parks: the run is replayed on wake
        return {"agent": result.as_dict(), "verdict": verdict}

    workflow = bf.Workflow(flow, name="reviewed")
    server.script(ok(tool=("add", {"a": 1, "b": 1})), ok(tool=("shout", {"text": "a"})), ok("ok"))
    async with bf.Engine(tmp_path / "x.db", workflows=[workflow]) as engine:
        handle = await engine.start(workflow)
        await engine.settle()
        assert await handle.status() is bf.RunStatus.WAITING
        await engine.send_event("reviewed", "fine", run_id=handle.run_id)
        result = await handle.result()
    assert result["verdict"] == "fine"
    assert result["agent"]["output"] == "ok"
    assert calls.log == ["add 1 1", "shout a"]  # once each, across the replay
    assert len(server.received) == 3  # no model turn asked again


async def test_the_step_budget(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    calls = Calls()
    server.script(*[ok(tool=("add", {"a": 1, "b": 2}))] * 5)
    with pytest.raises(bf.RunFailed, match="used its 3 steps"):
        await run_agent(tmp_path, provider, tools=calls.tools(), max_steps=3)
    assert calls.log == ["add 1 2"]  # turn, tool, turn: then no room for the second call


async def test_the_token_budget(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    calls = Calls()
    server.script(ok(tool=("add", {"a": 1, "b": 2})), ok("done"))
    with pytest.raises(bf.RunFailed, match="34 tokens, over its budget of 20"):
        await run_agent(tmp_path, provider, tools=calls.tools(), max_tokens=20)
    assert len(server.received) == 2


async def test_budget_error_is_not_retryable() -> None:
    assert AgentBudgetExceeded.retryable is False
    with pytest.raises(ConfigError, match="max_steps"):
        await agent(None, None, "x", max_steps=0)  # type: ignore[arg-type]


async def test_a_tool_needing_approval_without_a_hook_fails_clearly(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    calls = Calls()
    server.script(ok(tool=("pay", {"a": 1, "b": 2})), ok("done"))
    with pytest.raises(bf.RunFailed, match="needs an approval before it runs, and the agent has"):
        await run_agent(tmp_path, provider, tools=calls.tools())
    assert calls.log == []
    assert issubclass(ApprovalUnavailable, ConfigError)


async def test_the_approval_hook_decides_and_is_recorded(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    calls = Calls()
    asked: list[tuple[str, dict[str, Any]]] = []

    async def approve(name: str, arguments: Any) -> bool:
        asked.append((name, dict(arguments)))
        return arguments["a"] < 100

    server.script(
        ok(tool=("pay", {"a": 500, "b": 1})), ok(tool=("pay", {"a": 5, "b": 1})), ok("paid")
    )
    result, steps = await run_agent(tmp_path, provider, tools=calls.tools(), approve=approve)
    assert result["output"] == "paid"
    assert calls.log == ["pay 5 1"]  # the refused call never ran
    assert asked == [("pay", {"a": 500, "b": 1}), ("pay", {"a": 5, "b": 1})]
    names = [s.name for s in steps]
    assert names == [
        "agent.model", "agent.approve:pay", "agent.model", "agent.approve:pay",
        "agent.tool:pay", "agent.model",
    ]  # fmt: skip
    assert [json.loads(s.output_json or "") for s in steps if "approve" in s.name] == [
        {"approved": False},
        {"approved": True},
    ]
    refusal = json.loads(tool_messages(server.received[1].body)[0])["error"]
    assert "refused by the approver" in refusal


def test_tool_definitions_are_checked() -> None:
    with pytest.raises(ConfigError, match="not a JSON Schema"):
        tool(print, parameters={"type": "nonsense"})
    with pytest.raises(ConfigError, match="needs a name"):
        AgentTool("", print)


async def test_an_mcp_tool_over_stdio_is_listed_and_called(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    log = tmp_path / "mcp.log"
    with (tmp_path / "mcp.err").open("w") as errors:
        mcp = McpServer(
            "tools",
            sys.executable,
            [str(HERE / "mcp_server.py")],
            env={"AGENT_MCP_LOG": str(log)},
            stderr=errors,
        )
        server.script(ok(tool=("add", {"a": 2, "b": 40})), ok("the answer is 42"))
        result, steps = await run_agent(tmp_path, provider, tools=[mcp])
    assert result["output"] == "the answer is 42"
    assert log.read_text().splitlines() == ["start", "add 2 40"]
    offered = {t["function"]["name"]: t["function"] for t in server.received[0].body["tools"]}
    assert set(offered) == {"add", "shout"}
    assert offered["add"]["description"] == "Add two integers."
    assert offered["add"]["parameters"]["required"] == ["a", "b"]
    assert tool_messages(server.received[1].body) == [json.dumps({"result": 42})]
    assert [s.name for s in steps] == [
        "agent.mcp:tools", "agent.model", "agent.tool:add", "agent.model",
    ]  # fmt: skip


async def test_an_http_call_as_a_tool(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"city": "Oslo", "temp": -3})

    async with make_client(transport=httpx.MockTransport(answer)) as http:
        weather = http_tool(
            "weather",
            "GET",
            "https://weather.test/v1/cities/{city}",
            client=http,
            parameters={
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"],
            },
        )
        server.script(ok(tool=("weather", {"city": "Oslo/N", "unit": "C"})), ok("cold"))
        result, steps = await run_agent(tmp_path, provider, tools=[weather])
    assert result["output"] == "cold"
    (request,) = seen
    assert str(request.url) == "https://weather.test/v1/cities/Oslo%2FN?unit=C"
    assert json.loads(tool_messages(server.received[1].body)[0]) == {
        "status": 200,
        "body": {"city": "Oslo", "temp": -3},
    }
    assert [s.name for s in steps][1] == "agent.tool:weather"


async def test_a_replay_does_not_start_the_mcp_server_again(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    log = tmp_path / "mcp.log"
    with (tmp_path / "mcp.err").open("w") as errors:
        mcp = McpServer(
            "tools",
            sys.executable,
            [str(HERE / "mcp_server.py")],
            env={"AGENT_MCP_LOG": str(log)},
            prefix="mcp_",
            stderr=errors,
        )

        async def flow(ctx: bf.Context) -> Any:
            result = await agent(ctx, provider, "shout", [mcp])
            await ctx.wait_for_event("go")  # parks; the wake replays the agent
            return result.output

        workflow = bf.Workflow(flow, name="mcp_replay")
        server.script(ok(tool=("mcp_shout", {"text": "hey"})), ok("HEY"))
        async with bf.Engine(tmp_path / "x.db", workflows=[workflow]) as engine:
            handle = await engine.start(workflow)
            await engine.settle()
            assert await handle.status() is bf.RunStatus.WAITING
            await engine.send_event("go", None, run_id=handle.run_id)
            assert await handle.result() == "HEY"
    assert log.read_text().splitlines() == ["start", "shout hey"]  # one start, one call
    assert tool_messages(server.received[1].body) == [json.dumps({"result": "HEY"})]
    assert len(server.received) == 2


async def test_an_approval_hook_at_workflow_level_parks_the_run(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    """A hook marked takes_context runs with the run's context: it can wait for people."""
    calls = Calls()
    asked: list[str] = []

    @takes_context
    async def people(ctx: bf.Context, name: str, arguments: Any) -> bool:
        asked.append(f"{name} {arguments['a']}")
        verdict = await ctx.wait_for_event("verdict", key=f"{name}-{arguments['a']}")
        return bool(verdict == "yes")

    async def flow(ctx: bf.Context) -> Any:
        result = await agent(ctx, provider, "pay", calls.tools(), approve=people)
        return result.output

    workflow = bf.Workflow(flow, name="people_decide")
    server.script(
        ok(tool=("pay", {"a": 500, "b": 1})), ok(tool=("pay", {"a": 5, "b": 1})), ok("paid")
    )
    async with bf.Engine(tmp_path / "x.db", workflows=[workflow]) as engine:
        handle = await engine.start(workflow)
        await engine.settle()
        assert await handle.status() is bf.RunStatus.WAITING
        await engine.send_event("verdict", "no", key="pay-500")
        await engine.settle()
        assert await handle.status() is bf.RunStatus.WAITING  # the second call waits too
        await engine.send_event("verdict", "yes", key="pay-5")
        assert await handle.result() == "paid"
    assert calls.log == ["pay 5 1"]
    assert len(server.received) == 3  # replays after each wake asked no turn again
    # workflow-level code runs again on each replay; the waits answer from the journal
    assert list(dict.fromkeys(asked)) == ["pay 500", "pay 5"]
    refusal = json.loads(tool_messages(server.received[1].body)[0])["error"]
    assert "refused by the approver" in refusal
