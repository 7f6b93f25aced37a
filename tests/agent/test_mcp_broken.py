"""A broken MCP server is a clear batonflow error naming the server and what went wrong, never
an internal one: tested with real stdio servers that exit at once, print garbage, or answer
malformed JSON-RPC, through McpServer and through an agent run."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

import batonflow as bf
from batonflow._serde import error_from_dict
from batonflow.catalog import McpServer, McpServerError, agent
from batonflow.errors import RecordedError
from batonflow.testing import ScriptedProvider

BROKEN = Path(__file__).resolve().parent / "broken_mcp_server.py"


@pytest.fixture
def errors(tmp_path: Path) -> Iterator[TextIO]:
    """Where the servers' stderr goes."""
    with (tmp_path / "stderr.txt").open("w") as file:
        yield file


def broken(mode: str, errors: TextIO, timeout: float = 30.0) -> McpServer:
    return McpServer("files", sys.executable, [str(BROKEN), mode], stderr=errors, timeout=timeout)


@pytest.mark.parametrize(
    ("mode", "timeout", "doing", "what"),
    [
        ("exit", 30.0, "starting (the MCP handshake)", "it exited or closed its connection"),
        ("garbage", 0.5, "starting (the MCP handshake)", "it did not answer in time"),
        ("malformed", 30.0, "starting (the MCP handshake)", "it answered malformed JSON-RPC"),
        ("tools", 30.0, "listing its tools", "it answered malformed JSON-RPC"),
    ],
)
async def test_a_broken_server_is_a_clear_error(
    errors: TextIO, mode: str, timeout: float, doing: str, what: str
) -> None:
    server = broken(mode, errors, timeout)
    try:
        with pytest.raises(McpServerError) as raised:
            await server.list_tools()
    finally:
        await server.close()
    message = str(raised.value)
    assert message.startswith(f"MCP server 'files' ({sys.executable} {BROKEN} {mode}) failed")
    assert f"while {doing}: {what}" in message
    assert not McpServerError.retryable


async def test_an_agent_run_with_a_broken_server_faults_with_that_error(
    tmp_path: Path, errors: TextIO
) -> None:
    server = broken("malformed", errors)

    @bf.workflow(name="broken_mcp")
    async def assistant(ctx: bf.Context, goal: str) -> dict[str, object]:
        result = await agent(ctx, ScriptedProvider(["done"]), goal, [server])
        return result.as_dict()

    async with bf.Engine(tmp_path / "runs.db") as engine:
        with pytest.raises(bf.RunFailed) as failed:
            await engine.run(assistant, "list the files")
    error = failed.value.error
    assert error["type"] == "batonflow.catalog._mcp:McpServerError"
    assert "MCP server 'files'" in error["message"]
    assert "malformed JSON-RPC" in error["message"]


def test_a_recorded_error_whose_class_needs_arguments_comes_back_as_recorded_error() -> None:
    """ExceptionGroup cannot be made without arguments: the record keeps its name instead of
    failing with a TypeError when the run's error is read back."""
    rebuilt = error_from_dict({"type": "builtins:ExceptionGroup", "message": "two failed"})
    assert isinstance(rebuilt, RecordedError)
    assert str(rebuilt) == "builtins:ExceptionGroup: two failed"
