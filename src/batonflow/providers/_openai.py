"""Any OpenAI-compatible chat completions endpoint, through the official ``openai`` SDK."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import openai

from batonflow.core import Clock
from batonflow.providers._adapter import SdkAdapter
from batonflow.providers._errors import (
    BadResponse,
    ConnectionDropped,
    ProviderError,
    ProviderTimeout,
    from_status,
)
from batonflow.providers._protocol import ChatRequest, ChatResponse, Message, ToolCall, Usage
from batonflow.providers._records import CallHook, Prices, parse_retry_after

__all__ = ["OpenAIProvider"]


class OpenAIProvider(SdkAdapter):
    """Chat completions on ``base_url`` (OpenAI, Azure OpenAI, Ollama, vLLM, OpenRouter, ...).

    ``client`` is the engine's egress-controlled client (``batonflow._net.make_client``); the SDK
    sends everything through it and never retries (retrying is
    :class:`~batonflow.providers.ReliableProvider`'s job).
    """

    def __init__(
        self,
        name: str,
        *,
        client: httpx.AsyncClient,
        model: str,
        api_key: str,
        base_url: str | None = None,
        timeout: float = 60.0,
        prices: Prices | None = None,
        on_call: CallHook | None = None,
        clock: Clock | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, model=model, prices=prices, on_call=on_call, clock=clock)
        self._sdk = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            http_client=client,  # type: ignore[arg-type]  # the SDK accepts legacy httpx clients
            default_headers=dict(default_headers or {}),
        )

    async def _call(self, request: ChatRequest, model: str) -> ChatResponse:
        started = self._clock.now()
        try:
            create: Any = self._sdk.chat.completions.create
            completion = await create(**_request_body(request, model))
            return _response(completion, self._name, model, self._clock.now() - started)
        except (openai.APIError, httpx.HTTPError, ValueError) as exc:
            # the one boundary: SDK errors become batonflow errors
            raise _translate(self._name, exc, self._clock.now()) from exc


def _request_body(request: ChatRequest, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [_message(m) for m in request.messages]}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": dict(t.parameters),
                },
            }
            for t in request.tools
        ]
    if request.response_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": dict(request.response_schema)},
        }
    return body


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))},
            }
            for c in message.tool_calls
        ]
    return out


def _response(completion: Any, provider: str, model: str, latency: float) -> ChatResponse:
    if not getattr(completion, "choices", None):
        raise BadResponse(provider, "the answer has no choices")
    choice = completion.choices[0]
    calls = tuple(
        ToolCall(c.id, c.function.name, _arguments(provider, c.function.arguments))
        for c in choice.message.tool_calls or ()
    )
    usage = completion.usage
    return ChatResponse(
        text=choice.message.content or "",
        tool_calls=calls,
        finish_reason=choice.finish_reason or "",
        usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
        provider=provider,
        model=completion.model or model,
        latency=latency,
    )


def _arguments(provider: str, raw: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw or "{}")
    except ValueError as exc:
        raise BadResponse(provider, f"tool call arguments are not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise BadResponse(provider, "tool call arguments are not a JSON object")
    return parsed


def _translate(provider: str, exc: Exception, now: float) -> ProviderError:
    if isinstance(exc, openai.APIStatusError):
        retry_after = parse_retry_after(exc.response.headers.get("retry-after"), now)
        return from_status(provider, exc.status_code, _status_message(exc), retry_after)
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        return ProviderTimeout(provider, "no answer before the timeout")
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        return ConnectionDropped(
            provider, f"connection failed: {type(exc.__cause__ or exc).__name__}"
        )
    return BadResponse(provider, f"unreadable answer: {type(exc).__name__}")


def _status_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str):
            return message
    return "error"
