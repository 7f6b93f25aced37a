"""LLM providers behind one small protocol (``Provider.complete``), with reliability around them.

Adapters: :class:`OpenAIProvider` (any OpenAI-compatible endpoint) and :class:`AnthropicProvider`,
both over the official SDKs with their HTTP going through the engine's egress client. Around them:
:class:`ReliableProvider` (retries honouring ``Retry-After``, a :class:`CircuitBreaker`) and
:class:`FallbackChain`. Configuration: :func:`load_config` + :func:`build_providers`. Every attempt
yields a :class:`CallRecord` to the ``on_call`` hook. See ``docs/providers.md``.
"""

from batonflow.providers._anthropic import AnthropicProvider
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
from batonflow.providers._openai import OpenAIProvider
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
