"""The provider-neutral shape of a model call: one request in, one response out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks to call tool ``name`` with ``arguments``; ``id`` pairs it with the result."""

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Message:
    """One conversation turn.

    ``assistant`` messages may carry ``tool_calls``; a ``tool`` message is the result of the call
    whose id is ``tool_call_id``, with the result in ``content``.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @classmethod
    def system(cls, content: str) -> Message:
        return cls("system", content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls("user", content)

    @classmethod
    def assistant(cls, content: str = "", tool_calls: tuple[ToolCall, ...] = ()) -> Message:
        return cls("assistant", content, tool_calls)

    @classmethod
    def tool(cls, tool_call_id: str, content: str) -> Message:
        return cls("tool", content, tool_call_id=tool_call_id)


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What to ask. ``model`` None means the provider's configured default (pin it per step).

    ``response_schema`` (a JSON Schema object) asks for structured output: the answer's ``text``
    is then a JSON document matching it.
    """

    messages: tuple[Message, ...]
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    tools: tuple[Tool, ...] = ()
    response_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """The answer, with who gave it: ``provider`` (configured name) and ``model`` (its id).

    ``cost`` is what the call cost at the provider's configured prices (0 when none are set).
    """

    text: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    usage: Usage
    provider: str
    model: str
    latency: float
    cost: float = 0.0


class Provider(Protocol):
    """A model behind one method. ``name`` is the configured provider name."""

    @property
    def name(self) -> str: ...

    async def complete(self, request: ChatRequest) -> ChatResponse: ...
