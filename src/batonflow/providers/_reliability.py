"""Reliability around models: retries that honour ``Retry-After``, a circuit breaker per
provider, and a fallback chain. All waiting and all measuring is on the injected clock.

Compose them per provider, then chain::

    chain = FallbackChain([
        ReliableProvider(claude, clock=clock),
        ReliableProvider(gpt, clock=clock),
        ReliableProvider(local, clock=clock),
    ])
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from opentelemetry.trace import TracerProvider

from batonflow.core import Clock
from batonflow.errors import ConfigError
from batonflow.providers._errors import (
    AllProvidersFailed,
    CircuitOpen,
    ProviderError,
    RateLimited,
)
from batonflow.providers._protocol import ChatRequest, ChatResponse, Provider
from batonflow.providers._tracing import traced_call

__all__ = ["CircuitBreaker", "FallbackChain", "ReliableProvider", "RetryPolicy"]

BreakerState = Literal["closed", "open", "half-open"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often one provider is tried before giving up (and letting a fallback answer).

    The n-th retry waits the server's ``Retry-After`` when it sent one, else
    ``min(initial_delay * backoff ** (n - 1), max_delay)`` with ``± jitter``. A ``Retry-After``
    longer than ``max_retry_after`` is not waited for: the error is raised at once.
    """

    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.1
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if min(self.initial_delay, self.max_delay, self.max_retry_after) < 0:
            raise ConfigError("RetryPolicy delays must not be negative")

    def delay(self, attempt: int, error: ProviderError, rng: random.Random) -> float | None:
        """Seconds to wait after failed ``attempt`` (1-based), or None: give up now."""
        if not error.retryable or isinstance(error, CircuitOpen):
            return None
        if attempt >= self.max_attempts:
            return None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        base = min(self.initial_delay * self.backoff ** (attempt - 1), self.max_delay)
        return max(0.0, base * (1 + rng.uniform(-self.jitter, self.jitter)))


class CircuitBreaker:
    """Stops calling a failing provider for a while.

    ``closed``: calls pass; ``failure_threshold`` outages in a row open it. ``open``: calls are
    refused until ``reset_after`` seconds have passed on the clock, then it is ``half-open``: one
    trial call passes; success closes it, failure opens it again. Only outages count (retryable
    errors); a bad request or a bad key shows the provider is up, and counts as a success.
    """

    def __init__(
        self, clock: Clock, *, failure_threshold: int = 5, reset_after: float = 30.0
    ) -> None:
        if failure_threshold < 1 or reset_after < 0:
            raise ConfigError("CircuitBreaker needs failure_threshold >= 1 and reset_after >= 0")
        self._clock = clock
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock.now() - self._opened_at >= self.reset_after:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open state, only one trial at a time)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial:
            self._trial = True
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial = False

    def abandon(self) -> None:
        """A call that went out ended without a verdict (cancelled): free the trial slot."""
        self._trial = False

    def failure(self) -> None:
        self._trial = False
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            self._opened_at = self._clock.now()


class ReliableProvider:
    """One provider with retries (honouring ``Retry-After``) behind its circuit breaker."""

    def __init__(
        self,
        inner: Provider,
        *,
        clock: Clock,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        rng: random.Random | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.inner = inner
        self._tracer_provider = tracer_provider  # None: the global one (a no-op without an SDK)
        self._clock = clock
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker(clock)
        self._rng = rng or random.Random()

    @property
    def name(self) -> str:
        return self.inner.name

    def __repr__(self) -> str:
        return f"ReliableProvider({self.inner!r}, breaker={self.breaker.state!r})"

    async def complete(self, request: ChatRequest) -> ChatResponse:
        attempt = 0
        while True:
            attempt += 1
            if not self.breaker.allow():
                raise CircuitOpen(self.name, "circuit breaker is open")
            try:
                response = await traced_call(
                    self.inner,
                    request,
                    lambda: self.inner.complete(request),
                    tracer_provider=self._tracer_provider,
                )
            except ProviderError as exc:
                if exc.retryable:
                    self.breaker.failure()
                else:  # it answered (with a 4xx): the provider itself is up
                    self.breaker.success()
                wait = self.retry.delay(attempt, exc, self._rng)
                if wait is None:
                    raise
                await self._clock.sleep(wait)
            except BaseException:
                self.breaker.abandon()
                raise
            else:
                self.breaker.success()
                return response


class FallbackChain:
    """Tries each provider in order until one answers.

    Falls through on outages, rate limits, timeouts, broken answers and open breakers
    (retryable errors); a bad request or a bad key is raised at once. The answer's ``provider``
    and ``model`` say who answered; :class:`AllProvidersFailed` carries every provider's error.
    A model pinned on the request is for the first provider; the fallbacks answer with their
    own configured models.
    """

    def __init__(self, providers: Sequence[Provider], *, name: str = "fallback") -> None:
        if not providers:
            raise ConfigError("FallbackChain needs at least one provider")
        self.providers = tuple(providers)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"FallbackChain({[p.name for p in self.providers]!r})"

    async def complete(self, request: ChatRequest) -> ChatResponse:
        errors: list[ProviderError] = []
        for index, provider in enumerate(self.providers):
            try:
                return await provider.complete(request if index == 0 else _unpinned(request))
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                errors.append(exc)
        raise AllProvidersFailed(errors)


def _unpinned(request: ChatRequest) -> ChatRequest:
    return dataclasses.replace(request, model=None) if request.model else request
