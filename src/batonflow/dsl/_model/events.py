"""Events: CloudEvent properties, the filters that select consumed events (with correlation),
the strategies that say which events to consume (all, any ... until, one), and the iterator
that runs tasks for each consumed event or message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import Field, Tag, model_validator

from batonflow.dsl._model.base import (
    OBJECT,
    STRING,
    TAG,
    Model,
    OpenModel,
    TaskList,
    UriOrExpression,
    by_json_kind,
    by_key,
    invalid,
)
from batonflow.dsl._model.common import Export, Output

__all__ = [
    "AllEvents",
    "AnyEvents",
    "Correlation",
    "EmittedEventProperties",
    "EventConsumptionStrategy",
    "EventFilter",
    "EventProperties",
    "OneEvent",
    "SubscriptionIterator",
    "UntilEvents",
]


class EventProperties(OpenModel):
    """CloudEvent context attributes and data; other keys are extension attributes."""

    id: str | None = None
    source: UriOrExpression | None = None
    type: str | None = None
    time: str | None = None
    subject: str | None = None
    datacontenttype: str | None = None
    dataschema: UriOrExpression | None = None
    data: Any = None


class EmittedEventProperties(EventProperties):
    """The event an ``emit`` task publishes: ``source`` and ``type`` are required."""

    source: UriOrExpression
    type: str


class Correlation(OpenModel):
    from_: str = Field(alias="from")
    expect: str | None = None


class EventFilter(Model):
    with_: EventProperties = Field(alias="with")
    correlate: dict[str, Correlation] | None = None

    @model_validator(mode="before")
    @classmethod
    def _with_not_empty(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("with") == {}:
            raise invalid("empty", "an event filter's 'with' must name at least one property",
                          data)  # fmt: skip
        return data


class AllEvents(Model):
    """Consume every one of the filtered events."""

    strategy: ClassVar[str] = "all"
    all: list[EventFilter]


class OneEvent(Model):
    """Consume one event."""

    strategy: ClassVar[str] = "one"
    one: EventFilter


class _NestedAnyEvents(Model):
    strategy: ClassVar[str] = "any"
    unexpected_hints: ClassVar[Mapping[str, str]] = {
        "until": "the events that end an 'until' cannot have an 'until' of their own",
    }
    any: list[EventFilter]


_until_check, _until_choice = by_key(("all", "any", "one"), "an event consumption strategy")

#: the events whose arrival ends an ``any`` listener (a strategy without ``until``)
UntilEvents = Annotated[
    Annotated[
        Annotated[AllEvents, Tag(TAG + "all")]
        | Annotated[_NestedAnyEvents, Tag(TAG + "any")]
        | Annotated[OneEvent, Tag(TAG + "one")],
        _until_choice,
    ],
    _until_check,
]

Until = Annotated[
    Annotated[str, Tag(STRING)] | Annotated[UntilEvents, Tag(OBJECT)],
    by_json_kind("a runtime expression (a string) or the events to stop at (an object)"),
]


class AnyEvents(Model):
    """Consume any of the filtered events (all of them if the list is empty), until ``until``:
    a condition evaluated after each event, or events whose arrival ends the listener."""

    strategy: ClassVar[str] = "any"
    any: list[EventFilter]
    until: Until | None = None


_strategy_check, _strategy_choice = by_key(("all", "any", "one"), "an event consumption strategy")

EventConsumptionStrategy = Annotated[
    Annotated[
        Annotated[AllEvents, Tag(TAG + "all")]
        | Annotated[AnyEvents, Tag(TAG + "any")]
        | Annotated[OneEvent, Tag(TAG + "one")],
        _strategy_choice,
    ],
    _strategy_check,
]


class SubscriptionIterator(Model):
    """Tasks to run for each consumed event or message (``item`` at index ``at``)."""

    item: str = "item"
    at: str = "index"
    do: TaskList | None = None
    output: Output | None = None
    export: Export | None = None
