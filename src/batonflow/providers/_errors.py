"""Provider errors: every SDK error is translated into one of these at the adapter boundary.

    BatonflowError
    └── ProviderError              a model call failed; ``provider`` names who failed
        ├── RateLimited            429; ``retry_after`` seconds when the server said (retryable)
        ├── ProviderUnavailable    5xx, overloaded (retryable)
        ├── ProviderTimeout        no answer in time (retryable)
        ├── ConnectionDropped      the connection failed or broke mid-answer (retryable)
        ├── BadResponse            an answer that is not the protocol (malformed JSON) (retryable)
        ├── CircuitOpen            the provider's circuit breaker is open (retryable)
        ├── AllProvidersFailed     every provider of a fallback chain failed (retryable)
        ├── ProviderAuthError      401/403: the key is wrong (not retryable)
        └── BadRequest             4xx: the request is wrong (not retryable)

``retryable`` errors are also the ones a fallback chain falls through on.
"""

from __future__ import annotations

from collections.abc import Sequence

from batonflow.errors import BatonflowError

__all__ = [
    "AllProvidersFailed",
    "BadRequest",
    "BadResponse",
    "CircuitOpen",
    "ConnectionDropped",
    "ProviderAuthError",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimited",
]


class ProviderError(BatonflowError):
    """A model call failed."""

    def __init__(self, provider: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status = status


class RateLimited(ProviderError):
    retryable = True

    def __init__(
        self, provider: str, message: str, *, status: int = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(provider, message, status=status)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    retryable = True


class ProviderTimeout(ProviderError):
    retryable = True


class ConnectionDropped(ProviderError):
    retryable = True


class BadResponse(ProviderError):
    retryable = True


class CircuitOpen(ProviderError):
    retryable = True


class ProviderAuthError(ProviderError):
    retryable = False


class BadRequest(ProviderError):
    retryable = False


class AllProvidersFailed(ProviderError):
    """Each provider of the chain failed; ``errors`` holds each one's error, in order."""

    retryable = True

    def __init__(self, errors: Sequence[ProviderError]) -> None:
        summary = "; ".join(str(e) for e in errors) or "no providers"
        super().__init__("fallback", f"every provider failed: {summary}")
        self.errors = tuple(errors)


def from_status(
    provider: str, status: int, message: str, retry_after: float | None = None
) -> ProviderError:
    """The error for an HTTP error status (one table for every adapter)."""
    text = f"HTTP {status}: {message}"
    if status == 429:
        return RateLimited(provider, text, status=status, retry_after=retry_after)
    if status in (401, 403):
        return ProviderAuthError(provider, text, status=status)
    if status in (408, 504):
        return ProviderTimeout(provider, text, status=status)
    if status >= 500:
        return ProviderUnavailable(provider, text, status=status)
    return BadRequest(provider, text, status=status)
