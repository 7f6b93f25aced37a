"""Provider configuration in one place: a TOML file, with secrets from environment variables.

::

    [providers.claude]
    kind = "anthropic"
    model = "claude-sonnet-4-5"
    api_key_env = "ANTHROPIC_API_KEY"
    price_in = 3.0      # per million input tokens
    price_out = 15.0    # per million output tokens

    [providers.ollama]
    kind = "openai"
    base_url = "http://localhost:11434/v1"
    model = "llama3.2"

    [providers.offline]
    kind = "local"      # the embedded model: classification only, no key, no network

    [fallback]
    chain = ["claude", "ollama"]

The file names the environment variable that holds a key, never the key. Keys are read when a
provider is built and appear in no repr, log line or error message.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from batonflow._toml import read_toml
from batonflow.core import Clock, SystemClock
from batonflow.errors import ConfigError
from batonflow.providers._local import MODEL_ID, LocalProvider
from batonflow.providers._local_models import MODELS
from batonflow.providers._protocol import Provider
from batonflow.providers._records import CallHook, Prices
from batonflow.providers._reliability import (
    CircuitBreaker,
    FallbackChain,
    ReliableProvider,
    RetryPolicy,
)

__all__ = ["ProviderConfig", "ProvidersConfig", "build_providers", "load_config"]

Kind = Literal["openai", "anthropic", "local"]
_KINDS = ("openai", "anthropic", "local")
#: The key build_providers always fills: what a Catalog uses unless told otherwise.
DEFAULT = "default"
#: Local OpenAI-compatible servers (Ollama, llama.cpp, LM Studio) ignore the key but the SDK
#: needs one.
_NO_KEY = "unused"


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One configured provider. ``api_key_env`` names the variable holding the key."""

    name: str
    kind: Kind
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    prices: Prices = field(default_factory=Prices)
    timeout: float = 60.0
    max_attempts: int = 3
    failure_threshold: int = 5
    reset_after: float = 30.0

    def api_key(self, env: Mapping[str, str]) -> str:
        if self.api_key_env is None:
            return _NO_KEY
        key = env.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"provider {self.name!r}: environment variable {self.api_key_env} is not set"
            )
        return key


@dataclass(frozen=True, slots=True)
class ProvidersConfig:
    providers: Mapping[str, ProviderConfig]
    fallback: tuple[str, ...] = ()
    source: str = "<memory>"


def load_config(path: str | Path) -> ProvidersConfig:
    """Read a providers TOML file; errors name the file and the offending key."""
    return parse_config(read_toml(path), str(path))


def parse_config(data: Mapping[str, Any], source: str = "<memory>") -> ProvidersConfig:
    table = data.get("providers")
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{source}: [providers] must name at least one provider")
    providers = {name: _provider(source, name, entry) for name, entry in table.items()}
    chain = _get(source, data.get("fallback", {}), "fallback", "chain", list, [])
    for index, name in enumerate(chain):
        if name not in providers:
            raise ConfigError(f"{source}: fallback.chain[{index}]: no provider named {name!r}")
    return ProvidersConfig(providers, tuple(chain), source)


def _provider(source: str, name: str, entry: Any) -> ProviderConfig:
    where = f"providers.{name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{source}: {where} must be a table")
    known = {
        "kind", "model", "base_url", "api_key_env", "price_in", "price_out", "timeout",
        "max_attempts", "failure_threshold", "reset_after",
    }  # fmt: skip
    for key in entry:
        if key not in known:
            raise ConfigError(f"{source}: {where}.{key}: unknown key")
    kind = _get(source, entry, where, "kind", str)
    if kind not in _KINDS:
        raise ConfigError(f"{source}: {where}.kind: must be one of {_KINDS}, got {kind!r}")
    number = (int, float)
    local_model = _get(source, entry, where, "model", str, MODEL_ID) if kind == "local" else None
    if local_model is not None and local_model not in MODELS:
        raise ConfigError(
            f"{source}: {where}.model: the local provider runs one of {', '.join(MODELS)}, "
            f"not {local_model!r}"
        )
    return ProviderConfig(
        name=name,
        kind=kind,
        model=_get(source, entry, where, "model", str, MODEL_ID if kind == "local" else _MISSING),
        base_url=_get(source, entry, where, "base_url", str, None),
        api_key_env=_get(source, entry, where, "api_key_env", str, None),
        prices=Prices(
            float(_get(source, entry, where, "price_in", number, 0.0)),
            float(_get(source, entry, where, "price_out", number, 0.0)),
        ),
        timeout=float(_get(source, entry, where, "timeout", number, 60.0)),
        max_attempts=_get(source, entry, where, "max_attempts", int, 3),
        failure_threshold=_get(source, entry, where, "failure_threshold", int, 5),
        reset_after=float(_get(source, entry, where, "reset_after", number, 30.0)),
    )


_MISSING: Any = object()


def _get(source: str, table: Any, where: str, key: str, kind: Any, default: Any = _MISSING) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {where} must be a table")
    if key not in table:
        if default is _MISSING:
            raise ConfigError(f"{source}: {where}.{key}: required")
        return default
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{source}: {where}.{key}: wrong type {type(value).__name__}")
    return value


def build_providers(
    config: ProvidersConfig | None,
    *,
    client: httpx.AsyncClient,
    clock: Clock | None = None,
    env: Mapping[str, str] | None = None,
    on_call: CallHook | None = None,
    rng: random.Random | None = None,
) -> dict[str, Provider]:
    """Every configured provider, reliable (retries, breaker), plus the ``"fallback"`` chain
    when the file configures one, plus ``"default"``: the fallback chain, else the first
    provider configured, else (nothing configured at all) the offline local model, which needs
    no key and no network. ``client`` comes from ``batonflow.make_client``."""
    if config is None or not config.providers:
        local = LocalProvider()
        return {"local": local, DEFAULT: local}
    clock = clock or SystemClock()
    environ = os.environ if env is None else env
    built: dict[str, Provider] = {}
    for name, cfg in config.providers.items():
        if cfg.kind == "local":  # offline: no client, no retries, no breaker
            built[name] = LocalProvider(name, model=cfg.model)
            continue
        adapter = _adapter(cfg, client, clock, cfg.api_key(environ), on_call)
        built[name] = ReliableProvider(
            adapter,
            clock=clock,
            retry=RetryPolicy(max_attempts=cfg.max_attempts),
            breaker=CircuitBreaker(
                clock, failure_threshold=cfg.failure_threshold, reset_after=cfg.reset_after
            ),
            rng=rng,
        )
    if config.fallback:
        built["fallback"] = FallbackChain([built[n] for n in config.fallback])
    if DEFAULT not in built:
        built[DEFAULT] = built.get("fallback") or next(iter(built.values()))
    return built


def _adapter(
    cfg: ProviderConfig, client: httpx.AsyncClient, clock: Clock, key: str, hook: CallHook | None
) -> Provider:
    # the vendors' SDKs load only when a provider of theirs is built (they take a while)
    cls: Any
    if cfg.kind == "openai":
        from batonflow.providers._openai import OpenAIProvider as cls
    else:
        from batonflow.providers._anthropic import AnthropicProvider as cls
    return cls(  # type: ignore[no-any-return]
        cfg.name,
        client=client,
        model=cfg.model,
        api_key=key,
        base_url=cfg.base_url,
        timeout=cfg.timeout,
        prices=cfg.prices,
        on_call=hook,
        clock=clock,
    )
