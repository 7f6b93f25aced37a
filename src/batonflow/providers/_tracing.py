"""OpenTelemetry spans for model calls, named and attributed per the GenAI semantic conventions.

Only ``opentelemetry-api`` is used: with no SDK configured every span is a no-op. One span per
attempt, kind CLIENT, named ``"chat {model}"``. Prompts, completions and API keys are never
recorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, TracerProvider

from batonflow.providers._protocol import ChatRequest, ChatResponse, Provider

__all__ = ["traced_call"]

_OPERATION = "chat"


def _tracer(tracer_provider: TracerProvider | None) -> Tracer:
    if tracer_provider is None:
        return trace.get_tracer("batonflow")
    return tracer_provider.get_tracer("batonflow")


def _request_model(provider: Provider, request: ChatRequest) -> str | None:
    if request.model:
        return request.model
    model = getattr(provider, "model", None)
    return model if isinstance(model, str) else None


def _server(provider: Provider) -> tuple[str | None, int | None]:
    """Host and port the adapter's SDK client talks to, when the adapter exposes one."""
    base_url = getattr(getattr(provider, "_sdk", None), "base_url", None)
    if base_url is None:
        return None, None
    try:
        parts = urlsplit(str(base_url))
        return parts.hostname, parts.port
    except ValueError:
        return None, None


async def traced_call(
    provider: Provider,
    request: ChatRequest,
    call: Callable[[], Awaitable[ChatResponse]],
    *,
    tracer_provider: TracerProvider | None = None,
) -> ChatResponse:
    """Run one attempt of ``provider`` on ``request`` inside a GenAI client span.

    ``tracer_provider`` defaults to the global one (a no-op unless an SDK is installed).
    """
    model = _request_model(provider, request)
    attributes: dict[str, str | int | float] = {
        "gen_ai.operation.name": _OPERATION,
        "gen_ai.provider.name": provider.name,
        "gen_ai.system": provider.name,
    }
    if model is not None:
        attributes["gen_ai.request.model"] = model
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    if request.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = request.max_tokens
    host, port = _server(provider)
    if host is not None:
        attributes["server.address"] = host
    if port is not None:
        attributes["server.port"] = port
    name = f"{_OPERATION} {model}" if model else _OPERATION
    with _tracer(tracer_provider).start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,  # exception messages may echo request details
        set_status_on_exception=False,
    ) as span:
        try:
            response = await call()
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        span.set_attribute("gen_ai.response.model", response.model)
        span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
        span.set_attribute("gen_ai.usage.input_tokens", response.usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", response.usage.output_tokens)
        return response
