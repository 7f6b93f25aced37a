"""A model provider that gives scripted answers: for tests, and for examples that run offline."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from batonflow.errors import ConfigError
from batonflow.providers._protocol import ChatRequest, ChatResponse, ToolCall, Usage

#: one scripted answer: text (or a JSON value, sent as its JSON text), a tool-call request
#: ``{"tool_calls": [{"name", "arguments"}], "text"?}``, a ready ``ChatResponse``, or a function
#: of the request giving one of those
Answer = str | Mapping[str, Any] | list[Any] | ChatResponse | Callable[[ChatRequest], Any]


class ScriptedProvider:
    """A :class:`~batonflow.providers.Provider` that answers from a script, in order::

        model = ScriptedProvider(['{"label": "billing", "confidence": 0.9, "rationale": "..."}'])
        await classify(model, "Where is my invoice?", ["billing", "support"])

    A mapping with ``tool_calls`` asks for tool calls (``{"name": ..., "arguments": {...}}``,
    ids given in order). Any other mapping or list is sent as its JSON text. ``requests``
    keeps every request received, so a test can check what the model was shown. Running out
    of answers is a :class:`~batonflow.errors.ConfigError` naming how many were scripted.
    """

    def __init__(
        self, answers: Iterable[Answer], *, name: str = "scripted", model: str = "scripted-1"
    ) -> None:
        self._answers = list(answers)
        self._name = name
        self.model = model
        self.requests: list[ChatRequest] = []

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<ScriptedProvider {self._name!r}: {len(self._answers)} answer(s) left>"

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        if not self._answers:
            raise ConfigError(
                f"ScriptedProvider {self._name!r} has no answer left for request "
                f"{len(self.requests)} (it was given {len(self.requests) - 1})"
            )
        answer = self._answers.pop(0)
        if callable(answer) and not isinstance(answer, ChatResponse):
            answer = answer(request)
        return self._response(answer, request)

    def _response(self, answer: Any, request: ChatRequest) -> ChatResponse:
        if isinstance(answer, ChatResponse):
            return answer
        calls: tuple[ToolCall, ...] = ()
        if isinstance(answer, Mapping) and "tool_calls" in answer:
            calls = tuple(
                ToolCall(f"call_{len(self.requests)}_{i}", c["name"], dict(c.get("arguments", {})))
                for i, c in enumerate(answer["tool_calls"])
            )
            text = str(answer.get("text", ""))
        elif isinstance(answer, str):
            text = answer
        else:
            text = json.dumps(answer)
        words = sum(len(m.content.split()) for m in request.messages)
        return ChatResponse(
            text=text,
            tool_calls=calls,
            finish_reason="tool_calls" if calls else "stop",
            usage=Usage(input_tokens=words, output_tokens=len(text.split())),
            provider=self._name,
            model=request.model or self.model,
            latency=0.0,
        )
