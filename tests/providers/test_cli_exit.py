"""Provider errors that reach the command line directly get an exit code of their own.

A run's model calls fail the run (RUN_FAULTED); a provider error escapes to the CLI only when
importing the user's workflow module calls a model. Then a bad key is the user's to fix (USAGE)
and an outage may pass (PROVIDER_FAILED), never "a bug in batonflow" (INTERNAL).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batonflow.cli import EXIT_CODES, ExitCode, app, exit_code_for
from batonflow.providers import (
    AllProvidersFailed,
    BadRequest,
    CircuitOpen,
    LocalModelCannot,
    LocalModelMissing,
    ProviderAuthError,
    ProviderUnavailable,
    RateLimited,
)

from .servers import FakeAnthropic, status

MODULE = """
import asyncio, os
import batonflow as bf
from batonflow._net import make_client
from batonflow.providers import AnthropicProvider, ChatRequest, Message


async def _probe():
    async with make_client(timeout=5.0) as client:
        claude = AnthropicProvider(
            "claude", client=client, model="claude-test", api_key="sk-wrong",
            base_url=os.environ["PROBE_URL"],
        )
        await claude.complete(ChatRequest((Message.user("ping"),)))


asyncio.run(_probe())  # at import: e.g. checking the key before serving


@bf.workflow
async def flow(ctx: bf.Context) -> str:
    return "never"
"""


def test_the_table_knows_provider_errors_by_name() -> None:
    assert exit_code_for(ProviderAuthError("claude", "HTTP 401")) is ExitCode.USAGE
    assert exit_code_for(BadRequest("claude", "HTTP 400")) is ExitCode.USAGE
    assert exit_code_for(LocalModelMissing("local", "install it")) is ExitCode.USAGE
    assert exit_code_for(LocalModelCannot("local", "no text")) is ExitCode.USAGE
    for outage in (
        RateLimited("gpt", "HTTP 429"),
        ProviderUnavailable("gpt", "HTTP 503"),
        CircuitOpen("gpt", "open"),
        AllProvidersFailed([ProviderUnavailable("gpt", "HTTP 503")]),
    ):
        assert exit_code_for(outage) is ExitCode.PROVIDER_FAILED
    for key in EXIT_CODES:  # every name in the table names a real class
        if isinstance(key, str):
            module, _, name = key.partition(":")
            assert isinstance(getattr(importlib.import_module(module), name), type)


@pytest.mark.parametrize(
    ("code", "exit_code", "said"),
    [
        (401, ExitCode.USAGE, "claude: HTTP 401"),
        (503, ExitCode.PROVIDER_FAILED, "claude: HTTP 503"),
    ],
)
def test_a_model_call_at_import_exits_with_its_code(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    anthropic_server: FakeAnthropic,
    code: int,
    exit_code: ExitCode,
    said: str,
) -> None:
    name = f"probe_at_import_{code}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.setenv("PROBE_URL", anthropic_server.base_url)
    monkeypatch.delitem(sys.modules, name, raising=False)
    anthropic_server.script(status(code, message="no"))
    result = CliRunner().invoke(
        app, ["run", f"{tmp_path / name}.py:flow", "--db", str(tmp_path / "runs.db")]
    )
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert said in result.stderr
    assert "bug in batonflow" not in result.stderr
