"""One record per model call attempt: who, which model, tokens, cost, latency, outcome."""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from batonflow.core import Clock
from batonflow.providers._errors import ProviderError
from batonflow.providers._protocol import ChatResponse, Usage

__all__ = ["CallHook", "CallRecord", "Prices", "parse_retry_after", "record_attempt"]


@dataclass(frozen=True, slots=True)
class Prices:
    """Price in currency units per one million tokens, in and out."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.input_per_million
            + usage.output_tokens * self.output_per_million
        ) / 1_000_000


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One attempt at a model call. ``outcome`` is ``"ok"`` or the error class name."""

    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float
    latency: float
    outcome: str
    started_at: float
    error: str | None = None


#: Receives every :class:`CallRecord` (the audit trail plugs in here).
CallHook = Callable[[CallRecord], None]


async def record_attempt(
    *,
    provider: str,
    model: str,
    clock: Clock,
    prices: Prices,
    hook: CallHook | None,
    call: Callable[[], Awaitable[ChatResponse]],
) -> ChatResponse:
    """Run one attempt, timing it on ``clock`` and handing its record to ``hook``."""
    started = clock.now()
    try:
        response = await call()
    except ProviderError as exc:
        if hook is not None:
            hook(
                CallRecord(
                    provider=provider,
                    model=model,
                    input_tokens=0,
                    output_tokens=0,
                    cost=0.0,
                    latency=clock.now() - started,
                    outcome=type(exc).__name__,
                    started_at=started,
                    error=str(exc),
                )
            )
        raise
    if hook is not None:
        usage = response.usage
        hook(
            CallRecord(
                provider=provider,
                model=response.model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost=prices.cost(usage),
                latency=response.latency,
                outcome="ok",
                started_at=started,
            )
        )
    return response


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
