"""Each adapter over its real SDK, against a loopback server speaking the wire protocol."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from batonflow.providers import (
    AnthropicProvider,
    BadRequest,
    BadResponse,
    CallRecord,
    ChatRequest,
    ConnectionDropped,
    Message,
    OpenAIProvider,
    Prices,
    Provider,
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    Tool,
    ToolCall,
)
from batonflow.testing import FakeClock

from .conftest import SECRET, Counting
from .servers import FakeAnthropic, FakeModelServer, FakeOpenAI, drop, hang, malformed, ok, status

WEATHER = Tool(
    "weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def make(
    kind: str,
    server: FakeModelServer,
    client: httpx.AsyncClient,
    *,
    records: list[CallRecord] | None = None,
    clock: FakeClock | None = None,
    timeout: float = 5.0,
) -> Provider:
    common: dict[str, Any] = {
        "client": client,
        "api_key": SECRET,
        "timeout": timeout,
        "prices": Prices(2.0, 10.0),
        "on_call": None if records is None else records.append,
        "clock": clock or FakeClock(),
    }
    if kind == "openai":
        return OpenAIProvider("gpt", model="gpt-test", base_url=server.base_url + "/v1", **common)
    return AnthropicProvider("claude", model="claude-test", base_url=server.base_url, **common)


@pytest.fixture(params=["openai", "anthropic"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(
    kind: str, openai_server: FakeOpenAI, anthropic_server: FakeAnthropic
) -> FakeModelServer:
    return openai_server if kind == "openai" else anthropic_server


def ask(text: str = "Hi", **options: Any) -> ChatRequest:
    return ChatRequest((Message.system("Be brief."), Message.user(text)), **options)


async def test_text_round_trip(
    kind: str, server: FakeModelServer, client: httpx.AsyncClient
) -> None:
    provider = make(kind, server, client)
    answer = await provider.complete(ask(temperature=0.2, max_tokens=50))

    assert answer.text == "Hello!"
    assert answer.tool_calls == ()
    assert answer.provider == provider.name
    assert answer.model == ("gpt-test" if kind == "openai" else "claude-test")
    assert answer.finish_reason == ("stop" if kind == "openai" else "end_turn")
    assert answer.usage.input_tokens > 0
    assert answer.usage.output_tokens > 0
    [received] = server.received
    assert received.body["temperature"] == 0.2
    assert received.body["max_tokens"] == 50
    assert SECRET in received.headers.get("authorization", "") + received.headers.get(
        "x-api-key", ""
    )
    if kind == "openai":
        assert received.path == "/v1/chat/completions"
        assert received.body["messages"][0] == {"role": "system", "content": "Be brief."}
    else:
        assert received.path == "/v1/messages"
        assert received.body["system"] == "Be brief."
        assert received.body["messages"] == [{"role": "user", "content": "Hi"}]


async def test_pinned_model_is_sent_and_reported(
    kind: str, server: FakeModelServer, client: httpx.AsyncClient
) -> None:
    answer = await make(kind, server, client).complete(ask(model="pinned-1"))
    assert server.received[0].body["model"] == "pinned-1"
    assert answer.model == "pinned-1"


async def test_tool_calls_round_trip(
    kind: str, server: FakeModelServer, client: httpx.AsyncClient
) -> None:
    provider = make(kind, server, client)
    server.script(ok(tool=("weather", {"city": "Oslo"})), ok("Sunny in Oslo."))

    first = await provider.complete(ask("Weather in Oslo?", tools=(WEATHER,)))
    [call] = first.tool_calls
    assert (call.name, dict(call.arguments)) == ("weather", {"city": "Oslo"})
    assert first.finish_reason in ("tool_calls", "tool_use")

    conversation = (
        Message.user("Weather in Oslo?"),
        Message.assistant("", (ToolCall(call.id, call.name, call.arguments),)),
        Message.tool(call.id, "sunny"),
    )
    second = await provider.complete(ChatRequest(conversation, tools=(WEATHER,)))
    assert second.text == "Sunny in Oslo."

    sent_tools = server.received[0].body["tools"]
    sent = server.received[1].body["messages"]
    if kind == "openai":
        assert sent_tools[0]["function"]["name"] == "weather"
        assert sent_tools[0]["function"]["parameters"] == dict(WEATHER.parameters)
        assert sent[1]["tool_calls"][0]["id"] == call.id
        assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
        assert sent[2] == {"role": "tool", "content": "sunny", "tool_call_id": call.id}
    else:
        assert sent_tools[0]["input_schema"] == dict(WEATHER.parameters)
        assert sent[1]["content"] == [
            {"type": "tool_use", "id": call.id, "name": "weather", "input": {"city": "Oslo"}}
        ]
        assert sent[2]["content"] == [
            {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}
        ]


async def test_structured_output(
    kind: str, server: FakeModelServer, client: httpx.AsyncClient
) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    if kind == "openai":
        server.script(ok('{"label": "spam"}'))
    else:
        server.script(ok("", tool=("respond", {"label": "spam"})))
    answer = await make(kind, server, client).complete(ask(response_schema=schema))
    assert json.loads(answer.text) == {"label": "spam"}
    body = server.received[0].body
    if kind == "openai":
        assert body["response_format"]["json_schema"]["schema"] == schema
    else:
        assert body["tool_choice"] == {"type": "tool", "name": "respond"}
        assert answer.tool_calls == ()


@pytest.mark.parametrize(
    ("action", "error", "retryable"),
    [
        (status(429, retry_after="7"), RateLimited, True),
        (status(500), ProviderUnavailable, True),
        (status(503), ProviderUnavailable, True),
        (malformed(), BadResponse, True),
        (hang(), ProviderTimeout, True),
        (drop(), ConnectionDropped, True),
        (status(401), ProviderAuthError, False),
        (status(400, message="bad tool schema"), BadRequest, False),
    ],
    ids=["429", "500", "503", "malformed", "timeout", "dropped", "401", "400"],
)
async def test_failures_are_translated(
    kind: str,
    server: FakeModelServer,
    client: httpx.AsyncClient,
    action: Any,
    error: type[ProviderError],
    retryable: bool,
) -> None:
    server.script(action)
    provider = make(kind, server, client, timeout=1.0)
    with pytest.raises(error) as caught:
        await provider.complete(ask())
    assert type(caught.value) is error
    assert caught.value.retryable is retryable
    assert caught.value.provider == provider.name
    assert SECRET not in str(caught.value)
    if error is RateLimited:
        assert caught.value.retry_after == 7.0  # type: ignore[attr-defined]
        assert caught.value.status == 429
    if error is BadRequest:
        assert "bad tool schema" in str(caught.value)


async def test_records_every_attempt_with_cost(
    kind: str, server: FakeModelServer, client: httpx.AsyncClient, records: list[CallRecord]
) -> None:
    provider = make(kind, server, client, records=records)
    server.script(status(500), ok())
    with pytest.raises(ProviderUnavailable):
        await provider.complete(ask())
    answer = await provider.complete(ask())

    failed, good = records
    assert (failed.provider, failed.outcome, failed.cost) == (
        provider.name,
        "ProviderUnavailable",
        0.0,
    )
    assert failed.model == good.model == answer.model
    assert good.outcome == "ok"
    assert (good.input_tokens, good.output_tokens) == (
        answer.usage.input_tokens,
        answer.usage.output_tokens,
    )
    expected = (good.input_tokens * 2.0 + good.output_tokens * 10.0) / 1_000_000
    assert good.cost == pytest.approx(expected)
    assert good.latency >= 0


async def test_traffic_goes_through_the_egress_client(
    kind: str,
    server: FakeModelServer,
    egress: tuple[httpx.AsyncClient, list[Counting]],
) -> None:
    client, [layer] = egress
    await make(kind, server, client).complete(ask())
    assert len(layer.urls) == 1
    assert layer.urls[0].startswith(server.base_url)
