"""A run's token and cost budget, counted from its journal so that a restart cannot reset it.

Every catalog model step (``Catalog.llm``/``classify``/``extract``, each agent turn) records
what it used in its output, ``"usage": {"input_tokens", "output_tokens", "cost", "step"}``
(``step`` is the id of the step that made the calls; a failed step keeps it in its recorded
error). What a run has spent is the sum of those records, read from the store before each model
call: process memory plays no part, so a crash, a restart or another worker taking the run over
sees the same spend. A value copied into another step's output (a DSL ``set: ${ . }``) names
the step it came from, not the one holding it, and so is never counted twice.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from batonflow.catalog._errors import BudgetExceeded
from batonflow.core import current_step
from batonflow.errors import ConfigError
from batonflow.providers import ChatRequest, ChatResponse, Provider
from batonflow.store import StepRecord, StepStatus, Store

__all__ = ["Meter", "RunBudget", "Spend", "journal_guard", "spend_of"]


@dataclass(frozen=True, slots=True)
class Spend:
    """Tokens in and out, and their cost (currency units of the configured prices)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost + other.cost,
        )

    def usage(self) -> dict[str, Any]:
        """The ``usage`` object a step records: tagged with the step spending it, if any."""
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": round(self.cost, 10),
        }
        with contextlib.suppress(ConfigError):  # outside a step there is no run to charge
            usage["step"] = current_step().step_id
        return usage


@dataclass(frozen=True, slots=True)
class RunBudget:
    """How much one run may spend on models: ``max_tokens`` (input plus output, all calls)
    and/or ``max_cost`` (at the providers' configured prices). A model call that would start
    with either used up fails its step with :class:`BudgetExceeded` instead."""

    max_tokens: int | None = None
    max_cost: float | None = None

    def __post_init__(self) -> None:
        if self.max_tokens is None and self.max_cost is None:
            raise ConfigError("RunBudget needs max_tokens, max_cost or both")
        tokens = self.max_tokens
        if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)):
            raise ConfigError(f"RunBudget.max_tokens must be an integer, got {tokens!r}")
        if tokens is not None and tokens < 1:
            raise ConfigError(f"RunBudget.max_tokens must be at least 1, got {tokens}")
        cost = self.max_cost
        if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int | float)):
            raise ConfigError(f"RunBudget.max_cost must be a number, got {cost!r}")
        if cost is not None and cost <= 0:
            raise ConfigError(f"RunBudget.max_cost must be more than 0, got {cost}")

    def check(self, spent: Spend) -> None:
        """Raise :class:`BudgetExceeded` when ``spent`` leaves nothing for another call."""
        if self.max_tokens is not None and spent.tokens >= self.max_tokens:
            raise BudgetExceeded(
                f"the run has used {spent.tokens} model tokens of its budget of "
                f"{self.max_tokens} (RunBudget.max_tokens); no further model call is made",
                limit="tokens",
                spent=spent.tokens,
                allowed=self.max_tokens,
            )
        if self.max_cost is not None and spent.cost >= self.max_cost:
            raise BudgetExceeded(
                f"the run has spent {spent.cost:.6g} on models of its budget of "
                f"{self.max_cost:g} (RunBudget.max_cost); no further model call is made",
                limit="cost",
                spent=spent.cost,
                allowed=self.max_cost,
            )


def spend_of(records: Iterable[StepRecord]) -> Spend:
    """What the recorded steps spent: the ``usage`` objects each step's output (or, for a failed
    step, its recorded error) holds that name that step."""
    total = Spend()
    for record in records:
        if record.status is StepStatus.COMPLETED:
            text = record.output_json
        elif record.status is StepStatus.FAILED:
            text = record.error_json
        else:
            continue
        if not text or '"usage"' not in text:  # most steps: no parse needed
            continue
        for usage in _usages(json.loads(text)):
            if usage.get("step") == record.step_id:
                total += Spend(
                    int(usage["input_tokens"]),
                    int(usage["output_tokens"]),
                    float(usage.get("cost") or 0.0),
                )
    return total


def _usages(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "usage" and _is_usage(item):
                yield item
            else:
                yield from _usages(item)
    elif isinstance(value, list):
        for item in value:
            yield from _usages(item)


def _is_usage(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("input_tokens"), int)
        and isinstance(value.get("output_tokens"), int)
        and isinstance(value.get("step"), str)
    )


#: Called before each model call with what the call in progress has spent so far.
Guard = Callable[[Spend], Awaitable[None]]


def journal_guard(budget: RunBudget, store: Store) -> Guard:
    """A guard that checks ``budget`` against the current run's journal (read from ``store``)
    plus what the step in progress has already spent. Outside a step there is no run: no check.
    """

    async def guard(in_step: Spend) -> None:
        try:
            run_id = current_step().run_id
        except ConfigError:
            return
        budget.check(spend_of(await store.load_steps(run_id)) + in_step)

    return guard


class Meter:
    """A provider that adds up what its answers used and, with a ``guard``, asks it before
    every call (every re-ask of a structured answer is a call)."""

    def __init__(self, inner: Provider, guard: Guard | None = None) -> None:
        self.inner = inner
        self.spent = Spend()
        self._guard = guard

    @property
    def name(self) -> str:
        return self.inner.name

    def __repr__(self) -> str:
        return f"Meter({self.inner!r})"

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if self._guard is not None:
            await self._guard(self.spent)
        response = await self.inner.complete(request)
        usage = response.usage
        self.spent += Spend(usage.input_tokens, usage.output_tokens, response.cost)
        return response
