"""CloudEvents in and out of DSL runs: ``emit``, ``listen`` and what publishers match.

A ``listen`` task is a durable subscription: each wait is a kernel event wait on the topic
``cloudevent`` whose recorded detail holds the filters still awaited. A publisher lists those
waits (parked runs included, after any restart), matches the event against each detail and
delivers a copy to every run that wants it. The run checks the event again when it wakes (a copy
may have been meant for an earlier wait of the same task) and waits again if it does not fit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import batonflow as bf
from batonflow import _limits, _serde
from batonflow.dsl import _expr
from batonflow.dsl._problems import ErrorType, Problem, WorkflowError

if TYPE_CHECKING:
    from batonflow.dsl._interpreter import Interpreter, TaskCall

_log = logging.getLogger("batonflow.dsl")
TOPIC = "cloudevent"
_REQUIRED = ("id", "source", "type")
_HTTP_REQUIRED = ("id", "source", "type", "specversion")


def parse_cloudevent(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The CloudEvent of an HTTP request: structured mode (``application/cloudevents+json``,
    the body is the event) or binary mode (``ce-*`` headers, the body is ``data``). ConfigError
    naming what is wrong."""
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/cloudevents+json":
        event = _json(body, "the structured CloudEvent")
        if not isinstance(event, dict):
            raise bf.ConfigError("a structured CloudEvent is a JSON object")
    else:
        event = {k[3:].lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
        if body:
            event["datacontenttype"] = kind or "application/octet-stream"
            is_json = kind in ("application/json", "") or kind.endswith("+json")
            event["data"] = _json(body, "the event's data") if is_json else body.decode("utf-8")
    missing = [n for n in _HTTP_REQUIRED if not isinstance(event.get(n), str) or not event[n]]
    if missing:
        mode = "body" if kind == "application/cloudevents+json" else "ce-* headers"
        raise bf.ConfigError(f"the CloudEvent ({mode}) lacks {', '.join(missing)}")
    if event["specversion"] != "1.0":
        raise bf.ConfigError(f"specversion {event['specversion']!r}: only 1.0 is spoken")
    return event


def _json(body: bytes, what: str) -> Any:
    try:  # within the input bounds: deep nesting would end in a RecursionError (a 500)
        return _limits.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise bf.ConfigError(f"{what} is not valid JSON: {exc}") from None


def check_event(event: dict[str, Any], where: str) -> None:
    missing = [
        name for name in _REQUIRED if not isinstance(event.get(name), str) or not event[name]
    ]
    if missing:
        raise WorkflowError(
            Problem.of(
                ErrorType.VALIDATION,
                f"a CloudEvent needs {', '.join(missing)} (non-empty strings)",
                instance=where,
            )
        )


def read(event: dict[str, Any], mode: str) -> Any:
    """What a listen task yields per event: its ``data``, its whole ``envelope``, or ``raw``
    data (JSON text for structured data, as it travelled)."""
    if mode == "envelope":
        return event
    data = event.get("data")
    if mode == "raw" and not isinstance(data, str):
        return json.dumps(data, separators=(",", ":"))
    return data


# -- matching ---------------------------------------------------------------------------------


async def matches(event: dict[str, Any], flt: dict[str, Any], evaluator: _expr.Evaluator) -> bool:
    """Does ``event`` pass ``flt`` (``with`` attributes, resolved ``correlate`` expectations)?

    In ``with``: a runtime expression is a predicate on the event's attribute (``.`` is the
    attribute's value, so ``data: ${ .bpm > 100 }`` tests the data); a string is a regular
    expression the whole attribute must match; any other value must be equal.
    """
    for name, wanted in (flt.get("with") or {}).items():
        if name not in event:
            return False
        if not await _attribute_matches(event[name], wanted, evaluator):
            return False
    for correlation in (flt.get("correlate") or {}).values():
        if "expect" not in correlation:
            continue
        if await correlate(event, correlation, evaluator) != correlation["expect"]:
            return False
    return True


async def _attribute_matches(value: Any, wanted: Any, evaluator: _expr.Evaluator) -> bool:
    if _expr.is_expression(wanted):
        try:
            return await evaluator.evaluate(wanted, value) is True
        except WorkflowError:
            return False
    if isinstance(wanted, str):
        if not isinstance(value, str):
            return False
        try:  # off the event loop and under the budget: a pattern may backtrack for ever
            return await evaluator.matches(wanted, value)
        except _expr.InvalidPattern:
            return value == wanted
        except WorkflowError as over:
            _log.warning("event filter %r skipped an event: %s", wanted, over.problem.detail)
            return False
    return bool(value == wanted)


async def correlate(
    event: dict[str, Any], correlation: dict[str, Any], evaluator: _expr.Evaluator
) -> Any:
    """The correlation value ``from`` extracts from the event (``.`` is the whole event)."""
    try:
        return await evaluator.evaluate(correlation["from"], event)
    except WorkflowError:
        return None


async def first_match(
    event: dict[str, Any], filters: list[dict[str, Any]], evaluator: _expr.Evaluator
) -> int | None:
    """Index of the first filter the event passes (an empty list accepts any event)."""
    if not filters:
        return 0
    for index, flt in enumerate(filters):
        if await matches(event, flt, evaluator):
            return index
    return None


# -- listening --------------------------------------------------------------------------------


@dataclass
class _Until:
    """Progress of an ``until`` strategy: which of its filters still need an event."""

    condition: str | None = None
    filters: list[dict[str, Any]] = field(default_factory=list)
    needs_all: bool = False

    @classmethod
    def of(cls, until: Any) -> _Until | None:
        if until is None:
            return None
        if isinstance(until, str):
            return cls(condition=until)
        if "one" in until:
            return cls(filters=[until["one"]])
        if "all" in until:
            return cls(filters=list(until["all"]), needs_all=True)
        return cls(filters=list(until.get("any") or [{}]))

    def accept(self, index: int) -> bool:
        """An event matched until-filter ``index``: is listening over?"""
        if not self.needs_all:
            return True
        self.filters.pop(index)
        return not self.filters


class Listener:
    """Consumes the events a ``listen`` task's strategy asks for, each wait durable."""

    def __init__(self, it: Interpreter, call: TaskCall, timeout: float | None) -> None:
        self.it, self.call, self.timeout = it, call, timeout
        self.deadline: float | None = None
        self.expectations: dict[str, Any] = {}

    async def consume(self, strategy: dict[str, Any]) -> list[dict[str, Any]]:
        if self.timeout is not None:
            self.deadline = await self.it.ctx.now() + self.timeout
        if "one" in strategy:
            event, _ = await self.next([strategy["one"]])
            return [event]
        if "all" in strategy:
            return await self._all(list(strategy["all"]))
        return await self._any(list(strategy.get("any") or []), _Until.of(strategy.get("until")))

    async def _all(self, remaining: list[dict[str, Any]]) -> list[dict[str, Any]]:
        events = []
        while remaining:
            event, index = await self.next(remaining)
            events.append(event)
            remaining.pop(index)
        return events

    async def _any(
        self, filters: list[dict[str, Any]], until: _Until | None
    ) -> list[dict[str, Any]]:
        main = filters or [{}]  # an empty 'any' accepts every event
        events: list[dict[str, Any]] = []
        while True:
            stops = until.filters if until else []
            event, index = await self.next(stops + main)  # an event that stops comes first
            if until is not None and index < len(stops):
                if until.accept(index):  # until's events are not part of the output
                    return events
                continue
            events.append(event)
            if until is None:
                return events
            if until.condition is not None:
                args = self.it.arguments(self.call.scope, task=self.call.descriptor)
                where = f"{self.call.pointer}/listen/to/until"
                if await self.it.condition(until.condition, events, args, where):
                    return events

    async def next(self, filters: list[dict[str, Any]]) -> tuple[dict[str, Any], int]:
        """Wait until an event passes one of ``filters``; return it and that filter's index."""
        resolved = [await self._resolve(f) for f in filters]
        while True:
            event = await self._wait(resolved)
            index = await first_match(event, resolved, self.it.runtime.evaluator)
            if index is not None:
                await self._learn(event, filters[index] if filters else {})
                return event, index

    async def _wait(self, filters: list[dict[str, Any]]) -> dict[str, Any]:
        ctx = self.it.ctx
        timeout = None
        if self.deadline is not None:
            timeout = max(self.deadline - ctx.engine.clock.now(), 0.0)
        try:
            event = await ctx.wait_for_event(
                TOPIC, key=self.call.pointer, timeout=timeout, detail={"filters": filters}
            )
        except bf.EventTimeout:
            raise WorkflowError(
                Problem.of(
                    ErrorType.TIMEOUT,
                    f"no matching event arrived within {self.timeout:g}s",
                    title="Listen timed out",
                    instance=self.call.pointer,
                )
            ) from None
        if not isinstance(event, dict):
            raise WorkflowError(
                Problem.of(ErrorType.VALIDATION, "a delivered event is not a CloudEvent object")
            )
        return event

    async def _resolve(self, flt: dict[str, Any]) -> dict[str, Any]:
        """The filter as publishers will test it: ``expect`` values evaluated now."""
        correlations = {}
        for name, correlation in (flt.get("correlate") or {}).items():
            resolved = {"from": correlation["from"]}
            if "expect" in correlation:
                expect = correlation["expect"]
                if isinstance(expect, str) and _expr.is_expression(expect):
                    args = self.it.arguments(
                        self.call.scope, task=self.call.descriptor, input=self.call.input
                    )
                    where = f"{self.call.pointer}/listen/to/correlate/{name}/expect"
                    expect = await self.it.evaluate(expect, self.call.input, args, where)
                resolved["expect"] = expect
            elif name in self.expectations:  # the first event fixed it
                resolved["expect"] = self.expectations[name]
            correlations[name] = resolved
        return {"with": flt.get("with") or {}, "correlate": correlations}

    async def _learn(self, event: dict[str, Any], flt: dict[str, Any]) -> None:
        for name, correlation in (flt.get("correlate") or {}).items():
            if "expect" not in correlation and name not in self.expectations:
                evaluator = self.it.runtime.evaluator
                self.expectations[name] = await correlate(event, correlation, evaluator)


async def publish(
    store: bf.Store,
    event: dict[str, Any],
    now: float,
    *,
    evaluator: _expr.Evaluator | None = None,
    actor: str | None = None,
) -> list[str]:
    """Deliver ``event`` to every run whose listen task awaits it; return their run ids.
    ``actor``: who sent it, for the audit trail. Documents whose ``schedule.on`` takes it get
    it queued for a run of their own (:mod:`batonflow.triggers._on_events`).

    Works on the store alone, so a process that holds no engine (the CLI beside a running
    worker) can publish; the worker notices the woken runs on its next poll.
    """
    payload = _serde.dumps(event, what="the event")  # within the value bounds
    evaluator = evaluator or _expr.Evaluator()
    delivered: list[str] = []
    seen: set[tuple[str, str | None]] = set()
    for wait in await store.list_waits(TOPIC):
        target = (wait.run_id, wait.key)
        if target in seen:
            continue
        detail = json.loads(wait.input_json or "{}")
        if await first_match(event, detail.get("filters") or [], evaluator) is None:
            continue
        seen.add(target)
        await store.deliver_event(
            TOPIC, payload, now, run_id=wait.run_id, key=wait.key, actor=actor
        )
        delivered.append(wait.run_id)
    from batonflow.triggers._on_events import offer  # the documents whose schedule.on takes it

    await offer(store, event, now, evaluator, actor)
    return delivered
