"""LLM providers behind one small protocol (``Provider.complete``), with reliability around them.

Adapters: :class:`OpenAIProvider` (any OpenAI-compatible endpoint) and :class:`AnthropicProvider`,
both over the official SDKs with their HTTP going through the engine's egress client. Around them:
:class:`ReliableProvider` (retries honouring ``Retry-After``, a :class:`CircuitBreaker`) and
:class:`FallbackChain`. Configuration: :func:`load_config` + :func:`build_providers`. Every attempt
yields a :class:`CallRecord` to the ``on_call`` hook. See ``docs/providers.md``.
"""

from typing import TYPE_CHECKING, Any

from batonflow.providers._config import (
    ProviderConfig,
    ProvidersConfig,
    build_providers,
    load_config,
    parse_config,
)
from batonflow.providers._errors import (
    AllProvidersFailed,
    BadRequest,
    BadResponse,
    CircuitOpen,
    ConnectionDropped,
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from batonflow.providers._local import LocalModelCannot, LocalModelMissing, LocalProvider
from batonflow.providers._protocol import (
    ChatRequest,
    ChatResponse,
    Message,
    Provider,
    Tool,
    ToolCall,
    Usage,
)
from batonflow.providers._records import CallHook, CallRecord, Prices
from batonflow.providers._redacting import RedactingProvider

if TYPE_CHECKING:
    from batonflow.providers._anthropic import AnthropicProvider
    from batonflow.providers._openai import OpenAIProvider
from batonflow.providers._reliability import (
    CircuitBreaker,
    FallbackChain,
    ReliableProvider,
    RetryPolicy,
)

__all__ = [
    "AllProvidersFailed",
    "AnthropicProvider",
    "BadRequest",
    "BadResponse",
    "CallHook",
    "CallRecord",
    "ChatRequest",
    "ChatResponse",
    "CircuitBreaker",
    "CircuitOpen",
    "ConnectionDropped",
    "FallbackChain",
    "Message",
    "OpenAIProvider",
    "RedactingProvider",
    "Prices",
    "Provider",
    "ProviderAuthError",
    "ProviderConfig",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "ProvidersConfig",
    "RateLimited",
    "ReliableProvider",
    "RetryPolicy",
    "Tool",
    "ToolCall",
    "Usage",
    "build_providers",
    "load_config",
    "parse_config",
    "LocalModelCannot",
    "LocalModelMissing",
    "LocalProvider",
]

#: the SDK adapters load on first use: importing the vendors' SDKs takes a while, and most
#: commands (and processes) never build a provider of theirs
_LAZY = {
    "AnthropicProvider": "batonflow.providers._anthropic",
    "OpenAIProvider": "batonflow.providers._openai",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'batonflow.providers' has no attribute {name!r}")
