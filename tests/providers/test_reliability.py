"""Retry-After, the circuit breaker and the fallback chain, over the real SDKs on loopback."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from batonflow.providers import (
    AllProvidersFailed,
    AnthropicProvider,
    BadRequest,
    CallRecord,
    ChatRequest,
    CircuitBreaker,
    CircuitOpen,
    FallbackChain,
    Message,
    OpenAIProvider,
    ProviderAuthError,
    ProviderUnavailable,
    RateLimited,
    ReliableProvider,
    RetryPolicy,
)
from batonflow.testing import FakeClock

from .conftest import SECRET, SleeplessClock
from .servers import FakeAnthropic, FakeOpenAI, hang, ok, status

REQUEST = ChatRequest((Message.user("Hi"),))


def claude(
    server: FakeAnthropic,
    client: httpx.AsyncClient,
    clock: FakeClock,
    records: list[CallRecord] | None = None,
) -> AnthropicProvider:
    return AnthropicProvider(
        "claude",
        client=client,
        model="claude-test",
        api_key=SECRET,
        base_url=server.base_url,
        timeout=1.0,
        clock=clock,
        on_call=None if records is None else records.append,
    )


def gpt(
    server: FakeOpenAI,
    client: httpx.AsyncClient,
    clock: FakeClock,
    records: list[CallRecord] | None = None,
) -> OpenAIProvider:
    return OpenAIProvider(
        "gpt",
        client=client,
        model="gpt-test",
        api_key=SECRET,
        base_url=server.base_url + "/v1",
        timeout=1.0,
        clock=clock,
        on_call=None if records is None else records.append,
    )


def reliable(
    provider: OpenAIProvider | AnthropicProvider, clock: FakeClock, **retry: float
) -> ReliableProvider:
    return ReliableProvider(
        provider,
        clock=clock,
        retry=RetryPolicy(**retry),  # type: ignore[arg-type]
        rng=random.Random(7),
    )


# --- retries ---------------------------------------------------------------------------------


async def test_retry_after_is_honoured_on_the_clock(
    openai_server: FakeOpenAI, client: httpx.AsyncClient, sleepless: SleeplessClock
) -> None:
    openai_server.script(status(429, retry_after="7"), ok("after the wait"))
    provider = reliable(gpt(openai_server, client, sleepless), sleepless)
    started = sleepless.now()

    answer = await provider.complete(REQUEST)

    assert answer.text == "after the wait"
    assert sleepless.waits == [7.0]
    assert sleepless.now() - started == 7.0
    assert len(openai_server.received) == 2


async def test_retry_after_as_http_date(
    anthropic_server: FakeAnthropic, client: httpx.AsyncClient, sleepless: SleeplessClock
) -> None:
    from email.utils import formatdate

    anthropic_server.script(status(429, retry_after=formatdate(sleepless.now() + 30, usegmt=True)))
    answer = await reliable(claude(anthropic_server, client, sleepless), sleepless).complete(
        REQUEST
    )
    assert answer.provider == "claude"
    assert sleepless.waits == [30.0]


async def test_retry_after_beyond_the_cap_is_not_waited_for(
    openai_server: FakeOpenAI, client: httpx.AsyncClient, sleepless: SleeplessClock
) -> None:
    openai_server.script(status(429, retry_after="3600"))
    provider = reliable(gpt(openai_server, client, sleepless), sleepless, max_retry_after=60)
    with pytest.raises(RateLimited) as caught:
        await provider.complete(REQUEST)
    assert caught.value.retry_after == 3600
    assert sleepless.waits == []


async def test_outage_backs_off_then_gives_up(
    anthropic_server: FakeAnthropic, client: httpx.AsyncClient, sleepless: SleeplessClock
) -> None:
    anthropic_server.script(status(500), status(502), status(503))
    provider = reliable(
        claude(anthropic_server, client, sleepless), sleepless, initial_delay=1, jitter=0
    )
    with pytest.raises(ProviderUnavailable):
        await provider.complete(REQUEST)
    assert sleepless.waits == [1.0, 2.0]
    assert len(anthropic_server.received) == 3


async def test_bad_request_is_not_retried(
    openai_server: FakeOpenAI, client: httpx.AsyncClient, sleepless: SleeplessClock
) -> None:
    openai_server.script(status(400))
    with pytest.raises(BadRequest):
        await reliable(gpt(openai_server, client, sleepless), sleepless).complete(REQUEST)
    assert sleepless.waits == []
    assert len(openai_server.received) == 1


# --- circuit breaker -------------------------------------------------------------------------


def test_breaker_opens_after_threshold_and_half_opens_after_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failure_threshold=3, reset_after=30)
    for _ in range(2):
        breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()

    clock._now += 29.9
    assert breaker.state == "open"
    clock._now += 0.1
    assert breaker.state == "half-open"
    assert breaker.allow()  # one trial call
    assert not breaker.allow()  # and only one

    breaker.failure()  # the trial failed: open again, for a full cool-down
    assert breaker.state == "open"
    clock._now += 30
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.allow()


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(FakeClock(), failure_threshold=2)
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.state == "closed"


async def test_open_breaker_refuses_without_calling(
    anthropic_server: FakeAnthropic, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    anthropic_server.script(status(500), status(500), status(500))
    provider = ReliableProvider(
        claude(anthropic_server, client, clock),
        clock=clock,
        retry=RetryPolicy(max_attempts=1),
        breaker=CircuitBreaker(clock, failure_threshold=2, reset_after=10),
    )
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await provider.complete(REQUEST)
    with pytest.raises(CircuitOpen):
        await provider.complete(REQUEST)
    assert len(anthropic_server.received) == 2

    await clock.advance(10)  # half-open: the trial call goes out and succeeds
    assert provider.breaker.state == "half-open"
    anthropic_server.state.actions.clear()
    answer = await provider.complete(REQUEST)
    assert answer.provider == "claude"
    assert provider.breaker.state == "closed"


async def test_client_errors_do_not_trip_the_breaker(
    openai_server: FakeOpenAI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    openai_server.script(status(401), status(401))
    provider = ReliableProvider(
        gpt(openai_server, client, clock),
        clock=clock,
        breaker=CircuitBreaker(clock, failure_threshold=1),
    )
    for _ in range(2):
        with pytest.raises(ProviderAuthError):
            await provider.complete(REQUEST)
    assert provider.breaker.state == "closed"


# --- fallback chain --------------------------------------------------------------------------


@pytest.fixture
def chain_parts(
    anthropic_server: FakeAnthropic,
    openai_server: FakeOpenAI,
    client: httpx.AsyncClient,
    sleepless: SleeplessClock,
    records: list[CallRecord],
) -> tuple[ReliableProvider, ReliableProvider]:
    first = ReliableProvider(
        claude(anthropic_server, client, sleepless, records),
        clock=sleepless,
        retry=RetryPolicy(max_attempts=1),
        breaker=CircuitBreaker(sleepless, failure_threshold=1, reset_after=60),
    )
    second = ReliableProvider(
        gpt(openai_server, client, sleepless, records), clock=sleepless, retry=RetryPolicy()
    )
    return first, second


@pytest.mark.parametrize(
    "failure",
    [status(500), status(529), status(429, retry_after="5"), hang()],
    ids=["500", "overloaded", "429", "timeout"],
)
async def test_fallback_falls_through_on_outage(
    failure: object,
    chain_parts: tuple[ReliableProvider, ReliableProvider],
    anthropic_server: FakeAnthropic,
    openai_server: FakeOpenAI,
    records: list[CallRecord],
) -> None:
    anthropic_server.script(failure)  # type: ignore[arg-type]
    answer = await FallbackChain(chain_parts).complete(REQUEST)

    assert (answer.provider, answer.model) == ("gpt", "gpt-test")
    assert [(r.provider, r.outcome == "ok") for r in records] == [
        ("claude", False),
        ("gpt", True),
    ]
    assert len(anthropic_server.received) == 1
    assert len(openai_server.received) == 1


@pytest.mark.parametrize(
    ("failure", "error"),
    [(status(400), BadRequest), (status(401), ProviderAuthError)],
    ids=["400", "401"],
)
async def test_fallback_stops_on_client_errors(
    failure: object,
    error: type[Exception],
    chain_parts: tuple[ReliableProvider, ReliableProvider],
    anthropic_server: FakeAnthropic,
    openai_server: FakeOpenAI,
) -> None:
    anthropic_server.script(failure)  # type: ignore[arg-type]
    with pytest.raises(error):
        await FallbackChain(chain_parts).complete(REQUEST)
    assert openai_server.received == []


async def test_fallback_skips_an_open_breaker(
    chain_parts: tuple[ReliableProvider, ReliableProvider],
    anthropic_server: FakeAnthropic,
    openai_server: FakeOpenAI,
    sleepless: SleeplessClock,
) -> None:
    chain = FallbackChain(chain_parts)
    anthropic_server.script(status(500))
    assert (await chain.complete(REQUEST)).provider == "gpt"  # opens claude's breaker
    assert chain_parts[0].breaker.state == "open"

    second = await chain.complete(REQUEST)
    assert second.provider == "gpt"
    assert len(anthropic_server.received) == 1  # the open breaker kept claude out of it

    sleepless._now += 60  # cool-down over: claude gets its trial call and answers
    assert (await chain.complete(REQUEST)).provider == "claude"


async def test_fallback_reports_every_failure(
    chain_parts: tuple[ReliableProvider, ReliableProvider],
    anthropic_server: FakeAnthropic,
    openai_server: FakeOpenAI,
) -> None:
    anthropic_server.script(status(503))
    openai_server.script(status(500), status(500), status(500))
    with pytest.raises(AllProvidersFailed) as caught:
        await FallbackChain(chain_parts).complete(REQUEST)
    assert [e.provider for e in caught.value.errors] == ["claude", "gpt"]
    assert caught.value.retryable


async def test_pinned_model_applies_to_the_first_provider_only(
    chain_parts: tuple[ReliableProvider, ReliableProvider],
    anthropic_server: FakeAnthropic,
    openai_server: FakeOpenAI,
) -> None:
    anthropic_server.script(status(500))
    pinned = ChatRequest(REQUEST.messages, model="claude-pinned")
    answer = await FallbackChain(chain_parts).complete(pinned)
    assert anthropic_server.received[0].body["model"] == "claude-pinned"
    assert openai_server.received[0].body["model"] == "gpt-test"
    assert answer.model == "gpt-test"


async def test_half_open_trial_answered_with_4xx_closes_the_breaker(
    openai_server: FakeOpenAI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    openai_server.script(status(500), status(400))
    provider = ReliableProvider(
        gpt(openai_server, client, clock),
        clock=clock,
        retry=RetryPolicy(max_attempts=1),
        breaker=CircuitBreaker(clock, failure_threshold=1, reset_after=5),
    )
    with pytest.raises(ProviderUnavailable):
        await provider.complete(REQUEST)
    await clock.advance(5)
    with pytest.raises(BadRequest):
        await provider.complete(REQUEST)  # the trial: the provider answered, so it is up
    assert provider.breaker.state == "closed"
    assert (await provider.complete(REQUEST)).provider == "gpt"


async def test_retry_waits_for_the_clock_not_the_wall(
    openai_server: FakeOpenAI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    openai_server.script(status(429, retry_after="7"), ok("after the wait"))
    task = asyncio.create_task(reliable(gpt(openai_server, client, clock), clock).complete(REQUEST))
    for _ in range(500):  # the 429 travels over a real socket; wait for the retry to park
        if clock.sleepers:
            break
        await asyncio.sleep(0.01)
    assert clock.next_deadline() == clock.now() + 7.0

    await clock.advance(6.9)
    assert not task.done()
    assert len(openai_server.received) == 1
    await clock.advance(0.1)
    answer = await asyncio.wait_for(task, 5)
    assert answer.text == "after the wait"
    assert len(openai_server.received) == 2
