"""Anthropic's Messages API, through the official ``anthropic`` SDK."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import httpx2

from batonflow.core import Clock
from batonflow.providers._adapter import SdkAdapter
from batonflow.providers._bridge import EgressBridge
from batonflow.providers._errors import (
    BadResponse,
    ConnectionDropped,
    ProviderError,
    ProviderTimeout,
    from_status,
)
from batonflow.providers._protocol import ChatRequest, ChatResponse, Message, ToolCall, Usage
from batonflow.providers._records import CallHook, Prices, parse_retry_after

__all__ = ["AnthropicProvider"]

#: The forced tool that carries a structured (JSON Schema) answer.
_RESPOND = "respond"
_DEFAULT_MAX_TOKENS = 1024


class AnthropicProvider(SdkAdapter):
    """Messages on ``base_url`` (default: Anthropic's API) through the egress ``client``.

    The SDK never retries (retrying is :class:`~batonflow.providers.ReliableProvider`'s job).
    Structured output is asked for with a forced ``respond`` tool whose input is the answer.
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
    ) -> None:
        super().__init__(name, model=model, prices=prices, on_call=on_call, clock=clock)
        bridged = httpx2.AsyncClient(
            transport=EgressBridge(client), timeout=timeout, trust_env=False
        )
        self._sdk = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            http_client=bridged,
        )

    async def _call(self, request: ChatRequest, model: str) -> ChatResponse:
        started = self._clock.now()
        try:
            create: Any = self._sdk.messages.create
            message = await create(**_request_body(request, model))
            structured = request.response_schema is not None
            return _response(message, self._name, model, self._clock.now() - started, structured)
        except (anthropic.APIError, httpx.HTTPError, httpx2.HTTPError, ValueError) as exc:
            # the one boundary: SDK errors become batonflow errors
            raise _translate(self._name, exc, self._clock.now()) from exc


def _request_body(request: ChatRequest, model: str) -> dict[str, Any]:
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens or _DEFAULT_MAX_TOKENS,
        "messages": _messages(request.messages),
    }
    if system:
        body["system"] = system
    if request.temperature is not None:  # no longer a named SDK argument; still on the wire
        body["extra_body"] = {"temperature": request.temperature}
    tools = [
        {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
        for t in request.tools
    ]
    if request.response_schema is not None:
        tools.append(
            {
                "name": _RESPOND,
                "description": "Give the answer.",
                "input_schema": dict(request.response_schema),
            }
        )
        body["tool_choice"] = {"type": "tool", "name": _RESPOND}
    if tools:
        body["tools"] = tools
    return body


def _messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)  # results of one turn go in one message
            else:
                out.append({"role": "user", "content": [block]})
        elif m.role == "assistant" and m.tool_calls:
            blocks: list[dict[str, Any]] = []
            if m.content:
                blocks.append({"type": "text", "text": m.content})
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)}
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def _response(
    message: Any, provider: str, model: str, latency: float, structured: bool
) -> ChatResponse:
    blocks = getattr(message, "content", None)
    if not isinstance(blocks, list):
        raise BadResponse(provider, "the answer has no content")
    texts = [b.text for b in blocks if b.type == "text"]
    calls = [ToolCall(b.id, b.name, dict(b.input)) for b in blocks if b.type == "tool_use"]
    if structured:
        answer = [c for c in calls if c.name == _RESPOND]
        if not answer:
            raise BadResponse(provider, "no structured answer in the response")
        texts, calls = [json.dumps(dict(answer[0].arguments))], []
    usage = message.usage
    return ChatResponse(
        text="".join(texts),
        tool_calls=tuple(calls),
        finish_reason=message.stop_reason or "",
        usage=Usage(usage.input_tokens, usage.output_tokens) if usage else Usage(),
        provider=provider,
        model=message.model or model,
        latency=latency,
    )


def _translate(provider: str, exc: Exception, now: float) -> ProviderError:
    if isinstance(exc, anthropic.APIStatusError):
        retry_after = parse_retry_after(exc.response.headers.get("retry-after"), now)
        return from_status(provider, exc.status_code, _status_message(exc), retry_after)
    if isinstance(exc, anthropic.APITimeoutError | httpx.TimeoutException):
        return ProviderTimeout(provider, "no answer before the timeout")
    if isinstance(exc, anthropic.APIConnectionError | httpx.TransportError):
        cause = type(exc.__cause__ or exc).__name__
        return ConnectionDropped(provider, f"connection failed: {cause}")
    return BadResponse(provider, f"unreadable answer: {type(exc).__name__}")


def _status_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return "error"
