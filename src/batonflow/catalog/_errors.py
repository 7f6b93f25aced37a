"""The catalog's one error: the model kept answering outside what was asked."""

from __future__ import annotations

from typing import Any

from batonflow.errors import BatonflowError

__all__ = ["InvalidModelOutput"]


class InvalidModelOutput(BatonflowError):
    """Every attempt answered something the schema (or label set) does not allow.

    ``answer`` is the model's last answer, verbatim; ``reason`` why it was rejected;
    ``attempts`` how many answers were tried; ``provider`` and ``model`` who gave the last one.
    Not retryable: re-running the same question is what the re-ask loop already did.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        answer: str,
        reason: str,
        attempts: int,
        provider: str = "",
        model: str = "",
    ) -> None:
        super().__init__(message)
        self.answer = answer
        self.reason = reason
        self.attempts = attempts
        self.provider = provider
        self.model = model

    def record_state(self) -> dict[str, Any]:
        """What the journal keeps, so a replayed failure still carries the answer."""
        return {
            "answer": self.answer,
            "reason": self.reason,
            "attempts": self.attempts,
            "provider": self.provider,
            "model": self.model,
        }

    @classmethod
    def from_record(cls, message: str, state: dict[str, Any]) -> InvalidModelOutput:
        return cls(
            message,
            answer=str(state.get("answer", "")),
            reason=str(state.get("reason", "")),
            attempts=int(state.get("attempts", 0)),
            provider=str(state.get("provider", "")),
            model=str(state.get("model", "")),
        )
