"""When and how often a failed step is tried again."""

from __future__ import annotations

import random
from dataclasses import dataclass

from batonflow.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry policy of a step: exponential backoff with jitter, capped.

    The n-th retry waits ``min(initial_delay * backoff ** (n - 1), max_delay)`` seconds, spread by
    ``± jitter`` (a fraction) so that runs failing together do not retry in lock-step. A
    ``BatonflowError`` whose ``retryable`` is False, or an exception listed in ``give_up_on``,
    is never retried; when ``retry_on`` is given, only those exceptions are.
    The wait is durable: the next attempt's time is recorded, so a crash does not reset the count.
    """

    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] | None = None
    give_up_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"Retry.max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ConfigError("Retry delays must not be negative")
        if self.backoff < 1:
            raise ConfigError(f"Retry.backoff must be at least 1, got {self.backoff}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"Retry.jitter is a fraction between 0 and 1, got {self.jitter}")

    @classmethod
    def never(cls) -> Retry:
        """One attempt only."""
        return cls(max_attempts=1)

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        if attempt >= self.max_attempts or isinstance(exc, self.give_up_on):
            return False
        if getattr(exc, "retryable", True) is False:
            return False
        return self.retry_on is None or isinstance(exc, self.retry_on)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.initial_delay * self.backoff ** (attempt - 1), self.max_delay)
        if self.jitter:
            base *= 1 + rng.uniform(-self.jitter, self.jitter)
        return max(0.0, base)
