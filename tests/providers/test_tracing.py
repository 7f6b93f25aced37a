"""Every model call attempt is an OpenTelemetry GenAI client span (real SDKs, loopback servers)."""

from __future__ import annotations

import random

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from batonflow.providers import (
    ChatRequest,
    Message,
    OpenAIProvider,
    ProviderUnavailable,
    ReliableProvider,
    RetryPolicy,
)

from .conftest import SECRET, SleeplessClock
from .servers import FakeOpenAI, ok, status

PROMPT = "Tell me the launch codes, please"
REQUEST = ChatRequest((Message.user(PROMPT),), temperature=0.2, max_tokens=64)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def traced(
    server: FakeOpenAI,
    client: httpx.AsyncClient,
    clock: SleeplessClock,
    tracer_provider: TracerProvider,
    max_attempts: int = 3,
) -> ReliableProvider:
    gpt = OpenAIProvider(
        "gpt",
        client=client,
        model="gpt-test",
        api_key=SECRET,
        base_url=server.base_url + "/v1",
        timeout=1.0,
        clock=clock,
    )
    return ReliableProvider(
        gpt,
        clock=clock,
        retry=RetryPolicy(max_attempts=max_attempts),
        rng=random.Random(7),
        tracer_provider=tracer_provider,
    )


def spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(exporter.get_finished_spans())


async def test_success_span_has_genai_attributes_and_usage(
    openai_server: FakeOpenAI,
    client: httpx.AsyncClient,
    sleepless: SleeplessClock,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    openai_server.script(ok("Hi there"))
    response = await traced(openai_server, client, sleepless, tracer_provider).complete(REQUEST)

    (span,) = spans(exporter)
    assert span.name == "chat gpt-test"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "gpt"
    assert attrs["gen_ai.system"] == "gpt"
    assert attrs["gen_ai.request.model"] == "gpt-test"
    assert attrs["gen_ai.response.model"] == response.model
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert attrs["gen_ai.usage.input_tokens"] == response.usage.input_tokens
    assert attrs["gen_ai.usage.output_tokens"] == response.usage.output_tokens
    assert response.usage.input_tokens > 0
    assert attrs["gen_ai.response.finish_reasons"] == (response.finish_reason,)
    assert attrs["server.address"] == "127.0.0.1"
    assert "error.type" not in attrs


async def test_pinned_model_names_the_span_and_optional_attributes_are_left_out(
    openai_server: FakeOpenAI,
    client: httpx.AsyncClient,
    sleepless: SleeplessClock,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    request = ChatRequest((Message.user(PROMPT),), model="gpt-pinned")
    await traced(openai_server, client, sleepless, tracer_provider).complete(request)

    (span,) = spans(exporter)
    assert span.name == "chat gpt-pinned"
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.request.model"] == "gpt-pinned"
    assert "gen_ai.request.temperature" not in attrs
    assert "gen_ai.request.max_tokens" not in attrs


async def test_failure_span_has_error_status_and_type(
    openai_server: FakeOpenAI,
    client: httpx.AsyncClient,
    sleepless: SleeplessClock,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    openai_server.script(status(500))
    provider = traced(openai_server, client, sleepless, tracer_provider, max_attempts=1)
    with pytest.raises(ProviderUnavailable):
        await provider.complete(REQUEST)

    (span,) = spans(exporter)
    assert span.name == "chat gpt-test"
    assert span.status.status_code is StatusCode.ERROR
    attrs = dict(span.attributes or {})
    assert attrs["error.type"] == "ProviderUnavailable"
    assert "gen_ai.usage.input_tokens" not in attrs
    assert not span.events  # no exception event: its message could echo the request


async def test_each_retry_attempt_is_its_own_span(
    openai_server: FakeOpenAI,
    client: httpx.AsyncClient,
    sleepless: SleeplessClock,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    openai_server.script(status(503), status(429, retry_after="2"), ok())
    await traced(openai_server, client, sleepless, tracer_provider).complete(REQUEST)

    attempts = spans(exporter)
    assert len(attempts) == 3
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert [dict(s.attributes or {}).get("error.type") for s in attempts] == [
        "ProviderUnavailable",
        "RateLimited",
        None,
    ]
    assert len({s.context.span_id for s in attempts if s.context is not None}) == 3


async def test_no_secret_or_prompt_in_any_attribute(
    openai_server: FakeOpenAI,
    client: httpx.AsyncClient,
    sleepless: SleeplessClock,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    openai_server.script(status(500, message=f"bad key {SECRET}: {PROMPT}"), ok("Secret answer"))
    await traced(openai_server, client, sleepless, tracer_provider).complete(REQUEST)

    attempts = spans(exporter)
    assert len(attempts) == 2
    for span in attempts:
        texts = [span.name, span.status.description or ""]
        texts += [str(value) for value in (span.attributes or {}).values()]
        texts += [str(event.attributes) for event in span.events]
        for text in texts:
            assert SECRET not in text
            assert PROMPT not in text
            assert "Secret answer" not in text


async def test_without_an_sdk_the_default_tracer_is_a_no_op(
    openai_server: FakeOpenAI, client: httpx.AsyncClient, sleepless: SleeplessClock
) -> None:
    gpt = OpenAIProvider(
        "gpt",
        client=client,
        model="gpt-test",
        api_key=SECRET,
        base_url=openai_server.base_url + "/v1",
        clock=sleepless,
    )
    response = await ReliableProvider(gpt, clock=sleepless).complete(REQUEST)
    assert response.text
