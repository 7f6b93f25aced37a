"""``call: agent`` in a workflow document: tools named by the document (its functions, run as
tasks), by the runtime, by the catalog (tools, MCP servers) or described inline (HTTP)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import batonflow as bf
from batonflow._net import make_client
from batonflow.catalog import Catalog, McpServer, tool
from batonflow.dsl._runtime import DslRuntime
from batonflow.providers import OpenAIProvider
from providers.servers import FakeOpenAI, ok

HERE = Path(__file__).resolve().parent
NUMBERS = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}
ORDER = {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}


def document(*tasks: dict[str, Any], functions: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "helper", "version": "1.0.0"},
        "do": list(tasks),
    }
    if functions:
        doc["use"] = {"functions": functions}
    return doc


def tool_messages(body: Any) -> list[Any]:
    return [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]


LOOKUP = {  # a function of the document: a task definition, here calling a Python function
    "input": {"schema": {"format": "json", "document": ORDER}},
    "metadata": {"description": "Look up an order by its number."},
    "call": "orders",
    "with": {"order": "${ .order }"},
    "output": {"as": "${ {order: .order, state: .state} }"},
}


async def test_call_agent_with_every_kind_of_tool(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    log: list[str] = []

    def orders(order: str) -> dict[str, Any]:
        log.append(f"orders {order}")
        return {"order": order, "state": "shipped", "internal": "x"}

    def add(a: int, b: int) -> int:
        """Add two integers."""
        log.append(f"add {a} {b}")
        return a + b

    def stamp(text: str) -> dict[str, str]:
        log.append(f"stamp {text}")
        return {"stamped": f"[{text}]"}

    def weather(request: httpx.Request) -> httpx.Response:
        log.append(f"GET {request.url}")
        return httpx.Response(200, json={"temp": -3})

    async with make_client(transport=httpx.MockTransport(weather)) as http:
        catalog = Catalog(
            providers={"default": provider}, tools=[tool(add, parameters=NUMBERS)], client=http
        )
        runtime = DslRuntime(
            functions={
                **catalog.functions(),
                "orders": orders,
                "stamp": tool(
                    stamp,
                    parameters={"type": "object", "properties": {"text": {"type": "string"}}},
                ),
            }
        )
        doc = document(
            {
                "assist": {
                    "call": "agent",
                    "with": {
                        "goal": '${ "Where is order " + .order + "?" }',
                        "system": "You help customers.",
                        "tools": [
                            "lookupOrder",
                            "add",
                            "stamp",
                            {
                                "name": "weather",
                                "description": "The weather in a city.",
                                "endpoint": "https://weather.test/cities/{city}",
                                "method": "get",
                                "parameters": {
                                    "type": "object",
                                    "properties": {"city": {"type": "string"}},
                                    "required": ["city"],
                                },
                            },
                        ],
                        "max_steps": 10,
                    },
                    "export": {"as": "${ {agent: .} }"},
                }
            },
            {"hold": {"listen": {"to": {"one": {"with": {"type": "com.test.go"}}}}}},
            {"answer": {"set": "${ $context.agent }"}},
            functions={"lookupOrder": LOOKUP},
        )
        server.script(
            ok(tool=("lookupOrder", {"order": "A-17"})),
            ok(tool=("add", {"a": 2, "b": 3})),
            ok(tool=("stamp", {"text": "ok"})),
            ok(tool=("weather", {"city": "Oslo"})),
            ok("A-17 has shipped"),
        )
        async with bf.Engine(tmp_path / "x.db", workflows=[runtime.workflow]) as engine:
            handle = await runtime.start(engine, doc, {"order": "A-17"})
            await engine.settle()
            assert await handle.status() is bf.RunStatus.WAITING  # parked: the wake replays
            event = {"specversion": "1.0", "id": "1", "source": "/t", "type": "com.test.go"}
            await runtime.publish(engine, event)
            output = await handle.result()
            steps = await engine.store.load_steps(handle.run_id)
        await runtime.aclose()

    assert output["output"] == "A-17 has shipped"
    assert (output["turns"], output["tool_calls"]) == (5, 4)
    # every tool ran once, across the replay after the park
    assert log == ["orders A-17", "add 2 3", "stamp ok", "GET https://weather.test/cities/Oslo"]
    assert len(server.received) == 5
    offered = {t["function"]["name"]: t["function"] for t in server.received[0].body["tools"]}
    assert offered["lookupOrder"] == {
        "name": "lookupOrder",
        "description": "Look up an order by its number.",
        "parameters": ORDER,
    }
    assert offered["add"]["description"] == "Add two integers."
    assert offered["weather"]["description"] == "The weather in a city."
    first_turn = server.received[0].body["messages"]
    assert first_turn[:2] == [
        {"role": "system", "content": "You help customers."},
        {"role": "user", "content": "Where is order A-17?"},
    ]
    # the function ran as its task: its own call step, its output transform applied
    assert tool_messages(server.received[1].body) == [{"order": "A-17", "state": "shipped"}]
    assert tool_messages(server.received[4].body)[1:] == [
        5,
        {"stamped": "[ok]"},
        {"status": 200, "body": {"temp": -3}},
    ]
    names = [s.name for s in steps]
    assert "/do/0/assist/with/tools/0" in names  # the function's call, a durable step
    assert names.count("agent.model") == 5
    assert {"agent.tool:add", "agent.tool:stamp", "agent.tool:weather"} <= set(names)


async def test_a_failing_function_is_told_to_the_model(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    catalog = Catalog(providers={"default": provider})
    runtime = DslRuntime(functions=catalog.functions())
    refuse = {
        "input": {"schema": {"format": "json", "document": ORDER}},
        "raise": {
            "error": {
                "type": "https://example.test/errors/closed",
                "status": 409,
                "detail": "the shop is closed",
            }
        },
    }
    doc = document(
        {"assist": {"call": "agent", "with": {"goal": "buy", "tools": ["order"]}}},
        functions={"order": refuse},
    )
    server.script(ok(tool=("order", {"order": "B-2"})), ok(tool=("order", {})), ok("closed"))
    async with bf.Engine(tmp_path / "x.db", workflows=[runtime.workflow]) as engine:
        output = await runtime.run(engine, doc, {})
    await runtime.aclose()
    assert output["output"] == "closed"
    closed, invalid = (m["error"] for m in tool_messages(server.received[2].body))
    assert "the shop is closed" in closed
    assert "invalid arguments for 'order'" in invalid  # checked against its input schema


async def test_mcp_servers_by_name_and_approvals(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    log = tmp_path / "mcp.log"
    asked: list[tuple[str, dict[str, Any]]] = []

    def approve(name: str, arguments: Any) -> bool:
        asked.append((name, dict(arguments)))
        return False

    with (tmp_path / "mcp.err").open("w") as errors:
        mcp = McpServer(
            "calc",
            sys.executable,
            [str(HERE / "mcp_server.py")],
            env={"AGENT_MCP_LOG": str(log)},
            stderr=errors,
        )
        catalog = Catalog(providers={"default": provider}, mcp_servers=[mcp], approve=approve)
        runtime = DslRuntime(functions=catalog.functions())
        doc = document(
            {
                "assist": {
                    "call": "agent",
                    "with": {"goal": "do", "tools": ["calc"], "needs_approval": ["shout"]},
                }
            }
        )
        server.script(
            ok(tool=("add", {"a": 40, "b": 2})), ok(tool=("shout", {"text": "hey"})), ok("done")
        )
        async with bf.Engine(tmp_path / "x.db", workflows=[runtime.workflow]) as engine:
            output = await runtime.run(engine, doc, {})
        await runtime.aclose()
    assert output["output"] == "done"
    assert log.read_text().splitlines() == ["start", "add 40 2"]  # shout was refused
    assert asked == [("shout", {"text": "hey"})]
    refusal = tool_messages(server.received[2].body)[1]["error"]
    assert "refused by the approver" in refusal


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"tools": []}, "agent goal: required"),
        ({"goal": 7}, "agent goal: expected str, got int"),
        ({"goal": "x", "tools": ["nope"]}, "agent tools[0]: no tool named 'nope'"),
        ({"goal": "x", "tools": [3]}, "expected a tool name or an HTTP tool object, got int"),
        ({"goal": "x", "max_steps": "9"}, "agent max_steps: expected int, got str"),
        ({"goal": "x", "colour": "red"}, "agent: unknown argument 'colour'"),
        ({"goal": "x", "provider": "other"}, "no provider named 'other'"),
        (
            {"goal": "x", "tools": [{"name": "w", "endpoint": "https://x.test"}]},
            "HTTP tool 'w' needs an HTTP client",
        ),
        (
            {"goal": "x", "tools": [{"name": "w", "url": "https://x.test"}]},
            "unknown key 'url' in an HTTP tool",
        ),
        ({"goal": "x", "needs_approval": ["ghost"]}, "needs_approval names 'ghost'"),
    ],
)
async def test_bad_arguments_fault_the_task_clearly(
    tmp_path: Path, provider: OpenAIProvider, arguments: dict[str, Any], message: str
) -> None:
    catalog = Catalog(providers={"default": provider})
    runtime = DslRuntime(functions=catalog.functions())
    doc = document({"assist": {"call": "agent", "with": arguments}})
    async with bf.Engine(tmp_path / "x.db", workflows=[runtime.workflow]) as engine:
        handle = await runtime.start(engine, doc, {})
        with pytest.raises(bf.RunFailed) as caught:
            await handle.result()
    await runtime.aclose()
    problem = caught.value.error["state"]
    assert problem["instance"] == "/do/0/assist"
    assert message in problem["detail"]


async def test_an_agent_budget_is_a_fault_the_document_can_catch(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    catalog = Catalog(providers={"default": provider}, tools=[tool(lambda: 1, name="one")])
    runtime = DslRuntime(functions=catalog.functions(prefix="ai."))
    doc = document(
        {
            "guarded": {
                "try": [
                    {
                        "assist": {
                            "call": "ai.agent",
                            "with": {"goal": "loop", "tools": ["one"], "max_steps": 2},
                        }
                    }
                ],
                "catch": {"as": "e", "do": [{"why": {"set": {"why": "${ $e.detail }"}}}]},
            }
        }
    )
    server.script(*[ok(tool=("one", {}))] * 3)
    async with bf.Engine(tmp_path / "x.db", workflows=[runtime.workflow]) as engine:
        output = await runtime.run(engine, doc, {})
    await runtime.aclose()
    assert output["why"].startswith("AgentBudgetExceeded: the agent used its 2 steps")


async def test_a_function_that_waits_parks_the_agent_mid_loop(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    """A document function is workflow code: one that listens parks the run inside the agent
    loop, and the agent carries on from the journal when the event arrives."""
    catalog = Catalog(providers={"default": provider})
    runtime = DslRuntime(functions=catalog.functions())
    ask_human = {
        "metadata": {"description": "Ask a person; returns their answer."},
        "listen": {"to": {"one": {"with": {"type": "com.test.answer"}}}},
        "output": {"as": "${ .[0] }"},
    }
    doc = document(
        {"assist": {"call": "agent", "with": {"goal": "ask", "tools": ["askHuman"]}}},
        functions={"askHuman": ask_human},
    )
    server.script(ok(tool=("askHuman", {"question": "colour?"})), ok("they said blue"))
    async with bf.Engine(tmp_path / "x.db", workflows=[runtime.workflow]) as engine:
        handle = await runtime.start(engine, doc, {})
        await engine.settle()
        assert await handle.status() is bf.RunStatus.WAITING
        assert len(server.received) == 1
        event = {
            "specversion": "1.0",
            "id": "a1",
            "source": "/people",
            "type": "com.test.answer",
            "data": {"answer": "blue"},
        }
        assert await runtime.publish(engine, event) == [handle.run_id]
        output = await handle.result()
    await runtime.aclose()
    assert output["output"] == "they said blue"
    assert len(server.received) == 2  # the first turn was not asked again after the wake
    assert tool_messages(server.received[1].body) == [{"answer": "blue"}]
    offered = server.received[0].body["tools"][0]["function"]
    assert offered["parameters"] == {"type": "object"}  # no input schema: any object
