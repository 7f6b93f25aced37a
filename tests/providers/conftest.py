from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from batonflow._net import make_client
from batonflow.providers import CallRecord
from batonflow.testing import FakeClock

from .servers import FakeAnthropic, FakeOpenAI

SECRET = "sk-test-3f9a1c-very-secret"


class SleeplessClock(FakeClock):
    """A fake clock whose sleeps move time at once, recording each wait."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self._now += max(0.0, seconds)


@pytest.fixture
def sleepless() -> SleeplessClock:
    return SleeplessClock()


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


class Counting(httpx.AsyncBaseTransport):
    """A transport layer that counts what passes (stands in for the egress policy)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.urls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def egress() -> AsyncIterator[tuple[httpx.AsyncClient, list[Counting]]]:
    layers: list[Counting] = []

    def layer(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        counting = Counting(inner)
        layers.append(counting)
        return counting

    async with make_client(layers=[layer], timeout=5.0) as client:
        yield client, layers


@pytest.fixture
def client(egress: tuple[httpx.AsyncClient, list[Counting]]) -> httpx.AsyncClient:
    return egress[0]


@pytest.fixture
def records() -> list[CallRecord]:
    return []
