"""Configuration in one place, and secrets that never leak."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import httpx
import pytest

from batonflow.errors import ConfigError
from batonflow.providers import (
    CallRecord,
    ChatRequest,
    FallbackChain,
    Message,
    ProviderAuthError,
    build_providers,
    load_config,
)
from batonflow.testing import FakeClock

from .conftest import SECRET
from .servers import FakeAnthropic, FakeOpenAI, status

REQUEST = ChatRequest((Message.user("Hi"),))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text(text)
    return path


def config_text(anthropic_url: str, openai_url: str) -> str:
    return f"""
[providers.claude]
kind = "anthropic"
base_url = "{anthropic_url}"
model = "claude-test"
api_key_env = "TEST_ANTHROPIC_KEY"
price_in = 3.0
price_out = 15.0
max_attempts = 1
failure_threshold = 2
reset_after = 45

[providers.local]
kind = "openai"
base_url = "{openai_url}/v1"
model = "llama-test"
price_in = 0
timeout = 5

[fallback]
chain = ["claude", "local"]
"""


async def test_configured_chain_answers_with_costs(
    tmp_path: Path,
    anthropic_server: FakeAnthropic,
    openai_server: FakeOpenAI,
    client: httpx.AsyncClient,
    clock: FakeClock,
    records: list[CallRecord],
) -> None:
    config = load_config(
        write(tmp_path, config_text(anthropic_server.base_url, openai_server.base_url))
    )
    claude = config.providers["claude"]
    assert (claude.kind, claude.model, claude.api_key_env) == (
        "anthropic",
        "claude-test",
        "TEST_ANTHROPIC_KEY",
    )
    assert config.fallback == ("claude", "local")
    built = build_providers(
        config,
        client=client,
        clock=clock,
        env={"TEST_ANTHROPIC_KEY": SECRET},
        on_call=records.append,
        rng=random.Random(1),
    )
    assert isinstance(built["fallback"], FallbackChain)

    answer = await built["fallback"].complete(REQUEST)
    assert answer.provider == "claude"
    [record] = records
    assert (record.provider, record.model, record.outcome) == ("claude", "claude-test", "ok")
    assert record.cost == pytest.approx((20 * 3.0 + 8 * 15.0) / 1_000_000)
    assert anthropic_server.received[0].headers.get("authorization") == f"Bearer {SECRET}" or (
        anthropic_server.received[0].headers.get("x-api-key") == SECRET
    )

    anthropic_server.script(status(500))
    fallback = await built["fallback"].complete(REQUEST)
    assert (fallback.provider, fallback.model) == ("local", "llama-test")
    assert records[-1].cost == 0.0
    assert openai_server.received[0].headers["authorization"] == "Bearer unused"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[providers.a]\nmodel = 'm'\n", "providers.a.kind: required"),
        ("[providers.a]\nkind = 'grok'\nmodel = 'm'\n", "providers.a.kind: must be one of"),
        ("[providers.a]\nkind = 'openai'\nmodel = 3\n", "providers.a.model: wrong type int"),
        ("[providers.a]\nkind = 'openai'\nmodel = 'm'\nprice_in = 'x'\n", "providers.a.price_in"),
        ("[providers.a]\nkind = 'openai'\nmodel = 'm'\napi_key = 'k'\n", "providers.a.api_key"),
        (
            "[providers.a]\nkind = 'openai'\nmodel = 'm'\n[fallback]\nchain = ['a', 'b']\n",
            "fallback.chain[1]: no provider named 'b'",
        ),
        ("[other]\n", "[providers] must name at least one provider"),
        ("[providers\n", "not valid TOML"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"providers\.toml: no such file"):
        load_config(tmp_path / "providers.toml")


def test_missing_secret_names_the_variable(tmp_path: Path, client: httpx.AsyncClient) -> None:
    config = load_config(write(tmp_path, config_text("http://a", "http://b")))
    with pytest.raises(ConfigError, match="TEST_ANTHROPIC_KEY is not set"):
        build_providers(config, client=client, env={})


async def test_secrets_never_leak(
    tmp_path: Path,
    anthropic_server: FakeAnthropic,
    openai_server: FakeOpenAI,
    client: httpx.AsyncClient,
    clock: FakeClock,
    records: list[CallRecord],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = load_config(
        write(tmp_path, config_text(anthropic_server.base_url, openai_server.base_url))
    )
    built = build_providers(
        config,
        client=client,
        clock=clock,
        env={"TEST_ANTHROPIC_KEY": SECRET},
        on_call=records.append,
    )
    await built["claude"].complete(REQUEST)
    anthropic_server.script(status(401, message="invalid x-api-key"))
    with pytest.raises(ProviderAuthError) as caught:
        await built["fallback"].complete(REQUEST)

    seen = [
        repr(config),
        str(config),
        *(repr(p) for p in built.values()),
        *(repr(p) for p in config.providers.values()),
        str(caught.value),
        repr(caught.value),
        *(repr(r) for r in records),
        caplog.text,
    ]
    assert caplog.records  # the SDKs did log, at debug level
    for text in seen:
        assert SECRET not in text
    assert anthropic_server.received  # ...while the key did reach the server
