"""Redaction before a request leaves the process for a model provider (architecture rule 7).

:class:`RedactingProvider` wraps any :class:`Provider`. Before each call it asks
``policy_for()`` for the policy in force (typically ``Redactor.model_policy``, which looks at the
step executing now) and redacts what the request carries of the user's data: the text of every
message and the arguments of every tool call. System prompts are redacted too: they are often
built from the same data. What was taken out is recorded (counts, never values) as a
``model.redacted`` audit entry on the current step.

Field paths apply to tool-call arguments (each an object); message text is free text, so only
the detectors apply to it, and ``keep`` is not applied here: giving a step only the fields it
needs is done on the step's input, before a prompt is built from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from batonflow.core import audit
from batonflow.governance._redaction import RedactionPolicy
from batonflow.providers._protocol import ChatRequest, ChatResponse, Message, Provider, ToolCall

__all__ = ["RedactingProvider"]


class RedactingProvider:
    """A :class:`Provider` that redacts each request before ``inner`` sees it."""

    def __init__(self, inner: Provider, policy_for: Callable[[], RedactionPolicy | None]) -> None:
        self._inner = inner
        self._policy_for = policy_for
        self._keepless: tuple[RedactionPolicy, RedactionPolicy] | None = None

    @property
    def name(self) -> str:
        return self._inner.name

    async def complete(self, request: ChatRequest) -> ChatResponse:
        policy = self._policy_for()
        if policy is not None and policy.keep is not None:
            policy = self._without_keep(policy)
        if policy is not None and not policy.is_empty:
            request = _redact(request, policy, self._inner.name)
        return await self._inner.complete(request)

    def _without_keep(self, policy: RedactionPolicy) -> RedactionPolicy:
        if self._keepless is None or self._keepless[0] is not policy:
            self._keepless = (policy, dataclasses.replace(policy, keep=None))
        return self._keepless[1]


class _Counts:
    def __init__(self) -> None:
        self.detectors: dict[str, int] = {}
        self.fields: dict[str, int] = {}
        self.messages = 0


def _redact(request: ChatRequest, policy: RedactionPolicy, provider: str) -> ChatRequest:
    counts = _Counts()
    messages = tuple(_message(m, policy, counts) for m in request.messages)
    if not counts.detectors and not counts.fields:
        return request
    data: dict[str, Any] = {"provider": provider, "messages": counts.messages}
    if counts.detectors:
        data["detectors"] = counts.detectors
    if counts.fields:
        data["fields"] = counts.fields
    audit("model.redacted", data)
    return dataclasses.replace(request, messages=messages)


def _message(message: Message, policy: RedactionPolicy, counts: _Counts) -> Message:
    found: dict[str, int] = {}
    content = policy.redact_text(message.content, found)
    calls = tuple(_tool_call(call, policy, found, counts) for call in message.tool_calls)
    changed = content != message.content or calls != message.tool_calls
    if not changed:
        return message
    counts.messages += 1
    for key, count in found.items():
        counts.detectors[key] = counts.detectors.get(key, 0) + count
    return dataclasses.replace(message, content=content, tool_calls=calls)


def _tool_call(
    call: ToolCall, policy: RedactionPolicy, found: dict[str, int], counts: _Counts
) -> ToolCall:
    redacted = policy.apply(dict(call.arguments))
    if not redacted:
        return call
    for key, count in redacted.fields.items():
        counts.fields[key] = counts.fields.get(key, 0) + count
    for key, count in redacted.detectors.items():
        found[key] = found.get(key, 0) + count
    return dataclasses.replace(call, arguments=redacted.value)
