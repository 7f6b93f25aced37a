"""The catalog's errors: the model kept answering outside what was asked; a budget ran out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batonflow.errors import BatonflowError

__all__ = ["BudgetExceeded", "InvalidModelOutput"]


class InvalidModelOutput(BatonflowError):
    """Every attempt answered something the schema (or label set) does not allow.

    ``answer`` is the model's last answer, verbatim; ``reason`` why it was rejected;
    ``attempts`` how many answers were tried; ``provider`` and ``model`` who gave the last one;
    ``usage`` the tokens and cost all the attempts took (``{"input_tokens", "output_tokens",
    "cost"}``, kept in the journal so a run's budget counts them).
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
        usage: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.answer = answer
        self.reason = reason
        self.attempts = attempts
        self.provider = provider
        self.model = model
        self.usage: dict[str, Any] = dict(usage or {})

    def record_state(self) -> dict[str, Any]:
        """What the journal keeps, so a replayed failure still carries the answer."""
        state: dict[str, Any] = {
            "answer": self.answer,
            "reason": self.reason,
            "attempts": self.attempts,
            "provider": self.provider,
            "model": self.model,
        }
        if self.usage:
            state["usage"] = self.usage
        return state

    @classmethod
    def from_record(cls, message: str, state: dict[str, Any]) -> InvalidModelOutput:
        usage = state.get("usage")
        return cls(
            message,
            answer=str(state.get("answer", "")),
            reason=str(state.get("reason", "")),
            attempts=int(state.get("attempts", 0)),
            provider=str(state.get("provider", "")),
            model=str(state.get("model", "")),
            usage=usage if isinstance(usage, dict) else None,
        )


class BudgetExceeded(BatonflowError):
    """A model call would have started with a budget used up (not retryable).

    Raised by a run's :class:`~batonflow.catalog.RunBudget` (``limit`` is ``"tokens"`` or
    ``"cost"``, ``spent`` and ``allowed`` the amounts) and, as its subclass
    :class:`~batonflow.catalog.AgentBudgetExceeded`, by an agent's own step or token budget.
    Retrying cannot help: the spend is in the journal and stays spent.
    """

    retryable = False

    def __init__(
        self, message: str, *, limit: str = "", spent: float = 0, allowed: float = 0
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.spent = spent
        self.allowed = allowed

    def record_state(self) -> dict[str, Any]:
        return {"limit": self.limit, "spent": self.spent, "allowed": self.allowed}

    @classmethod
    def from_record(cls, message: str, state: dict[str, Any]) -> BudgetExceeded:
        return cls(
            message,
            limit=str(state.get("limit", "")),
            spent=state.get("spent", 0),
            allowed=state.get("allowed", 0),
        )
