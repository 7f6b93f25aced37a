"""ScriptedProvider: the test kit's model, answering from a script (docs samples use it)."""

from __future__ import annotations

import pytest

from batonflow.catalog import classify, llm
from batonflow.errors import ConfigError
from batonflow.providers import ChatRequest, Message
from batonflow.testing import ScriptedProvider


async def test_answers_in_order_and_keeps_the_requests() -> None:
    model = ScriptedProvider(["one", {"n": 2}, lambda request: request.messages[-1].content])
    assert await llm(model, prompt="first") == "one"
    assert await llm(model, prompt="second", schema={"type": "object"}) == {"n": 2}
    assert await llm(model, prompt="echo me") == "echo me"
    assert [r.messages[-1].content for r in model.requests] == ["first", "second", "echo me"]


async def test_tool_calls_and_who_answered() -> None:
    model = ScriptedProvider(
        [{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}], name="m", model="x-1"
    )
    answer = await model.complete(ChatRequest((Message.user("add"),)))
    (call,) = answer.tool_calls
    assert (call.name, dict(call.arguments), answer.finish_reason) == (
        "add", {"a": 1, "b": 2}, "tool_calls",
    )  # fmt: skip
    assert (answer.provider, answer.model) == ("m", "x-1")


async def test_a_classification_goes_through_the_catalog_checks() -> None:
    model = ScriptedProvider(
        ['{"label": "urgent-refund", "confidence": 1, "rationale": "says so"}',
         '{"label": "billing", "confidence": 0.8, "rationale": "an invoice"}']
    )  # fmt: skip
    result = await classify(model, "invoice 7", ["billing", "spam"])
    assert result["label"] == "billing"  # the answer outside the labels was asked again
    assert len(model.requests) == 2


async def test_running_out_of_answers_is_a_clear_error() -> None:
    model = ScriptedProvider(["only one"], name="short")
    await model.complete(ChatRequest((Message.user("a"),)))
    with pytest.raises(ConfigError, match="'short' has no answer left for request 2"):
        await model.complete(ChatRequest((Message.user("b"),)))
