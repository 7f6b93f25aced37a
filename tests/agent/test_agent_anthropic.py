"""The agent over Anthropic's Messages API, through the real ``anthropic`` SDK: tool_use and
tool_result turns, two tool calls in one turn, and a replay that asks nothing again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.catalog import agent, tool
from batonflow.providers import AnthropicProvider, BadRequest, ChatRequest, Message, ToolCall
from providers.servers import FakeAnthropic, ok

NUMBERS = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}
TEXT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def tools(log: list[str]) -> list[Any]:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        log.append(f"add {a} {b}")
        return a + b

    async def shout(text: str) -> str:
        log.append(f"shout {text}")
        return text.upper()

    return [tool(add, parameters=NUMBERS), tool(shout, description="Shout.", parameters=TEXT)]


async def test_two_tool_uses_in_one_turn(
    tmp_path: Path, anthropic_server: FakeAnthropic, claude: AnthropicProvider
) -> None:
    log: list[str] = []
    anthropic_server.script(
        ok("Let me do both.", tools=(("add", {"a": 2, "b": 3}), ("shout", {"text": "hi"}))),
        ok("", tool=("add", {"a": 5, "b": 1})),
        ok("6 and HI"),
    )

    async def flow(ctx: bf.Context) -> Any:
        result = await agent(ctx, claude, "sum and shout", tools(log), system="Be exact.")
        await ctx.wait_for_event("go")  # parks: the wake replays the whole agent
        return result.as_dict()

    workflow = bf.Workflow(flow, name="claude_agent")
    async with bf.Engine(tmp_path / "x.db", workflows=[workflow]) as engine:
        handle = await engine.start(workflow)
        await engine.settle()
        assert await handle.status() is bf.RunStatus.WAITING
        await engine.send_event("go", None, run_id=handle.run_id)
        result = await handle.result()
        steps = await engine.store.load_steps(handle.run_id)

    assert result["output"] == "6 and HI"
    assert (result["turns"], result["tool_calls"]) == (3, 3)
    assert result["tokens"] == {"input": 60, "output": 24}
    assert log == ["add 2 3", "shout hi", "add 5 1"]  # once each, across the replay
    assert len(anthropic_server.received) == 3  # no turn asked again on replay
    assert [s.name for s in steps][:4] == [
        "agent.model", "agent.tool:add", "agent.tool:shout", "agent.model",
    ]  # fmt: skip

    first, second, third = (r.body for r in anthropic_server.received)
    assert first["system"] == "Be exact."
    assert [t["name"] for t in first["tools"]] == ["add", "shout"]
    assert first["tools"][0] == {
        "name": "add", "description": "Add two integers.", "input_schema": NUMBERS,
    }  # fmt: skip
    # the assistant turn goes back as it came: its text and both tool_use blocks
    assistant, results = second["messages"][1], second["messages"][2]
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me do both."},
            {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 2, "b": 3}},
            {"type": "tool_use", "id": "toolu_2", "name": "shout", "input": {"text": "hi"}},
        ],
    }
    # both results in ONE user message, in order, paired by id
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "5"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "HI"},
        ],
    }
    assert third["messages"][3]["content"] == [
        {"type": "tool_use", "id": "toolu_3", "name": "add", "input": {"a": 5, "b": 1}}
    ]
    assert third["messages"][4]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_3", "content": "6"}
    ]


async def test_a_failing_tool_is_an_error_result_the_model_sees(
    tmp_path: Path, anthropic_server: FakeAnthropic, claude: AnthropicProvider
) -> None:
    def broken(text: str) -> str:
        raise RuntimeError("the printer is on fire")

    anthropic_server.script(ok("", tools=(("broken", {"text": "x"}), ("missing", {}))), ok("sorry"))

    async def flow(ctx: bf.Context) -> Any:
        result = await agent(ctx, claude, "print", [tool(broken, parameters=TEXT)])
        return result.output

    workflow = bf.Workflow(flow, name="claude_errors")
    async with bf.Engine(tmp_path / "x.db", workflows=[workflow]) as engine:
        assert await (await engine.start(workflow)).result() == "sorry"
    blocks = anthropic_server.received[1].body["messages"][2]["content"]
    assert [b["tool_use_id"] for b in blocks] == ["toolu_1", "toolu_2"]
    errors = [json.loads(b["content"])["error"] for b in blocks]
    assert "the printer is on fire" in errors[0]
    assert "no tool named 'missing'" in errors[1]


async def test_the_fake_rejects_a_broken_tool_protocol(
    anthropic_server: FakeAnthropic, claude: AnthropicProvider
) -> None:
    """The server checks what the real API checks, so the tests above can fail."""
    calls = (ToolCall("toolu_7", "add", {"a": 1, "b": 2}), ToolCall("toolu_8", "add", {}))
    unanswered = (
        Message.user("sum"),
        Message.assistant("", calls),
        Message.tool("toolu_7", "3"),  # toolu_8 has no result
    )
    with pytest.raises(BadRequest, match="without `tool_result` blocks immediately after"):
        await claude.complete(ChatRequest(unanswered))
    stranger = (*unanswered, Message.tool("toolu_8", "x"), Message.tool("toolu_9", "?"))
    with pytest.raises(BadRequest, match="unexpected `tool_use_id`"):
        await claude.complete(ChatRequest(stranger))
