"""With nothing configured the offline local model is the default; otherwise the configuration's
fallback chain, else its first provider."""

from __future__ import annotations

import httpx
import pytest

from batonflow._net import make_client
from batonflow.errors import ConfigError
from batonflow.providers import FallbackChain, LocalProvider, build_providers, parse_config
from batonflow.providers._config import DEFAULT
from batonflow.providers._local import MODEL_ID


@pytest.fixture
async def client() -> httpx.AsyncClient:
    async with make_client() as c:
        yield c


async def test_nothing_configured_means_the_local_model(client: httpx.AsyncClient) -> None:
    providers = build_providers(None, client=client)
    assert isinstance(providers[DEFAULT], LocalProvider)
    assert providers[DEFAULT] is providers["local"]


async def test_a_local_entry_needs_no_model_or_key(client: httpx.AsyncClient) -> None:
    config = parse_config({"providers": {"offline": {"kind": "local"}}})
    assert config.providers["offline"].model == MODEL_ID
    providers = build_providers(config, client=client, env={})
    assert isinstance(providers["offline"], LocalProvider)
    assert providers[DEFAULT] is providers["offline"]


async def test_the_default_is_the_fallback_chain_else_the_first_provider(
    client: httpx.AsyncClient,
) -> None:
    table = {
        "a": {"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
        "offline": {"kind": "local"},
    }
    first = build_providers(parse_config({"providers": table}), client=client, env={})
    assert first[DEFAULT] is first["a"]
    chained = build_providers(
        parse_config({"providers": table, "fallback": {"chain": ["a", "offline"]}}),
        client=client,
        env={},
    )
    assert isinstance(chained[DEFAULT], FallbackChain)


def test_an_unknown_kind_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="local"):
        parse_config({"providers": {"x": {"kind": "llamacpp", "model": "m"}}})
