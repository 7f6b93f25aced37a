from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from batonflow._net import make_client
from batonflow.providers import OpenAIProvider
from batonflow.testing import FakeClock
from providers.servers import FakeOpenAI


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
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
