"""Fake-provider fixtures shared by the catalog and agent tests: import them into a conftest."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from batonflow._net import make_client
from batonflow.providers import AnthropicProvider, OpenAIProvider
from batonflow.testing import FakeClock
from providers.servers import FakeAnthropic, FakeOpenAI


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(timeout=5.0) as http:
        yield http


@pytest.fixture
def provider(server: FakeOpenAI, client: httpx.AsyncClient) -> OpenAIProvider:
    return OpenAIProvider(
        "gpt",
        client=client,
        model="gpt-test",
        api_key="sk-test",
        base_url=server.base_url + "/v1",
        timeout=5.0,
        clock=FakeClock(),
    )


@pytest.fixture
def claude(anthropic_server: FakeAnthropic, client: httpx.AsyncClient) -> AnthropicProvider:
    return AnthropicProvider(
        "claude",
        client=client,
        model="claude-test",
        api_key="sk-test",
        base_url=anthropic_server.base_url,
        timeout=5.0,
        clock=FakeClock(),
    )
